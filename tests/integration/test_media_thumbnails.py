"""Thumbnails: the spec's sizes, crop and scale, animated, cached, sealed; refusals for the rest."""

from __future__ import annotations

import io

import pytest_twisted
from PIL import Image

from tests.integration.harness import SERVER_NAME, TestServer
from tests.integration.test_media import upload

THUMB = "/_matrix/client/v1/media/thumbnail"


def image_bytes(fmt: str, size: tuple[int, int] = (1000, 700), frames: int = 1) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", size, (i * 60 % 255, 100, 150)) for i in range(frames)]
    if frames > 1:
        images[0].save(out, format=fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    else:
        images[0].save(out, format=fmt)
    return out.getvalue()


@pytest_twisted.ensureDeferred
async def test_scale_and_crop_sizes_and_cache(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, image_bytes("JPEG"), "image/jpeg")
    server_name = SERVER_NAME
    scaled = await alice.get(f"{THUMB}/{server_name}/{media_id}?width=640&height=480&method=scale")
    assert scaled.code == 200, scaled
    assert scaled.header("Content-Type") == "image/jpeg"
    assert scaled.header("X-Content-Type-Options") == "nosniff"
    assert Image.open(io.BytesIO(scaled.raw)).size == (640, 448)  # aspect ratio kept
    cropped = await alice.get(f"{THUMB}/{server_name}/{media_id}?width=50&height=50&method=crop")
    assert Image.open(io.BytesIO(cropped.raw)).size == (96, 96)
    again = await alice.get(f"{THUMB}/{server_name}/{media_id}?width=50&height=50&method=crop")
    assert again.raw == cropped.raw
    stored = await server.hs.store.media.get_thumbnails(media_id)
    assert len(stored) == 2  # generated once each, then served from the store


@pytest_twisted.ensureDeferred
async def test_animated_gif(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, image_bytes("GIF", (200, 200), frames=3), "image/gif")
    server_name = SERVER_NAME
    resp = await alice.get(f"{THUMB}/{server_name}/{media_id}?width=96&height=96&method=crop&animated=true")
    assert resp.code == 200
    assert getattr(Image.open(io.BytesIO(resp.raw)), "n_frames", 1) == 3


@pytest_twisted.ensureDeferred
async def test_refusals(server: TestServer) -> None:
    alice = await server.register("alice")
    media_id = await upload(alice, b"just text", "text/plain")
    server_name = SERVER_NAME
    text = await alice.get(f"{THUMB}/{server_name}/{media_id}?width=96&height=96")
    assert (text.code, text.json["errcode"]) == (400, "M_UNKNOWN")
    unknown = await alice.get(f"{THUMB}/{server_name}/nosuchmedia?width=96&height=96")
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")
    no_size = await alice.get(f"{THUMB}/{server_name}/{media_id}")
    assert no_size.code == 400
    anonymous = await server.client().get(f"{THUMB}/{server_name}/{media_id}?width=96&height=96")
    assert anonymous.code == 401
    legacy = await server.client().get(f"/_matrix/media/v3/thumbnail/{server_name}/{media_id}?width=96&height=96")
    assert (legacy.code, legacy.json["errcode"]) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_thumbnails_are_inline_with_a_file_name(server: TestServer) -> None:
    """Required since v1.12, which /versions advertises."""
    alice = await server.register("alice")
    png = await upload(alice, image_bytes("PNG", (200, 100)), "image/png")
    resp = await alice.get(f"{THUMB}/{SERVER_NAME}/{png}?width=32&height=32&method=crop")
    assert resp.code == 200 and resp.header("Content-Type") == "image/png"
    assert resp.header("Content-Disposition") == 'inline; filename="thumbnail.png"'
    jpeg = await upload(alice, image_bytes("JPEG"), "image/jpeg")
    resp = await alice.get(f"{THUMB}/{SERVER_NAME}/{jpeg}?width=320&height=240")
    assert resp.header("Content-Disposition") == 'inline; filename="thumbnail.jpeg"'
