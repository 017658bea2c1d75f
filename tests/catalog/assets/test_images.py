from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile
from PIL.PngImagePlugin import PngInfo

from cathouse.catalog.assets.images import ImageRefused, ProcessedImage, process_image
from cathouse.catalog.models import AssetKind
from cathouse.platform.settings import CatalogSettings

LIMITS = CatalogSettings()
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make(fmt: str, size: tuple[int, int] = (640, 400), mode: str = "RGB", *, noisy: bool = True, **save: Any) -> bytes:
    """A noisy image, so that encoders cannot shrink it to nothing and truncation bites."""
    if noisy:
        image = Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    else:
        image = Image.new(mode, size, "orange")
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def process(data: bytes, kind: str = "screenshot", **limits: int) -> ProcessedImage:
    return process_image(
        data,
        kind=AssetKind(kind),
        max_bytes=limits.get("max_bytes", LIMITS.max_image_bytes),
        max_pixels=limits.get("max_pixels", LIMITS.max_image_pixels),
    )


def refused(data: bytes, kind: str = "screenshot", **limits: int) -> ImageRefused:
    with pytest.raises(ImageRefused) as caught:
        process(data, kind, **limits)
    return caught.value


def reopen(result: ProcessedImage) -> Image.Image:
    return Image.open(io.BytesIO(result.data))


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_each_format_round_trips_as_itself(fmt: str, content_type: str, extension: str) -> None:
    result = process(make(fmt))
    assert (result.content_type, result.extension, result.width, result.height) == (content_type, extension, 640, 400)
    assert reopen(result).format == fmt
    assert result.key == f"{result.sha256}.{extension}"
    assert len(result.sha256) == 64


def gps_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "CatCam"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0)}
    return exif


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_exif_with_a_position_is_gone_and_its_orientation_applied(fmt: str) -> None:
    extra: dict[str, Any] = {} if fmt == "PNG" else {"xmp": b"<x:xmpmeta>secret</x:xmpmeta>"}
    data = make(fmt, (640, 400), exif=gps_exif(orientation=6), icc_profile=SRGB_ICC, **extra)
    assert b"CatCam" in data

    result = process(data)

    assert (result.width, result.height) == (400, 640)  # turned upright, as the camera meant
    assert b"CatCam" not in result.data
    assert b"secret" not in result.data
    with reopen(result) as image:
        assert not image.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(image.info)


def png_chunk_types(data: bytes) -> list[bytes]:
    """The PNG's chunk types in order, read from its chunk headers: searching the bytes for a
    type would also find it, now and then, inside the compressed noise of the pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        types.append(data[at + 4 : at + 8])
        at += 12 + length
    return types


def test_png_text_chunks_are_gone() -> None:
    info = PngInfo()
    info.add_text("Author", "Ana Publisher")
    info.add_itxt("Comment", "made at home", zip=True)
    info.add_text("Software", "SecretTool", zip=True)
    data = make("PNG", pnginfo=info, icc_profile=SRGB_ICC)

    result = process(data)

    assert set(png_chunk_types(data)) >= {b"tEXt", b"zTXt", b"iTXt", b"iCCP"}
    kept = png_chunk_types(result.data)
    assert (kept[0], kept[-1]) == (b"IHDR", b"IEND")
    assert not {b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf"} & set(kept), kept
    assert b"Ana Publisher" not in result.data


def test_a_jpeg_comment_is_gone() -> None:
    result = process(make("JPEG", comment=b"shot by ana at 52.5N"))
    assert b"52.5N" not in result.data


def test_the_format_is_judged_by_content_alone() -> None:
    """There is no name or declared type to pass: a PNG called "cat.jpg" is still a PNG."""
    assert process(make("PNG")).content_type == "image/png"
    assert process(make("JPEG")).content_type == "image/jpeg"


def test_palette_transparency_and_alpha_survive() -> None:
    palette = Image.new("P", (640, 400), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] * 128)
    out = io.BytesIO()
    palette.save(out, "PNG", transparency=0)
    with reopen(process(out.getvalue())) as image:
        assert image.mode == "P"
        assert image.info["transparency"] == 0

    with reopen(process(make("WEBP", mode="RGBA", lossless=True))) as image:
        assert image.mode == "RGBA"


def test_lossless_webp_stays_lossless_and_cmyk_jpeg_becomes_rgb() -> None:
    assert b"VP8L" in process(make("WEBP", lossless=True)).data[:64]
    assert b"VP8L" not in process(make("WEBP", quality=70)).data[:64]
    with reopen(process(make("JPEG", mode="CMYK"))) as image:
        assert image.mode == "RGB"


def test_a_cameras_multi_picture_jpeg_is_its_first_picture() -> None:
    photo, depth_map = Image.new("RGB", (640, 480), "red"), Image.new("RGB", (640, 480), "black")
    out = io.BytesIO()
    photo.save(out, "MPO", save_all=True, append_images=[depth_map])

    result = process(out.getvalue())

    assert (result.content_type, result.width, result.height) == ("image/jpeg", 640, 480)
    with reopen(result) as image:
        assert image.format == "JPEG"
        assert image.getpixel((320, 240))[0] > 200  # type: ignore[index]


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(svg(), id="svg"),
        pytest.param(make("GIF"), id="gif"),
        pytest.param(make("BMP"), id="bmp"),
        pytest.param(b"<!doctype html><html><body>cat</body></html>", id="html"),
        pytest.param(os.urandom(4096), id="random"),
        pytest.param(b"", id="empty"),
        pytest.param(make("PNG")[:20_000], id="truncated-png"),
        pytest.param(make("JPEG")[:20_000], id="truncated-jpeg"),
    ],
)
def test_anything_but_a_whole_png_jpeg_or_webp_is_unsupported(data: bytes) -> None:
    error = refused(data)
    assert (error.status, error.title) == (415, "Unsupported Media Type")
    assert error.detail == "The file is not a PNG, JPEG or WebP image, or it is damaged."


def png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels, compressed to a few kilobytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor, row = zlib.compressobj(9), bytes(1 + (side + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "side",
    [
        pytest.param(5_000, id="past-our-limit"),
        pytest.param(10_000, id="past-pillows-warning"),
        pytest.param(20_000, id="past-pillows-error"),
    ],
)
def test_a_decompression_bomb_is_refused_without_decoding_it(side: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    data = png_bomb(side)
    assert len(data) < 100_000

    error = refused(data)

    assert (error.status, error.title) == (413, "Content Too Large")
    assert f"at most {LIMITS.max_image_pixels} pixels" in error.detail


def test_too_many_bytes_is_refused_before_anything_else() -> None:
    error = refused(b"x" * 2048, max_bytes=1024)
    assert error.status == 413
    assert "2048 bytes" in error.detail
    assert "1024" in error.detail


@pytest.mark.parametrize(
    ("kind", "size", "words"),
    [
        ("icon", (128, 64), "must be square; this image is 128x64"),
        ("icon", (32, 32), "between 64x64 and 1024x1024 pixels; this image is 32x32"),
        ("icon", (2048, 2048), "between 64x64 and 1024x1024 pixels; this image is 2048x2048"),
        ("screenshot", (300, 200), "between 320x200 and 3840x2160 pixels"),
        ("screenshot", (4000, 1000), "this image is 4000x1000"),
    ],
)
def test_dimensions_outside_the_kinds_limits_are_unprocessable(kind: str, size: tuple[int, int], words: str) -> None:
    error = refused(make("PNG", size, noisy=False), kind)
    assert error.status == 422
    assert words in error.detail


def test_portrait_screenshots_and_square_icons_are_accepted() -> None:
    portrait = process(make("PNG", (400, 800)))
    assert (portrait.width, portrait.height) == (400, 800)
    assert process(make("PNG", (256, 256)), "icon").width == 256


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [Image.new("RGB", (640, 400), colour) for colour in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)

    error = refused(out.getvalue())

    assert error.status == 422
    assert "Animated" in error.detail
