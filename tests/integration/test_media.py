"""The media repository over real HTTP, on both engines: uploads, downloads, async upload, limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
import yaml
from twisted.internet import defer, task

from tests.integration.harness import SERVER_NAME, Client, TestServer, base_config

MEDIA = "/_matrix/media/v3"
CLIENT_MEDIA = "/_matrix/client/v1/media"
LEGACY_ON = {"enable_authenticated_media": False}
PATTERN = b"PIMAN-SECRET-PATTERN-0123456789"


async def upload(client: Client, data: bytes, content_type: str = "text/plain", filename: str | None = None) -> str:
    path = f"{MEDIA}/upload" + (f"?filename={filename}" if filename else "")
    resp = await client.post(path, raw=data, headers={"Content-Type": content_type})
    assert resp.code == 200, resp
    uri = resp.json["content_uri"]
    assert uri.startswith(f"mxc://{SERVER_NAME}/")
    return uri.rsplit("/", 1)[1]


def media_files(server: TestServer) -> list[Path]:
    return [p for p in Path(server.hs.config.media_store_path).rglob("*") if p.is_file()]


@pytest_twisted.ensureDeferred
async def test_upload_and_authenticated_download(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    data = os.urandom(200_000) + PATTERN
    media_id = await upload(alice, data, "image/png", "photo.png")
    resp = await bob.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 200, resp
    assert resp.raw == data
    assert resp.header("Content-Type") == "image/png"
    assert resp.header("Content-Disposition") == 'inline; filename="photo.png"'
    assert resp.header("Content-Security-Policy").startswith("sandbox;")
    assert resp.header("X-Content-Type-Options") == "nosniff"
    assert resp.header("Cross-Origin-Resource-Policy") == "cross-origin"
    named = await bob.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}/other%20name.png")
    assert named.raw == data
    assert named.header("Content-Disposition") == 'inline; filename="other name.png"'
    unauthenticated = await server.client().get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert unauthenticated.code == 401 and unauthenticated.json["errcode"] == "M_MISSING_TOKEN"


@pytest_twisted.ensureDeferred
async def test_scriptable_types_are_attachments(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, b"<script>alert(1)</script>", "text/html", "page.html")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 200
    assert resp.header("Content-Disposition") == 'attachment; filename="page.html"'
    svg = await upload(alice, b"<svg/>", "image/svg+xml")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{svg}")
    assert resp.header("Content-Disposition") == "attachment"
    unicode_name = await upload(alice, b"x", "text/plain", "r%C3%A9sum%C3%A9.txt")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{unicode_name}")
    assert resp.header("Content-Disposition") == "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt"


@pytest_twisted.ensureDeferred
async def test_empty_upload_round_trips(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, b"", "application/octet-stream")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 200 and resp.raw == b""
    assert resp.header("Content-Type") == "application/octet-stream"


@pytest_twisted.ensureDeferred
async def test_legacy_download_frozen_by_default(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, b"hello")
    resp = await server.client().get(f"{MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 404 and resp.json["errcode"] == "M_NOT_FOUND"


@pytest.mark.hs_config(LEGACY_ON)
@pytest_twisted.ensureDeferred
async def test_legacy_download_when_not_frozen(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, b"hello legacy", "text/plain", "a.txt")
    anonymous = server.client()
    resp = await anonymous.get(f"{MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 200 and resp.raw == b"hello legacy"
    assert resp.header("X-Content-Type-Options") == "nosniff"
    resp = await anonymous.get(f"/_matrix/media/r0/download/{SERVER_NAME}/{media_id}/b.txt")
    assert resp.code == 200 and resp.header("Content-Disposition") == 'inline; filename="b.txt"'
    missing = await anonymous.get(f"{MEDIA}/download/{SERVER_NAME}/doesnotexist")
    assert missing.code == 404 and missing.json["errcode"] == "M_NOT_FOUND"


@pytest.mark.hs_config({"max_upload_size": "1K"})
@pytest_twisted.ensureDeferred
async def test_config_endpoints(server: TestServer) -> None:
    alice = await server.register("alice")
    for path in (f"{MEDIA}/config", f"{CLIENT_MEDIA}/config"):
        resp = await alice.get(path)
        assert resp.code == 200 and resp.json == {"m.upload.size": 1024}
        assert (await server.client().get(path)).code == 401


@pytest.mark.hs_config({"max_upload_size": "1K"})
@pytest_twisted.ensureDeferred
async def test_upload_too_large(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.post(f"{MEDIA}/upload", raw=b"x" * 1025, headers={"Content-Type": "text/plain"})
    assert resp.code == 413 and resp.json["errcode"] == "M_TOO_LARGE"
    assert media_files(server) == []
    assert await server.hs.store.media.list_user_media(alice.user_id) == []
    await upload(alice, b"x" * 1024)


@pytest.mark.hs_config({"media": {"user_quota": 100}})
@pytest_twisted.ensureDeferred
async def test_user_quota(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    await upload(alice, b"a" * 60)
    resp = await alice.post(f"{MEDIA}/upload", raw=b"b" * 60, headers={"Content-Type": "text/plain"})
    assert resp.code == 403 and resp.json["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED"
    await upload(bob, b"b" * 60)  # the quota is per user
    await upload(alice, b"c" * 40)


@pytest_twisted.ensureDeferred
async def test_unknown_malformed_and_remote_media(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/NoSuchMedia")
    assert resp.code == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/bad%2E%2E%24id")
    assert resp.code == 400, resp
    media_id = await upload(alice, b"local only")
    resp = await alice.get(f"{CLIENT_MEDIA}/download/other.example/{media_id}")
    assert resp.code == 404 and resp.json["errcode"] == "M_NOT_FOUND"


@pytest_twisted.ensureDeferred
async def test_async_upload(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    created = await alice.post("/_matrix/media/v1/create")
    assert created.code == 200, created
    assert created.json["unused_expires_at"] > 0
    media_id = created.json["content_uri"].rsplit("/", 1)[1]
    early = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}?timeout_ms=0")
    assert early.code == 504 and early.json["errcode"] == "M_NOT_YET_UPLOADED"
    # A download waiting with timeout_ms gets the content as soon as it is uploaded.
    waiting = defer.ensureDeferred(bob.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}?timeout_ms=10000"))
    other = await bob.put(f"{MEDIA}/upload/{SERVER_NAME}/{media_id}", raw=b"x", headers={"Content-Type": "text/plain"})
    assert other.code == 403 and other.json["errcode"] == "M_FORBIDDEN"
    put = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/{media_id}?filename=late.txt", raw=b"late content",
                          headers={"Content-Type": "text/plain"})
    assert put.code == 200 and put.json == {}
    got = await waiting
    assert got.code == 200 and got.raw == b"late content"
    assert got.header("Content-Disposition") == 'inline; filename="late.txt"'
    again = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/{media_id}", raw=b"other", headers={"Content-Type": "text/plain"})
    assert again.code == 409 and again.json["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    unknown = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/NeverCreated", raw=b"x")
    assert unknown.code == 404 and unknown.json["errcode"] == "M_NOT_FOUND"


@pytest.mark.hs_config({"media": {"unused_expires_after": "1s", "max_pending_uploads": 2}})
@pytest_twisted.ensureDeferred
async def test_async_upload_expiry_and_pending_limit(server: TestServer, reactor: Any) -> None:
    alice = await server.register("alice")
    first = (await alice.post("/_matrix/media/v1/create")).json["content_uri"].rsplit("/", 1)[1]
    assert (await alice.post("/_matrix/media/v1/create")).code == 200
    limited = await alice.post("/_matrix/media/v1/create")
    assert limited.code == 429 and limited.json["errcode"] == "M_LIMIT_EXCEEDED"
    await task.deferLater(reactor, 1.2, lambda: None)
    expired = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/{first}", raw=b"x")
    assert expired.code == 404 and expired.json["errcode"] == "M_NOT_FOUND"
    assert (await alice.post("/_matrix/media/v1/create")).code == 200


@pytest_twisted.ensureDeferred
async def test_media_store_holds_no_plaintext(server: TestServer) -> None:
    alice = await server.register("alice")
    data = PATTERN * 10_000  # several chunks
    media_id = await upload(alice, data, "text/plain", "secret-name.txt")
    files = media_files(server)
    assert files
    for path in files:
        raw = path.read_bytes()
        assert PATTERN not in raw and b"secret-name" not in raw
    assert sum(p.stat().st_size for p in files) > len(data)
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.raw == data


@pytest_twisted.ensureDeferred
async def test_tampered_file_is_not_served(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, os.urandom(150_000))
    [path] = media_files(server)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 1
    path.write_bytes(bytes(raw))
    try:
        resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    except Exception:
        return  # the connection is cut mid-body: the client never gets the altered bytes
    assert resp.code != 200 or len(resp.raw) < 150_000


@pytest_twisted.ensureDeferred
async def test_repository_helpers_and_deletion(server: TestServer) -> None:
    alice = await server.register("alice")
    data = os.urandom(70_000)
    media_id = await upload(alice, data)
    repo = server.hs.media_repository
    assert await repo.read_bytes(SERVER_NAME, media_id) == data
    meta = await repo.get_metadata(SERVER_NAME, media_id)
    assert meta.user_id == alice.user_id and meta.size == len(data)
    listed = await repo.list_user_media(alice.user_id)
    assert [m.media_id for m in listed] == [media_id]
    assert await repo.delete_user_media(alice.user_id) == [media_id]
    assert media_files(server) == []
    resp = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert resp.code == 404


def _piman(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from homeserver.cli import main; main()", "admin", "media", *args,
         "--config", str(config_path)],
        capture_output=True, text=True, timeout=120,
    )


@pytest_twisted.ensureDeferred
async def test_admin_cli_lists_and_deletes(server: TestServer, tmp_path: Path, database_config: dict[str, Any]) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    first = await upload(alice, b"one", "text/plain")
    second = await upload(alice, b"two", "image/png")
    kept = await upload(bob, b"bob's")
    config_path = tmp_path / "homeserver.yaml"
    config_path.write_text(yaml.safe_dump(base_config(tmp_path, database_config)))

    listed = _piman(config_path, "list", "--user", alice.user_id)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(
        f"mxc://{SERVER_NAME}/{mid}" for mid in (first, second))
    assert {line.split("\t")[1] for line in lines} == {"text/plain", "image/png"}

    one = _piman(config_path, "delete", "--user", alice.user_id, "--media-id", first)
    assert one.returncode == 0, one.stderr
    assert (await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{first}")).code == 404
    assert (await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{second}")).code == 200
    wrong = _piman(config_path, "delete", "--user", alice.user_id, "--media-id", kept)
    assert wrong.returncode == 1 and "no media" in wrong.stderr

    everything = _piman(config_path, "delete", "--user", alice.user_id)
    assert everything.returncode == 0 and "Deleted 1 " in everything.stdout
    assert (await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{second}")).code == 404
    assert (await bob.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{kept}")).raw == b"bob's"
    assert _piman(config_path, "list", "--user", alice.user_id).stdout == ""


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.hs_config({"max_upload_size": "200M"})
@pytest_twisted.ensureDeferred
async def test_100mb_round_trip_keeps_memory_flat(server: TestServer, tmp_path: Path, reactor: Any) -> None:
    """Server and client share this process, so both stream: file on disk up, file on disk down."""
    alice = await server.register("alice")
    size = 100 * 1024 * 1024
    source, target = tmp_path / "big.bin", tmp_path / "big.out"
    block = os.urandom(1024 * 1024)
    with open(source, "wb") as f:
        for i in range(size // len(block)):
            f.write(i.to_bytes(4, "big") + block[4:])
    headers = {"Authorization": [f"Bearer {alice.token}"], "Content-Type": ["application/octet-stream"]}
    idle = _rss_bytes()
    peak = [idle]
    sampler = task.LoopingCall(lambda: peak.__setitem__(0, max(peak[0], _rss_bytes())))
    sampler.start(0.01)
    try:
        with open(source, "rb") as f:
            resp = await treq.post(f"{server.base_url}{MEDIA}/upload", data=f, headers=headers)
            body = json.loads(await resp.content())
        assert resp.code == 200, body
        media_id = body["content_uri"].rsplit("/", 1)[1]
        resp = await treq.get(f"{server.base_url}{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}",
                              headers=headers, unbuffered=True)
        assert resp.code == 200
        assert resp.length == size
        with open(target, "wb") as out:
            await treq.collect(resp, out.write)
    finally:
        sampler.stop()
    assert target.stat().st_size == size
    with open(source, "rb") as a, open(target, "rb") as b:
        while chunk := a.read(1024 * 1024):
            assert chunk == b.read(1024 * 1024)
    growth = peak[0] - idle
    assert growth < 40 * 1024 * 1024, f"memory grew by {growth / 2**20:.1f} MiB for a 100 MiB file"


@pytest_twisted.ensureDeferred
async def test_client_leaving_mid_download(server: TestServer, reactor: Any) -> None:
    alice = await server.register("alice")
    data = os.urandom(4 * 1024 * 1024)
    media_id = await upload(alice, data, "application/octet-stream")
    resp = await treq.get(f"{server.base_url}{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}",
                          headers={"Authorization": [f"Bearer {alice.token}"]}, unbuffered=True)
    assert resp.code == 200
    resp.original._transport._producer.abortConnection()  # hang up after the headers, before the body
    await task.deferLater(reactor, 0.2, lambda: None)
    assert server.hs.inflight.count == 0  # the request ended; the server serves on
    again = await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id}")
    assert again.code == 200 and again.raw == data


@pytest.mark.hs_config({"media": {"unused_expires_after": "1h", "max_pending_uploads": 10}})
@pytest_twisted.ensureDeferred
async def test_sweep_of_expired_reservations(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from homeserver.media import repository

    monkeypatch.setattr(repository, "SWEEP_BATCH_SIZE", 2)  # several batches
    alice = await server.register("alice")
    created = []
    for _ in range(5):
        resp = await alice.post("/_matrix/media/v1/create")
        created.append((resp.json["content_uri"].rsplit("/", 1)[1], resp.json["unused_expires_at"]))
    filled = created[0][0]
    put = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/{filled}", raw=b"on time", headers={"Content-Type": "text/plain"})
    assert put.code == 200
    repo, store = server.hs.media_repository, server.hs.store.media
    first, last = min(e for _, e in created), max(e for _, e in created)
    assert await repo.sweep_expired_reservations(now_ms=first - 1) == 0
    assert await repo.sweep_expired_reservations(now_ms=last) == 4
    assert await repo.sweep_expired_reservations(now_ms=last + 1) == 0
    for media_id, _ in created[1:]:
        assert await store.get_media(media_id) is None
    assert (await store.get_media(filled)) is not None
    assert (await alice.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{filled}")).raw == b"on time"
    late = await alice.put(f"{MEDIA}/upload/{SERVER_NAME}/{created[1][0]}", raw=b"x")
    assert late.code == 404 and late.json["errcode"] == "M_NOT_FOUND"


CHUNK = 64 * 1024


@pytest.mark.hs_config(LEGACY_ON)
@pytest_twisted.ensureDeferred
async def test_head_and_ranges_on_downloads(server: TestServer) -> None:
    alice = await server.register("alice")
    data = os.urandom(3 * CHUNK + 1234)
    size = len(data)
    media_id = await upload(alice, data, "video/mp4", "clip.mp4")
    anonymous = server.client()
    for client, base in ((alice, CLIENT_MEDIA), (anonymous, MEDIA)):
        url = f"{base}/download/{SERVER_NAME}/{media_id}"
        head = await client.request("HEAD", url)
        assert head.code == 200 and head.raw == b""
        assert head.header("Content-Length") == str(size) and head.header("Accept-Ranges") == "bytes"
        assert head.header("Content-Type") == "video/mp4"
        assert head.header("Content-Disposition") == 'inline; filename="clip.mp4"'
        cases = {
            f"bytes={CHUNK - 10}-{CHUNK + 9}": (CHUNK - 10, CHUNK + 9),  # across a chunk boundary
            f"bytes={2 * CHUNK + 5}-": (2 * CHUNK + 5, size - 1),  # to the end, from a later chunk
            "bytes=-100": (size - 100, size - 1),  # the last 100 bytes
            "bytes=0-0": (0, 0),
            f"bytes=10-{CHUNK * 10}": (10, size - 1),  # an end past the file is clamped
            f"bytes={CHUNK}-{2 * CHUNK - 1}": (CHUNK, 2 * CHUNK - 1),  # exactly one chunk
            f"bytes=-{size * 2}": (0, size - 1),
        }
        for header, (first, last) in cases.items():
            resp = await client.get(url, headers={"Range": header})
            assert resp.code == 206, (header, resp.code)
            assert resp.header("Content-Range") == f"bytes {first}-{last}/{size}", header
            assert resp.raw == data[first:last + 1], header  # (treq keeps Content-Length to itself)
            assert resp.header("X-Content-Type-Options") == "nosniff"
        head_range = await client.request("HEAD", url, headers={"Range": "bytes=100-199"})
        assert head_range.code == 206 and head_range.raw == b""
        assert head_range.header("Content-Range") == f"bytes 100-199/{size}"
        assert head_range.header("Content-Length") == "100"
        for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            bad = await client.get(url, headers={"Range": header})
            assert bad.code == 416, (header, bad.code)
            assert bad.header("Content-Range") == f"bytes */{size}"
        for ignored in ("bytes=5-2", "items=0-10", "bytes=0-1,5-6", "bytes=-"):
            full = await client.get(url, headers={"Range": ignored})
            assert full.code == 200 and full.raw == data, ignored


@pytest_twisted.ensureDeferred
async def test_ranges_on_small_and_empty_files(server: TestServer) -> None:
    alice = await server.register("alice")
    small = await upload(alice, b"abcdefghij")
    empty = await upload(alice, b"")
    url = f"{CLIENT_MEDIA}/download/{SERVER_NAME}"
    resp = await alice.get(f"{url}/{small}", headers={"Range": "bytes=3-5"})
    assert resp.code == 206 and resp.raw == b"def"
    resp = await alice.get(f"{url}/{small}", headers={"Range": "bytes=-3"})
    assert resp.code == 206 and resp.raw == b"hij"
    resp = await alice.get(f"{url}/{empty}", headers={"Range": "bytes=0-"})
    assert resp.code == 416 and resp.header("Content-Range") == "bytes */0"
    head = await alice.request("HEAD", f"{url}/{empty}")
    assert head.code == 200 and head.header("Content-Length") == "0"
    missing = await alice.request("HEAD", f"{url}/NoSuchMedia")
    assert missing.code == 404


def test_range_reads_start_at_the_needed_chunk(tmp_path: Path, sealer: Any) -> None:
    """A range far into a file decrypts only from the chunk holding its first byte."""
    import io

    from homeserver.media.sealed_files import SealedReader, write_sealed

    data = os.urandom(5 * CHUNK + 7)
    path = str(tmp_path / "sealed")
    write_sealed(sealer, io.BytesIO(data), path)
    reader = SealedReader(sealer, path, start_chunk=4)
    chunks = list(reader)
    assert len(chunks) == 2 and b"".join(chunks) == data[4 * CHUNK:]


@pytest_twisted.ensureDeferred
async def test_versions_advertise_authenticated_media(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/client/versions")
    assert resp.code == 200
    versions = resp.json["versions"]
    assert "v1.11" in versions and "v1.12" in versions  # v1.11: /_matrix/client/v1/media
    # Nothing later is claimed until it is checked.
    assert max(int(v.split(".")[1]) for v in versions if v.startswith("v1.")) == 12
