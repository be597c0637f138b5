"""Image preparation with Pillow (real decoding, images made in the test) and the token estimate."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.images import ImageInput, UnreadableImage, image_tokens, prepare, prepare_all
from bot.settings import ImageDetail, ImageSettings


def make_image(size: tuple[int, int], fmt: str, *, color: str = "red", mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# OpenAI's worked examples in its vision guide ("Calculating costs").
@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((1024, 1024), ImageDetail.HIGH, 765),
        ((2048, 4096), ImageDetail.HIGH, 1105),
        ((4096, 8192), ImageDetail.LOW, 85),
        ((1024, 1024), ImageDetail.AUTO, 765),  # auto may pick high: the budget assumes it does
    ],
)
def test_image_tokens_follow_openais_published_examples(size, detail, tokens) -> None:
    assert image_tokens(*size, detail) == tokens


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_supported_format_is_downscaled_to_fit_max_side(fmt) -> None:
    settings = ImageSettings(max_side=512)
    prepared = prepare(make_image((2000, 1000), fmt), "pic", settings)
    assert (prepared.width, prepared.height) == (512, 256)
    image = decode(prepared.data)
    assert image.size == (512, 256) and image.format == "JPEG" and prepared.mime == "image/jpeg"
    assert prepared.tokens == image_tokens(512, 256, ImageDetail.AUTO)
    assert prepared.data_url.startswith("data:image/jpeg;base64,")


def test_a_small_image_is_not_enlarged_and_transparency_stays_png() -> None:
    prepared = prepare(make_image((40, 30), "PNG", mode="RGBA", color=(0, 0, 255, 100)), "a.png", ImageSettings())
    assert (prepared.width, prepared.height) == (40, 30)
    assert prepared.mime == "image/png" and decode(prepared.data).mode == "RGBA"


def test_a_gif_sends_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode(prepare(out.getvalue(), "anim.gif", ImageSettings()).data).convert("RGB")
    red, _, blue = image.getpixel((32, 32))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "SecretCam"  # the camera maker: metadata that must not travel
    data = make_image((300, 100), "JPEG", exif=exif.tobytes())
    prepared = prepare(data, "photo.jpg", ImageSettings())
    image = decode(prepared.data)
    assert image.size == (100, 300)
    assert b"SecretCam" not in prepared.data and not image.getexif()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64,  # a PNG signature and nothing valid after it
        make_image((200, 200), "PNG")[:300],  # truncated
        make_image((50, 50), "BMP"),  # a real image, in a format we do not send
    ],
)
def test_unreadable_or_unsupported_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(UnreadableImage):
        prepare(data, "x", ImageSettings())


def test_a_decompression_bomb_is_refused_without_decoding_it() -> None:
    # 10,000 x 10,000 of one colour compresses to a few hundred KB but would decode to 300 MB.
    bomb = make_image((10_000, 10_000), "PNG", mode="1", color=1, optimize=True)
    with pytest.raises(UnreadableImage):
        prepare(bomb, "bomb.png", ImageSettings())


async def test_prepare_all_keeps_order_and_reports_the_unreadable() -> None:
    inputs = [
        ImageInput("a.png", make_image((10, 10), "PNG")),
        ImageInput("broken.png", b"\x89PNG garbage"),
        ImageInput("b.webp", make_image((20, 10), "WEBP")),
    ]
    prepared, skipped = await prepare_all(inputs, ImageSettings())
    assert [p.name for p in prepared] == ["a.png", "b.webp"]
    assert [(s.name, s.reason) for s in skipped] == [("broken.png", "not an image I could read")]
