"""Decoding uploads: formats, modes, orientation, limits, corrupt data."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from service_helpers import png_bytes, random_image

from cityseg.data import labels
from cityseg.service import imaging
from cityseg.service.imaging import ImageError, decode_image

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, followed by garbage instead of pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    header = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + header + b"\x00\x00\x00\x10IDATgarbage-garbage"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    image = random_image(7, 5)
    out = decode_image(encode(Image.fromarray(image), fmt), max_pixels=LIMIT)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "BMP"):  # lossless
        np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize(("fmt", "name"), [("TIFF", "TIFF"), ("PDF", "PDF"), ("ICO", "ICO")])
def test_unsupported_formats_are_415_naming_the_format(fmt: str, name: str) -> None:
    data = encode(Image.fromarray(random_image(16, 16)), fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=LIMIT)
    assert info.value.status == 415
    assert name in info.value.message


def test_empty_is_400() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"", max_pixels=LIMIT, name="photo.png")
    assert info.value.status == 400 and "photo.png" in info.value.message


def test_garbage_is_400() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"hello, this is text and no image at all", max_pixels=LIMIT)
    assert info.value.status == 400 and "not an image" in info.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_400(fmt: str) -> None:
    data = encode(Image.fromarray(random_image(64, 64)), fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data[: len(data) // 2], max_pixels=LIMIT, name="cut.img")
    assert info.value.status == 400
    assert "truncated" in info.value.message and "cut.img" in info.value.message


def test_pixel_limit_is_413_before_decoding() -> None:
    # The pixel data is garbage: decoding it would fail with 400, so 413 proves no decode ran.
    with pytest.raises(ImageError) as info:
        decode_image(fake_png_header(10_000, 5_000), max_pixels=LIMIT)
    assert info.value.status == 413 and "50000000 pixels" in info.value.message


def test_pixel_limit_beyond_pillows_own_bomb_limit_is_413() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(fake_png_header(30_000, 30_000), max_pixels=10**12)
    assert info.value.status == 413


def test_greyscale_becomes_three_equal_channels() -> None:
    grey = random_image(6, 4)[..., 0]
    out = decode_image(png_bytes(grey), max_pixels=LIMIT)
    assert out.shape == (4, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


def test_sixteen_bit_greyscale_keeps_its_range() -> None:
    grey16 = np.array([[0, 65535], [32896, 257 * 10]], dtype=np.uint16)
    out = decode_image(png_bytes(grey16), max_pixels=LIMIT)
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [128, 10]])


def test_rgba_drops_alpha() -> None:
    rgba = np.dstack([random_image(5, 3), np.zeros((3, 5), np.uint8)])
    out = decode_image(png_bytes(rgba), max_pixels=LIMIT)
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_palette_png_resolves_colours() -> None:
    image = Image.fromarray(random_image(8, 4)).quantize(colors=4)
    expected = np.asarray(image.convert("RGB"))
    out = decode_image(encode(image, "PNG"), max_pixels=LIMIT)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 2), (2, 3)])
def test_tiny_images(width: int, height: int) -> None:
    out = decode_image(png_bytes(random_image(width, height)), max_pixels=LIMIT)
    assert out.shape == (height, width, 3)


def test_exif_rotation_is_applied() -> None:
    stored = np.zeros((4, 8, 3), np.uint8)  # stored landscape 8x4, left half red
    stored[:, :4, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": displayed portrait 4x8
    data = encode(Image.fromarray(stored), "JPEG", exif=exif, quality=100)
    out = decode_image(data, max_pixels=LIMIT)
    assert out.shape == (8, 4, 3)
    assert out[:4, :, 0].mean() > 200 and out[4:, :, 0].mean() < 50  # red on top


def test_overlay_blends_by_alpha() -> None:
    image = np.full((2, 2, 3), 100, np.uint8)
    categories = np.full((2, 2), 7, np.uint8)  # vehicle: (0, 0, 142)
    np.testing.assert_array_equal(imaging.overlay(image, categories, 0.0), image)
    np.testing.assert_array_equal(imaging.overlay(image, categories, 1.0)[0, 0], [0, 0, 142])
    np.testing.assert_array_equal(imaging.overlay(image, categories, 0.5)[0, 0], [50, 50, 121])


def png16_rgb(array: np.ndarray) -> bytes:
    """A 48-bit RGB PNG (Pillow cannot write one)."""
    height, width, _ = array.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def test_sixteen_bit_rgb_keeps_the_high_byte() -> None:
    rgb16 = np.array([[[0, 65535, 32896], [2570, 1000, 60000]]], dtype=np.uint16)
    out = decode_image(png16_rgb(rgb16), max_pixels=LIMIT)
    np.testing.assert_array_equal(out, rgb16 >> 8)


def test_mpo_camera_jpeg_is_accepted() -> None:
    frames = [Image.fromarray(random_image(8, 6, seed=s)) for s in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    assert decode_image(buffer.getvalue(), max_pixels=LIMIT).shape == (6, 8, 3)


def test_overlay_blends_in_bands_of_uint8() -> None:
    # A whole-image float32 blend costs about 40 bytes per pixel; in bands it is the result's 3.
    import tracemalloc

    height, width = 1024, 2048
    image = random_image(width, height)
    categories = (image[..., 1] % 8).astype(np.uint8)
    alpha = 0.55
    tracemalloc.start()
    try:
        blended = imaging.overlay(image, categories, alpha)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / (height * width) < 6, f"{peak / (height * width):.1f} bytes per pixel"
    colour = labels.PALETTE[categories].astype(np.float64)
    expected = np.clip(image * (1 - alpha) + colour * alpha + 0.5, 0, 255).astype(np.uint8)
    assert blended.dtype == np.uint8
    assert np.abs(blended.astype(int) - expected).max() <= 1  # float32 vs float64 rounding


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"mif1", b"avif"])
def test_heif_and_avif_brands_are_415_naming_them(brand: bytes) -> None:
    data = b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 40  # an ISO-BMFF box header
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=LIMIT, name="phone.heic")
    assert info.value.status == 415
    assert info.value.message == (
        "phone.heic: unsupported image format HEIF/AVIF; send PNG, JPEG, WebP, BMP or GIF"
    )


def test_other_iso_media_is_400_not_an_image() -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40  # an MP4 video
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=LIMIT, name="clip.mp4")
    assert info.value.status == 400 and info.value.message.startswith("clip.mp4: not an image")


@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 3)])
def test_encode_png_round_trips_masks_and_images(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = imaging.encode_png(array[:, ::-1])  # a non-contiguous view is fine
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), array[:, ::-1])


def test_image_error_carries_status_and_message() -> None:
    err = ImageError(413, "big.png: too large")
    assert (err.status, err.message, str(err)) == (413, "big.png: too large", "big.png: too large")


@pytest.mark.parametrize(
    ("fmt", "frames", "said"),
    [("PNG", 3, "animated PNG (3 frames)"), ("WEBP", 2, "animated WEBP (2 frames)")],
)
def test_animated_stills_are_415_with_their_frame_count(fmt: str, frames: int, said: str) -> None:
    images = [Image.fromarray(random_image(16, 8, seed=i)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:], duration=100)
    with pytest.raises(ImageError) as info:
        decode_image(buffer.getvalue(), max_pixels=10**6, name="clip")
    assert info.value.status == 415
    assert str(info.value).startswith(f"clip: {said}; send one still frame")


def test_animated_gif_is_415_without_walking_its_frames() -> None:
    images = [Image.fromarray(random_image(16, 8, seed=i)).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100)
    with pytest.raises(ImageError, match=r"^clip: animated GIF \(several frames\); send one still"):
        decode_image(buffer.getvalue(), max_pixels=10**6, name="clip")


def test_overlay_of_a_tall_image_covers_every_row() -> None:
    # Bands of rows run down the height: a tall narrow image has more rows than columns.
    image = random_image(8, 40000)
    categories = (image[..., 0] // 32).astype(np.uint8)
    colour = labels.colorize(categories).astype(np.float32)
    expected = np.clip(image.astype(np.float32) * (1.0 - 0.3) + colour * 0.3 + 0.5, 0, 255)
    np.testing.assert_array_equal(
        imaging.overlay(image, categories, 0.3), expected.astype(np.uint8)
    )


def test_float_and_32_bit_greyscale_become_rgb_uint8() -> None:
    values = np.array([[-5.0, 0.0, 127.6], [254.9, 255.0, 300.0]], np.float32)
    rgb = imaging.to_rgb(Image.fromarray(values, mode="F"))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb[..., 0], [[0, 0, 127], [254, 255, 255]])
    assert (rgb == rgb[..., :1]).all()
    wide = imaging.to_rgb(Image.fromarray(np.array([[0, 255, 65535]], np.int32), mode="I"))
    np.testing.assert_array_equal(wide[0, :, 1], [0, 0, 255])  # scaled by the 16-bit top
    narrow = imaging.to_rgb(Image.fromarray(np.array([[0, 128, 255]], np.int32), mode="I"))
    np.testing.assert_array_equal(narrow[0, :, 2], [0, 128, 255])  # 8-bit values kept


def test_corrupt_header_is_400_naming_the_upload() -> None:
    # A BMP signature with a header Pillow cannot read: not unidentified, corrupt.
    data = b"BM" + b"\x00" * 12 + struct.pack("<I", 99) + b"\x00" * 40
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=10**6, name="up.bmp")
    assert info.value.status == 400
    assert str(info.value) == "up.bmp: corrupt image header (Truncated File Read)"


# ------------------------------------------------------------------ exact contracts per branch


def test_the_default_name_is_upload() -> None:
    for call in (imaging.open_checked, decode_image):
        with pytest.raises(ImageError) as info:
            call(b"", max_pixels=LIMIT)
        assert info.value.message.startswith("upload: empty body")


def test_a_header_past_pillows_warning_limit_opens_silently_under_our_own_limit() -> None:
    # 10000 x 10000 is above Pillow's warning threshold (89.5 MP) and below its error (179 MP).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = imaging.open_checked(fake_png_header(10_000, 10_000), max_pixels=10**9)
    assert image.size == (10_000, 10_000)


def test_pillows_own_bomb_error_is_413_naming_the_upload() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(fake_png_header(30_000, 30_000), max_pixels=10**12, name="big.png")
    assert info.value.status == 413
    assert info.value.message.startswith("big.png: image too large (Image size (900000000 pixels)")


def test_a_bomb_found_while_decoding_is_413(monkeypatch: pytest.MonkeyPatch) -> None:
    # Some formats (GIF frames larger than the screen) only find their true size on load.
    def bomb(image: Image.Image) -> Image.Image:
        raise Image.DecompressionBombError("frame of 200000000 pixels")

    monkeypatch.setattr(imaging.ImageOps, "exif_transpose", bomb)
    with pytest.raises(ImageError) as info:
        decode_image(png_bytes(random_image(4, 4)), max_pixels=LIMIT, name="up.gif")
    assert (info.value.status, info.value.message) == (
        413,
        "up.gif: image too large (frame of 200000000 pixels)",
    )


def test_unsupported_format_message_names_upload_and_format() -> None:
    data = encode(Image.fromarray(random_image(8, 8)), "TIFF")
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=LIMIT, name="scan.tif")
    assert (info.value.status, info.value.message) == (
        415,
        "scan.tif: unsupported image format TIFF; send PNG, JPEG, WebP, BMP or GIF",
    )


@pytest.mark.parametrize("size", [(0, 4), (4, 0), (0, 0)])
def test_an_image_without_pixels_is_400(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    # No format Pillow reads lets a zero side through its header parsing; the guard is
    # checked on an image that has one.
    empty = Image.new("RGB", size)
    empty.format = "PNG"
    monkeypatch.setattr(imaging.Image, "open", lambda _: empty)
    with pytest.raises(ImageError) as info:
        imaging.open_checked(b"png", max_pixels=LIMIT, name="blank.png")
    width, height = size
    assert (info.value.status, info.value.message) == (
        400,
        f"blank.png: image has no pixels ({width}x{height})",
    )


def test_animated_message_in_full() -> None:
    images = [Image.fromarray(random_image(8, 8, seed=i)) for i in range(2)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:])
    with pytest.raises(ImageError) as info:
        decode_image(buffer.getvalue(), max_pixels=LIMIT, name="clip.png")
    assert info.value.message == (
        "clip.png: animated PNG (2 frames); send one still frame as PNG, JPEG, WebP, BMP or GIF"
    )


SIXTEEN_BIT = [0, 255, 256, 32767, 65280, 65535]


@pytest.mark.parametrize(
    ("mode", "raw"),
    [
        ("I;16", "<u2"),
        ("I;16L", "<u2"),
        ("I;16B", ">u2"),
        ("I;16N", "=u2"),
    ],
)
def test_every_sixteen_bit_mode_keeps_the_top_eight_bits(mode: str, raw: str) -> None:
    values = np.array([SIXTEEN_BIT], dtype=raw)
    rgb = imaging.to_rgb(Image.frombytes(mode, (len(SIXTEEN_BIT), 1), values.tobytes()))
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 6, 3) and rgb.flags.c_contiguous
    # Even an all-dark 16-bit frame is scaled by 65535: 255 is 0, not white.
    np.testing.assert_array_equal(rgb[0], np.repeat([[0, 0, 0, 127, 254, 255]], 3, 0).T)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([-5, 0, 128, 255], [0, 0, 128, 255]),  # 8-bit range: kept as is, negatives to 0
        ([0, 256], [0, 0]),  # one value past 255: the 16-bit scale applies
        ([-5, 65280, 65535, 100_000], [0, 254, 255, 255]),  # past 16 bits: clipped
    ],
)
def test_32_bit_greyscale_scale_and_clip(values: list[int], expected: list[int]) -> None:
    image = Image.fromarray(np.array([values], np.int32), mode="I")
    rgb = imaging.to_rgb(image)
    np.testing.assert_array_equal(rgb[0], np.repeat([expected], 3, 0).T)


@pytest.mark.parametrize("mode", ["I", "I;16", "F", "P", "RGBA"])
def test_an_image_of_no_pixels_converts_to_an_empty_frame(mode: str) -> None:
    rgb = imaging.to_rgb(Image.new(mode, (0, 3)))
    assert rgb.shape == (3, 0, 3) and rgb.dtype == np.uint8


def test_float_greyscale_nan_and_infinities_convert_without_warnings() -> None:
    values = np.array([[np.nan, np.inf, -np.inf, 1e10, 0.999]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = imaging.to_rgb(Image.fromarray(values, mode="F"))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 255, 0, 255, 0])


@pytest.mark.parametrize("mode", ["P", "PA"])
def test_palette_transparency_resolves_without_pillows_warning(mode: str) -> None:
    image = Image.new("P", (4, 2), 1)
    image.putpalette([255, 0, 0, 0, 200, 0] * 128)
    image.info["transparency"] = bytes([0, 255])  # per-entry alpha, as PNG's tRNS stores it
    if mode == "PA":
        image = image.convert("PA")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = imaging.to_rgb(image)
    assert rgb.shape == (2, 4, 3)
    assert (rgb == [0, 200, 0]).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_a_dark_sixteen_bit_frame_is_scaled_as_sixteen_bit(mode: str) -> None:
    # Its largest value is 255, yet the mode says 16 bits: 255 of 65535 is black, not white.
    raw = np.array([[0, 255]], "<u2" if mode == "I;16" else ">u2")
    rgb = imaging.to_rgb(Image.frombytes(mode, (2, 1), raw.tobytes()))
    np.testing.assert_array_equal(rgb[0], [[0, 0, 0], [0, 0, 0]])
