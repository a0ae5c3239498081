"""An encrypted attachment with matrix-nio against `piman run`, on both engines (issue 5's own check).

alice encrypts a file client-side (nio's `upload(..., encrypt=True)`), sends it as an `m.file` with
its `file` object in an encrypted room; bob decrypts the event, downloads the mxc the way nio does
(the authenticated /_matrix/client/v1/media route), and decrypts the bytes to exactly the original.
The server stores only sealed ciphertext of ciphertext: neither the plaintext nor the bytes nio
uploaded appear anywhere in the media store.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import yaml
from nio import (
    AsyncClient,
    DownloadResponse,
    JoinResponse,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment

from tests.e2e.e2ee_clients import ENCRYPTION_STATE, EncryptedNioUser, e2ee_server, ok, step
from tests.e2e.server_process import ServerProcess

__all__ = ["e2ee_server"]

PATTERN = b"PIMAN-NIO-ATTACHMENT-PATTERN-0123456789"
PLAINTEXT = PATTERN * 5000 + os.urandom(50_000)  # several 64 KiB sealed chunks


class FileNioUser(EncryptedNioUser):
    """`EncryptedNioUser` that also keeps the encrypted-file events it decrypted."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.files: list[tuple[str, RoomEncryptedFile]] = []

    async def sync(self, timeout_ms: int) -> SyncResponse:
        response = await super().sync(timeout_ms)
        for room_id, room in response.rooms.join.items():
            self.files += [(room_id, e) for e in room.timeline.events if isinstance(e, RoomEncryptedFile)]
        return response

    def _keep_decrypted(self, room_id: str, event: Any) -> None:
        if isinstance(event, RoomEncryptedFile):
            self.files.append((room_id, event))
        else:
            super()._keep_decrypted(room_id, event)


def test_matrix_nio_encrypted_attachment(e2ee_server: ServerProcess, tmp_path: Path) -> None:
    uploaded = asyncio.run(asyncio.wait_for(_scenario(e2ee_server, tmp_path), timeout=60))
    media_store = Path(yaml.safe_load(e2ee_server.config_path.read_text())["media_store_path"])
    with step("the media store on disk holds no plaintext of the attachment"):
        files = [p for p in media_store.rglob("*") if p.is_file()]
        assert files, f"nothing was stored under {media_store}"
        for path in files:
            raw = path.read_bytes()
            assert PATTERN not in raw, f"{path} contains the attachment's plaintext"
            assert uploaded[1000:1064] not in raw, f"{path} contains the bytes nio uploaded, unsealed"


async def _scenario(server: ServerProcess, tmp_path: Path) -> bytes:
    """The whole flow; returns the ciphertext nio uploaded."""
    with step("register alice and bob with encryption"):
        alice = await FileNioUser.register(server.base_url, "alice", tmp_path / "alice-store")
        bob = await FileNioUser.register(server.base_url, "bob", tmp_path / "bob-store")
    try:
        return await _attachment(alice, bob)
    finally:
        await alice.close()
        await bob.close()


async def _attachment(alice: FileNioUser, bob: FileNioUser) -> bytes:
    with step("alice creates an encrypted room, bob joins"):
        created = ok(await alice.client.room_create(name="files", invite=[bob.user_id],
                                                    initial_state=[ENCRYPTION_STATE]), RoomCreateResponse)
        room_id = created.room_id
        await bob.sync_until(lambda r: room_id in r.rooms.invite, f"the invite to {room_id}")
        ok(await bob.client.join(room_id), JoinResponse)
        await alice.wait_for_member(room_id, bob.user_id, "join")

    with step("alice uploads the file encrypted (upload(..., encrypt=True))"):
        response, keys = await alice.client.upload(io.BytesIO(PLAINTEXT), content_type="application/octet-stream",
                                                   filename="secret.bin", encrypt=True, filesize=len(PLAINTEXT))
        uploaded = ok(response, UploadResponse)
        assert keys and {"key", "iv", "hashes", "v"} <= set(keys), f"nio returned no decryption info: {keys}"
        mxc = uploaded.content_uri

    with step("alice sends the m.file event with its file object in the encrypted room"):
        content = {"msgtype": "m.file", "body": "secret.bin",
                   "info": {"size": len(PLAINTEXT), "mimetype": "application/octet-stream"},
                   "file": {"url": mxc, **keys}}
        ok(await alice.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True),
           RoomSendResponse)

    with step("bob syncs and decrypts the m.file event"):
        def found(_: SyncResponse) -> RoomEncryptedFile | None:
            return next((e for (r, e) in bob.files if r == room_id and e.url == mxc), None)

        event = await bob.sync_until(found, f"the encrypted file {mxc} in {room_id}")
        assert event.sender == alice.user_id and event.key["k"] == keys["key"]["k"]

    with step("bob downloads the mxc with nio (authenticated media) and decrypts it to the same bytes"):
        downloaded = ok(await bob.client.download(mxc=event.url), DownloadResponse)
        assert downloaded.transport_response.url.path.startswith("/_matrix/client/v1/media/download/"), (
            f"nio downloaded from {downloaded.transport_response.url}")
        ciphertext = downloaded.body
        assert len(ciphertext) == len(PLAINTEXT) and PATTERN not in ciphertext
        plaintext = decrypt_attachment(ciphertext, event.key["k"], event.hashes["sha256"], event.iv)
        assert plaintext == PLAINTEXT
    return ciphertext
