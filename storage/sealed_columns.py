"""Every database column that holds sealed blobs, in one place.

Key rotation walks these to re-seal old rows, `piman keys status`/`retire` scan them for the key
ids still in use, and start-up samples them to catch a key file that lacks a key the data needs.
The schema marks the same columns with ``-- SEALED``; tests/storage/test_key_rotation.py fails
when the two disagree, so a new sealed column can't be forgotten here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SealedTable:
    table: str
    key: tuple[str, ...]  # the primary key: the re-seal walks the table in this order
    columns: tuple[str, ...]  # the sealed blob columns (NULL allowed where the schema allows it)


SEALED_TABLES: tuple[SealedTable, ...] = (
    SealedTable("devices", ("user_id", "device_id"), ("display_name", "last_seen_ip", "last_seen_user_agent")),
    SealedTable("ui_auth_sessions", ("session_id",), ("clientdict",)),
    SealedTable("ui_auth_sessions_credentials", ("session_id", "stage_type"), ("result",)),
    SealedTable("events", ("event_id",), ("pdu",)),
    SealedTable("event_txn_ids", ("user_id", "device_id", "txn_id"), ("sealed_txn_id",)),
    SealedTable("account_data", ("user_id", "room_id", "data_type"), ("content",)),
    SealedTable("push_rules", ("user_id",), ("rules",)),
    SealedTable("user_filters", ("filter_id",), ("filter_json",)),
    SealedTable("profiles", ("user_id", "field"), ("value",)),
    SealedTable("presence", ("user_id",), ("status_msg",)),
    SealedTable("reports", ("id",), ("reason",)),
    SealedTable("device_inbox", ("user_id", "device_id", "stream_id"), ("message",)),
    SealedTable("room_key_backup_versions", ("version",), ("auth_data",)),
    SealedTable("room_key_backup_keys", ("user_id", "version", "room_id", "session_id"), ("session_data",)),
    SealedTable("local_media", ("media_id",), ("upload_name",)),
    SealedTable("legal_holds", ("id",), ("reason",)),
    SealedTable("admin_audit_log", ("id",), ("details",)),
    SealedTable("pushers", ("id",), ("sealed",)),
)
