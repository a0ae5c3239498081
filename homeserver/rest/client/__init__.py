"""The client-server API's servlets, in one list so a listener registers them all."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.rest.client import (
    account,
    account_data,
    consent,
    devices,
    directory,
    filters,
    keys,
    key_backup,
    login,
    media,
    media_thumbnails,
    notifications,
    openid,
    presence,
    profile,
    push_rules,
    pushers,
    receipts,
    register,
    relations,
    reports,
    retention,
    room_reads,
    room_upgrade,
    rooms,
    sync,
    thirdparty,
    threepids,
    timestamp_to_event,
    to_device,
    user_directory,
    versions,
    voip,
)
from homeserver.rest.admin import admin_servlets
from synapse_compat import admin_register

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MODULES = (versions, login, register, account, devices, rooms, room_reads, sync, account_data, filters, profile,
           presence, receipts, push_rules, user_directory, reports, directory, room_upgrade, timestamp_to_event,
           relations, notifications, to_device, key_backup, keys, media, media_thumbnails, consent,
           retention, threepids, thirdparty, voip, openid, pushers, admin_register)


def client_servlets(hs: "HomeServer") -> list[Any]:
    return [servlet for module in MODULES for servlet in module.servlets(hs)] + admin_servlets(hs)
