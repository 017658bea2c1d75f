"""Uploaded icons and screenshots: judged by their content, refused early, stored re-encoded.

Every check that can be made from the header runs before a single pixel is decoded, so a
small file that claims to be enormous costs nothing. What is kept is a fresh encoding of the
pixels alone: no EXIF (GPS positions), XMP, text chunks, comments or ICC profile survive.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from cathouse.catalog.models import AssetKind
from cathouse.platform.errors import CatHouseError

ImageKind = AssetKind  # what an image is processed as: the kind of asset it becomes

# Icons are shown from list thumbnails up to a detail page on a high-density screen.
ICON_MIN_SIDE = 64
ICON_MAX_SIDE = 1024
# Screenshots may be landscape or portrait: the limits apply to the longer and shorter side.
SCREENSHOT_MIN_SIDES = (320, 200)
SCREENSHOT_MAX_SIDES = (3840, 2160)
JPEG_QUALITY = 88
WEBP_QUALITY = 88

# Pillow's name of a format -> (content type, file extension).
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
# Cameras and phones write a JPEG with extra pictures (depth maps, previews) as MPO; its first
# picture is the photo, so it counts as a still JPEG and not as an animation.
MULTI_PICTURE_JPEG = "MPO"
# What untrusted bytes can make Pillow's parsers and decoders raise.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageRefused(CatHouseError):
    status = 422
    title = "Unprocessable Content"

    def __init__(self, detail: str) -> None:
        # Named as a validation error names what it refuses: the body (its bytes, whatever its type).
        super().__init__(detail, errors=[{"loc": "body", "message": detail, "type": "value_error"}])


class UnsupportedImage(ImageRefused):
    """The file is not a PNG, JPEG or WebP image, or it is damaged."""

    status = 415
    title = "Unsupported Media Type"

    def __init__(self) -> None:
        super().__init__("The file is not a PNG, JPEG or WebP image, or it is damaged.")


class ImageTooLarge(ImageRefused):
    """The image has too many bytes or pixels."""

    status = 413
    title = "Content Too Large"


class ImageWrongSize(ImageRefused):
    """Dimensions outside what the kind of image is shown at."""


class AnimatedImage(ImageRefused):
    """Animated images are not accepted."""

    def __init__(self) -> None:
        super().__init__("Animated images are not accepted; upload a single still image.")


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str

    @property
    def key(self) -> str:
        """The storage key: named by content, so a stored image never changes under its name."""
        return f"{self.sha256}.{self.extension}"


def process_image(data: bytes, *, kind: ImageKind, max_bytes: int, max_pixels: int) -> ProcessedImage:
    """Check an upload and re-encode it without metadata. CPU-bound: run it in a thread."""
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is {len(data)} bytes; at most {max_bytes} bytes are accepted.")
    with _open(data, max_pixels) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"The image is {width}x{height} pixels; at most {max_pixels} pixels are accepted.")
        if image.format != MULTI_PICTURE_JPEG and getattr(image, "n_frames", 1) > 1:
            raise AnimatedImage()
        _check_dimensions(kind, width, height)
        try:
            image.load()
        except _DECODE_ERRORS as exc:
            raise UnsupportedImage() from exc
        pillow_format = "JPEG" if image.format == MULTI_PICTURE_JPEG else image.format or ""
        clean = _clean(image)
    lossless = pillow_format == "WEBP" and _is_lossless_webp(data)
    encoded = _encode(clean, pillow_format, lossless=lossless)
    content_type, extension = FORMATS[pillow_format]
    return ProcessedImage(
        data=encoded,
        content_type=content_type,
        extension=extension,
        width=clean.width,
        height=clean.height,
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the format from the bytes themselves; reads the header only."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires on a header past its global limit. Its warning is only an
        # exception where warnings are errors (the tests); elsewhere our pixel limit follows.
        raise ImageTooLarge(f"The image has far too many pixels; at most {max_pixels} pixels are accepted.") from exc
    except _DECODE_ERRORS as exc:
        raise UnsupportedImage() from exc
    if image.format not in (*FORMATS, MULTI_PICTURE_JPEG):
        image.close()
        raise UnsupportedImage()
    return image


def _check_dimensions(kind: ImageKind, width: int, height: int) -> None:
    size = f"{width}x{height} pixels"
    if kind == AssetKind.ICON:
        if width != height:
            raise ImageWrongSize(f"An icon must be square; this image is {size}.")
        if not ICON_MIN_SIDE <= width <= ICON_MAX_SIDE:
            raise ImageWrongSize(
                f"An icon must be between {ICON_MIN_SIDE}x{ICON_MIN_SIDE} and "
                f"{ICON_MAX_SIDE}x{ICON_MAX_SIDE} pixels; this image is {size}."
            )
        return
    longer, shorter = max(width, height), min(width, height)
    (min_long, min_short), (max_long, max_short) = SCREENSHOT_MIN_SIDES, SCREENSHOT_MAX_SIDES
    if not (min_long <= longer <= max_long and min_short <= shorter <= max_short):
        raise ImageWrongSize(
            f"A screenshot must be between {min_long}x{min_short} and {max_long}x{max_short} pixels "
            f"(landscape or portrait); this image is {size}."
        )


def _clean(image: Image.Image) -> Image.Image:
    """The pixels upright and in sRGB, with nothing else of the original attached."""
    try:
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # Unreadable EXIF: the orientation is unknown, so the pixels stay as stored.
        upright = image.copy()
    upright = _to_srgb(upright, image.info.get("icc_profile"))
    # Only palette transparency is image data; everything else in info is metadata.
    for key in [key for key in upright.info if key != "transparency"]:
        del upright.info[key]
    return upright


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Apply an embedded colour profile to the pixels, since the profile itself is dropped."""
    if not icc_profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, *_DECODE_ERRORS):
        # A broken profile: the pixels as they are beat refusing the image.
        return image
    return converted if converted is not None else image


def _encode(image: Image.Image, pillow_format: str, *, lossless: bool) -> bytes:
    out = io.BytesIO()
    if pillow_format == "PNG":
        image.save(out, "PNG", optimize=True)
    elif pillow_format == "JPEG":
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        image.save(out, "WEBP", lossless=lossless, quality=WEBP_QUALITY, method=4)
    return out.getvalue()


def _is_lossless_webp(data: bytes) -> bool:
    """Whether the WebP's pixels are in a VP8L chunk: re-encoding those lossily would blur them."""
    offset = 12  # past "RIFF", the file size and "WEBP"
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk in (b"VP8L", b"VP8 "):
            return chunk == b"VP8L"
        offset += 8 + size + (size & 1)
    return False
