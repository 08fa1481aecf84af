"""Resizing: masks nearest (no invented class), aspect kept, letterbox geometry exact."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.data.resize import Box, fit_box, letterbox, resize_image, resize_mask, unletterbox

# Far-apart ids: any blend of 1 and 7 (bilinear, area, bicubic) lands on 2..6.
LOW, HIGH = 1, 7


def checkerboard(height: int, width: int, cell: int = 1) -> np.ndarray:
    """A checkerboard of LOW / HIGH ids; `cell` pixels per square."""
    yy, xx = np.indices((height, width))
    return np.where(((yy // cell) + (xx // cell)) % 2 == 0, LOW, HIGH).astype(np.uint8)


@pytest.mark.parametrize(
    ("source", "target"),
    [((64, 32), (32, 16)), ((64, 32), (48, 24)), ((30, 20), (64, 40)), ((17, 9), (5, 3))],
)
def test_resize_mask_never_invents_a_class(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    mask = checkerboard(source[1], source[0])
    out = resize_mask(mask, target)
    assert out.shape == (target[1], target[0]) and out.dtype == np.uint8
    values = set(np.unique(out).tolist())
    assert values <= {LOW, HIGH}, f"blended ids {sorted(values - {LOW, HIGH})}"


def test_resize_mask_is_nearest_neighbour_exactly() -> None:
    # Doubling repeats each pixel; halving a 2x2-cell checkerboard gives the 1x1 one.
    mask = checkerboard(4, 6)
    np.testing.assert_array_equal(resize_mask(mask, (12, 8)), np.kron(mask, np.ones((2, 2), int)))
    np.testing.assert_array_equal(resize_mask(checkerboard(8, 12, cell=2), (6, 4)), mask)


def test_same_size_is_returned_untouched() -> None:
    mask = checkerboard(4, 6)
    assert resize_mask(mask, (6, 4)) is mask
    image = np.zeros((4, 6, 3), np.uint8)
    assert resize_image(image, (6, 4)) is image


def test_resize_image_is_bilinear_and_takes_width_then_height() -> None:
    image = np.zeros((2, 4, 3), np.uint8)
    image[:, 2:] = 200
    out = resize_image(image, (8, 4))
    assert out.shape == (4, 8, 3) and out.dtype == np.uint8
    row = out[0, :, 0]
    assert row[0] == 0 and row[-1] == 200
    assert ((row > 0) & (row < 200)).any()  # blended at the edge: images are bilinear


def test_wide_and_tall_masks_keep_their_width_and_height() -> None:
    assert resize_mask(checkerboard(10, 30), (6, 2)).shape == (2, 6)
    assert resize_mask(checkerboard(30, 10), (2, 6)).shape == (6, 2)


@pytest.mark.parametrize(
    ("image", "canvas", "box"),
    [
        ((64, 32), (32, 16), Box(0, 0, 32, 16)),  # same aspect: fills the canvas
        ((40, 40), (32, 16), Box(8, 0, 16, 16)),  # square: centred, padded left and right
        ((100, 20), (32, 16), Box(0, 5, 32, 6)),  # very wide: padded top and bottom (6.4 -> 6)
        ((3, 1), (32, 16), Box(0, 2, 32, 11)),  # 10.67 rounds up to 11; (16 - 11) // 2 = 2
        ((1, 1000), (32, 16), Box(15, 0, 1, 16)),  # never thinner than one pixel
        ((1000, 1), (32, 16), Box(0, 7, 32, 1)),
        ((33, 16), (32, 16), Box(0, 0, 32, 16)),  # 15.5 rounds to 16 and stays inside
    ],
)
def test_fit_box(image: tuple[int, int], canvas: tuple[int, int], box: Box) -> None:
    assert fit_box(image, canvas) == box


def test_letterbox_pads_with_fill_and_keeps_the_aspect() -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    canvas, box = letterbox(image, (32, 16), fill=7)
    assert canvas.shape == (16, 32, 3) and canvas.dtype == np.uint8
    assert box == Box(8, 0, 16, 16)
    assert (canvas[:, 8:24] == 200).all()
    assert (canvas[:, :8] == 7).all() and (canvas[:, 24:] == 7).all()
    assert (letterbox(image, (32, 16))[0][:, :8] == 0).all()  # default fill is 0 (void)


def test_letterbox_of_a_mask_is_nearest() -> None:
    mask = checkerboard(40, 40)
    canvas, box = letterbox(mask, (32, 16))
    assert canvas.shape == (16, 32) and box == Box(8, 0, 16, 16)
    assert set(np.unique(canvas[:, 8:24]).tolist()) <= {LOW, HIGH}
    assert (canvas[:, :8] == 0).all()


def test_letterbox_same_aspect_is_a_plain_resize() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    canvas, box = letterbox(image, (32, 16))
    assert box == Box(0, 0, 32, 16)
    np.testing.assert_array_equal(canvas, resize_image(image, (32, 16)))


def test_unletterbox_crops_the_padding_and_restores_the_size() -> None:
    truth = checkerboard(40, 40, cell=8)
    canvas, box = letterbox(truth, (32, 16))
    canvas[:, :8] = 3  # a prediction of anything on the padding must not come back
    canvas[:, 24:] = 3
    restored = unletterbox(canvas, box, (40, 40))
    assert restored.shape == (40, 40)
    assert 3 not in restored
    assert set(np.unique(restored).tolist()) <= {LOW, HIGH}
    assert (restored == truth).mean() > 0.9  # 8-pixel cells survive the round trip

    wide = checkerboard(20, 100, cell=10)  # padded top and bottom this time
    canvas, box = letterbox(wide, (32, 16))
    assert box == Box(0, 5, 32, 6)
    canvas[: box.top] = 3
    canvas[box.top + box.height :] = 3
    restored = unletterbox(canvas, box, (100, 20))
    assert restored.shape == (20, 100) and 3 not in restored


def test_only_the_exact_size_is_returned_untouched() -> None:
    # Same width, other height (and the other way round) must still be resized.
    assert resize_mask(checkerboard(4, 6), (6, 8)).shape == (8, 6)
    assert resize_mask(checkerboard(4, 6), (12, 4)).shape == (4, 12)
    image = np.zeros((4, 6, 3), np.uint8)
    assert resize_image(image, (6, 8)).shape == (8, 6, 3)
    assert resize_image(image, (12, 4)).shape == (4, 12, 3)


def test_resize_image_is_pillows_bilinear_exactly() -> None:
    from PIL import Image

    image = np.random.default_rng(1).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((17, 9), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(resize_image(image, (17, 9)), expected)
    bicubic = np.asarray(Image.fromarray(image).resize((17, 9), Image.Resampling.BICUBIC))
    assert not np.array_equal(expected, bicubic)  # the check above tells the filters apart
