"""Safe decoding of uploaded images and PNG encoding of masks.

Accepted formats: PNG, JPEG, WebP, BMP and GIF (what cameras and browsers produce); TIFF, PDF
and the rest are refused with 415. One rule for animation, whatever the format: an animated
image (APNG, animated WebP or GIF) is refused with 415, so that a client learns to send the
frame it means rather than get a silent first frame. The pixel count is checked from the
header, before anything is decoded, so a decompression bomb costs a few bytes of parsing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cityseg.data import labels

# MPO is how Pillow names the JPEG files of many phone and stereo cameras.
ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF")
ACCEPTED_MEDIA_TYPES: tuple[str, ...] = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/bmp",
    "image/gif",
)
# An MPO holds a primary picture and its companions (preview, depth, second eye), not an
# animation: its first image is the photo by definition, so it is not refused as animated.
_NOT_ANIMATION: tuple[str, ...] = ("MPO",)

# Magic numbers of formats Pillow may not even open (PDF, HEIC), so that they get a 415 that
# names them rather than a 400 "not an image".
_KNOWN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"8BPS", "PSD"),
)


class ImageError(ValueError):
    """An upload that cannot be segmented; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sniff(data: bytes) -> str | None:
    for magic, name in _KNOWN_MAGIC:
        if data.startswith(magic):
            return name
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF/AVIF"
    return None


def open_checked(data: bytes, *, max_pixels: int, name: str = "upload") -> Image.Image:
    """Open lazily (header only) and check format and pixel count; no pixel is decoded."""
    if not data:
        raise ImageError(400, f"{name}: empty body; send an image (PNG, JPEG, WebP, BMP or GIF)")
    try:
        with warnings.catch_warnings():
            # Our own limit applies below; Pillow's warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageError(413, f"{name}: image too large ({err})") from err
    except UnidentifiedImageError as err:
        sniffed = _sniff(data)
        if sniffed:
            raise ImageError(415, _unsupported(name, sniffed)) from err
        raise ImageError(
            400, f"{name}: not an image Pillow can identify ({len(data)} bytes)"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(400, f"{name}: corrupt image header ({err})") from err
    if image.format not in ACCEPTED_FORMATS:
        raise ImageError(415, _unsupported(name, image.format or "unknown"))
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(400, f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            413,
            f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of "
            f"{max_pixels} pixels",
        )
    # Read from the headers (APNG acTL, WebP ANIM, a second GIF frame); no pixel decoded.
    if image.format not in _NOT_ANIMATION and getattr(image, "is_animated", False):
        raise ImageError(
            415,
            f"{name}: animated {image.format} ({_frames(image)} frames); send one still "
            "frame as PNG, JPEG, WebP, BMP or GIF",
        )
    return image


def _frames(image: Image.Image) -> str:
    # GIF counts its frames by walking the file; the header formats state the count.
    return "several" if image.format == "GIF" else str(getattr(image, "n_frames", "several"))


def _unsupported(name: str, fmt: str) -> str:
    return f"{name}: unsupported image format {fmt}; send PNG, JPEG, WebP, BMP or GIF"


def decode_image(data: bytes, *, max_pixels: int, name: str = "upload") -> np.ndarray:
    """Bytes -> RGB uint8 (H, W, 3) in displayed orientation; `ImageError` on bad input."""
    image = open_checked(data, max_pixels=max_pixels, name=name)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as err:
        raise ImageError(413, f"{name}: image too large ({err})") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(400, f"{name}: truncated or corrupt {image.format} data ({err})") from err
    return to_rgb(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode (greyscale, 16-bit, palette, alpha, CMYK) -> RGB uint8 (H, W, 3)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: keep the top 8 bits instead of Pillow's clipping at 255.
        grey = np.asarray(image, dtype=np.int64)
        top = 65535 if grey.max(initial=0) > 255 or image.mode.startswith("I;16") else 255
        grey8 = np.clip(grey * 255 // top, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[..., None], 3, axis=2))
    if image.mode == "P":
        # Resolves the palette and its transparency together: straight to RGB, Pillow warns
        # about transparency given as bytes. "PA" converts to RGB without that detour.
        image = image.convert("RGBA")
    if image.mode != "RGB":
        # Drops alpha (the camera never sees transparency); float "F" greyscale is clipped to
        # 0..255 and truncated, NaN becoming 0, without NumPy's invalid-cast warning.
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) -> PNG bytes (fast compression: masks compress well anyway)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# Pixels blended at a time by `overlay`: its float temporaries stay under a megabyte each.
OVERLAY_TILE_PIXELS = 1 << 16


def overlay(image: np.ndarray, categories: np.ndarray, alpha: float) -> np.ndarray:
    """Blend the category colours over the image: `alpha` = mask opacity in 0..1.

    Blended in bands of rows into a uint8 result, so that a 40-megapixel image costs its
    3 bytes per pixel and not the 40 of whole-image float32 temporaries.
    """
    out = np.empty((*image.shape[:2], 3), np.uint8)
    rows = max(1, OVERLAY_TILE_PIXELS // max(1, image.shape[1]))
    for top in range(0, image.shape[0], rows):
        band = slice(top, top + rows)
        colour = labels.colorize(categories[band]).astype(np.float32)
        blended = image[band].astype(np.float32) * (1.0 - alpha) + colour * alpha
        out[band] = np.clip(blended + 0.5, 0, 255)
    return out
