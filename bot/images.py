"""Images for vision models: decode, downscale and re-encode with Pillow, and estimate their tokens.

Discord's attachment URLs are signed and expire, and local model servers cannot fetch from the internet,
so images go to the model inline, as data URLs. Each is decoded (a GIF's first frame), turned upright by
its EXIF orientation, scaled to fit ``images.max_side`` and re-encoded (PNG when it has transparency,
else JPEG), which also drops its metadata (GPS positions in photos). The work runs in a thread: decoding
a large photo takes tens of milliseconds, too long for the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from bot.settings import ImageDetail, ImageSettings

# What the bot accepts: the formats OpenAI's vision models take (GIF: its first frame).
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Pixels decoded at most: a small file can claim a huge canvas (a decompression bomb).
MAX_PIXELS = 64_000_000
JPEG_QUALITY = 85

# OpenAI's published cost of an image (the vision guide, "Calculating costs"): detail "low" is a fixed
# 85 tokens; "high" fits the image in 2048 x 2048, scales its shortest side to 768 px and costs 170
# tokens per 512 px tile plus 85. "auto" lets the server choose, so it is counted as "high".
LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
TILE_SIDE = 512


def image_tokens(width: int, height: int, detail: ImageDetail) -> int:
    """The prompt tokens an image of ``width`` x ``height`` costs at ``detail``."""
    if detail is ImageDetail.LOW:
        return LOW_DETAIL_TOKENS
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    scale = 768 / min(w, h)
    w, h = w * scale, h * scale
    tiles = math.ceil(int(w) / TILE_SIDE) * math.ceil(int(h) / TILE_SIDE)
    return TILE_TOKENS * tiles + LOW_DETAIL_TOKENS


def is_image_name(filename: str, content_type: str | None) -> bool:
    """Does an attachment look like an image (any kind, supported or not)?"""
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind.startswith("image/") or filename.lower().endswith(IMAGE_SUFFIXES)


def is_supported(filename: str, content_type: str | None) -> bool:
    """An image type the bot can send (judged from what Discord reports; the bytes are checked later)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind:
        return kind in FORMATS.values()
    return filename.lower().endswith(IMAGE_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image attachment as downloaded: its file name and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image ready for the model: re-encoded bytes, their size and their token estimate."""

    name: str
    mime: str
    data: bytes
    width: int
    height: int
    tokens: int

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """An attachment left out, and why (the user is told both)."""

    name: str
    reason: str  # e.g. "not an image I can read", "over 10 MB", "more than 4 images"


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can decode, or not a format we send."""


def prepare(data: bytes, name: str, settings: ImageSettings) -> PreparedImage:
    """Decode, orient, downscale and re-encode one image (blocking: run it in a thread)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit raises) on huge canvases; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=tuple(FORMATS)) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise UnreadableImage(f"{width}x{height} pixels is more than {MAX_PIXELS}")
                if opened.format == "JPEG":
                    opened.draft("RGB", (settings.max_side, settings.max_side))  # decode at a reduced scale
                opened.seek(0)  # a GIF's first frame
                image = ImageOps.exif_transpose(opened)  # a copy, upright, loaded
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        # Pillow reports truncated or garbage data as any of these.
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from exc
    image.thumbnail((settings.max_side, settings.max_side), Image.Resampling.LANCZOS)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if has_alpha:
        image.convert("RGBA").save(out, "PNG", optimize=False)
        mime = "image/png"
    else:
        image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    return PreparedImage(
        name=name,
        mime=mime,
        data=out.getvalue(),
        width=image.width,
        height=image.height,
        tokens=image_tokens(image.width, image.height, settings.detail),
    )


async def prepare_all(
    inputs: Sequence[ImageInput], settings: ImageSettings
) -> tuple[list[PreparedImage], list[Skipped]]:
    """Prepare downloaded images off the event loop, in order; unreadable ones come back as skipped."""
    return await asyncio.to_thread(_prepare_all, inputs, settings)


def _prepare_all(inputs: Sequence[ImageInput], settings: ImageSettings) -> tuple[list[PreparedImage], list[Skipped]]:
    prepared: list[PreparedImage] = []
    skipped: list[Skipped] = []
    for item in inputs:
        try:
            prepared.append(prepare(item.data, item.name, settings))
        except UnreadableImage:
            skipped.append(Skipped(item.name, "not an image I could read"))
    return prepared, skipped
