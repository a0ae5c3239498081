"""Thumbnails of uploaded images at the sizes the spec lists, made with Pillow off the reactor thread.

Clients ask for any width/height; we serve the nearest of a few fixed sizes so that each original
gets at most a handful of cached thumbnails, whatever clients request.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageSequence

# Image types the spec lets servers thumbnail; anything else is refused with 400 M_UNKNOWN.
THUMBNAILABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp"})
ANIMATED_TYPES = frozenset({"image/gif", "image/apng", "image/png", "image/webp"})
# Refuse to decode anything bigger: a small compressed file can expand to gigabytes of pixels.
MAX_PIXELS = 40_000_000
MAX_FRAMES = 200


@dataclass(frozen=True)
class ThumbnailSize:
    width: int
    height: int
    method: str  # "crop" or "scale"

    @property
    def key(self) -> str:
        return f"{self.width}x{self.height}-{self.method}"


# The sizes the spec's thumbnail section suggests.
THUMBNAIL_SIZES = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


class CannotThumbnail(Exception):
    """The content is not an image we can (or may) thumbnail."""


def choose_size(width: int, height: int, method: str) -> ThumbnailSize:
    """The smallest listed size at least as big as requested (never smaller than asked), else the largest.

    Sizes of the requested method are preferred; a method without a big-enough size falls back to
    any method's sizes, so a request for a 1000px crop still gets the 800x600 thumbnail.
    """
    for candidates in ([s for s in THUMBNAIL_SIZES if s.method == method], list(THUMBNAIL_SIZES)):
        fitting = [s for s in candidates if s.width >= width and s.height >= height]
        if fitting:
            return min(fitting, key=lambda s: s.width * s.height)
    return max(THUMBNAIL_SIZES, key=lambda s: s.width * s.height)


def _resize_frame(frame: Image.Image, size: ThumbnailSize) -> Image.Image:
    """Scale to fit inside the box, or crop to fill it; never upscale."""
    frame = frame.convert("RGBA") if frame.mode in ("P", "LA", "PA", "RGBA") else frame.convert("RGB")
    w, h = frame.size
    if size.method == "crop":
        ratio = max(size.width / w, size.height / h)
        if ratio >= 1:
            target_w, target_h = min(w, size.width), min(h, size.height)
            left, top = (w - target_w) // 2, (h - target_h) // 2
            return frame.crop((left, top, left + target_w, top + target_h))
        scaled = frame.resize((max(1, round(w * ratio)), max(1, round(h * ratio))), Image.LANCZOS)
        sw, sh = scaled.size
        left, top = (sw - size.width) // 2, (sh - size.height) // 2
        return scaled.crop((left, top, left + size.width, top + size.height))
    ratio = min(size.width / w, size.height / h, 1.0)
    return frame.resize((max(1, round(w * ratio)), max(1, round(h * ratio))), Image.LANCZOS)


def generate_thumbnail(data: bytes, content_type: str, size: ThumbnailSize, animated: bool) -> tuple[bytes, str]:
    """Encode a thumbnail of `data`; returns (bytes, content type). Raises CannotThumbnail. Blocking: run in a thread."""
    if content_type not in THUMBNAILABLE_TYPES:
        raise CannotThumbnail(f"Cannot thumbnail {content_type or 'unknown'} content.")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise CannotThumbnail("Image too large to thumbnail.")
        frames = getattr(image, "n_frames", 1)
        if animated and frames > 1 and content_type in ANIMATED_TYPES:
            return _animated(image, size, min(frames, MAX_FRAMES)), "image/webp"
        image.load()
        thumb = _resize_frame(image, size)
        out = io.BytesIO()
        if thumb.mode == "RGBA" or content_type in ("image/png", "image/apng", "image/gif"):
            thumb.save(out, "PNG", optimize=True)
            return out.getvalue(), "image/png"
        thumb.save(out, "JPEG", quality=85)
        return out.getvalue(), "image/jpeg"
    except CannotThumbnail:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CannotThumbnail("Content is not a readable image.") from e


def _animated(image: Any, size: ThumbnailSize, max_frames: int) -> bytes:
    frames, durations = [], []
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= max_frames:
            break
        frames.append(_resize_frame(frame.copy(), size))
        durations.append(frame.info.get("duration", 100))
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=image.info.get("loop", 0), quality=80)
    return out.getvalue()
