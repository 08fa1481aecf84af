"""Augmentation: image and mask stay aligned, masks stay nearest/void-padded, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.data.augment import build_augmentation, list_techniques
from cityseg.data.labels import PALETTE

SIZE = (128, 64)
GEOMETRIC = ("hflip", "rotate", "scale_crop")
PHOTOMETRIC = ("color", "exposure", "noise", "blur", "weather", "domain_rand", "camera")
STYLE = ("fda", "histmatch")


def _photos() -> list[np.ndarray]:
    """Two 'real photos' to copy the style of: a warm gradient and a cold noisy one."""
    rng = np.random.default_rng(5)
    ramp = np.linspace(0, 1, SIZE[0], dtype=np.float32)[None, :, None]
    warm = (np.array([220, 150, 60]) * ramp + 20).astype(np.uint8)
    warm = np.broadcast_to(warm, (SIZE[1], SIZE[0], 3)) + rng.integers(0, 30, (SIZE[1], SIZE[0], 3))
    warm = warm.astype(np.uint8)
    cold = rng.integers(0, 120, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    cold[..., 2] += 120
    return [warm, cold]


def _blocks() -> np.ndarray:
    """A category mask of big blocks (every category present, void 0 included)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 8, (4, 8), dtype=np.uint8)
    small[0, 0], small[3, 7] = 0, 7
    return np.kron(small, np.ones((16, 16), np.uint8))


def _decode(image: np.ndarray) -> np.ndarray:
    """Nearest palette colour of every pixel -> category."""
    dist = ((image[:, :, None, :].astype(int) - PALETTE[None, None].astype(int)) ** 2).sum(-1)
    return dist.argmin(-1).astype(np.uint8)


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 5x5 neighbourhood holds a single category (boundaries excluded)."""
    padded = np.pad(mask, 2, mode="edge")
    same = np.ones(mask.shape, bool)
    for dy in range(5):
        for dx in range(5):
            same &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return same


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_keeps_image_and_mask_aligned(name: str, seed: int) -> None:
    mask = _blocks()
    image = PALETTE[mask]  # the image is the colour-coded mask itself
    out = build_augmentation([name], SIZE, seed, always=True)(image=image, mask=mask)
    new_image, new_mask = out["image"], out["mask"]
    assert new_image.shape == image.shape and new_mask.shape == mask.shape
    assert new_mask.dtype == np.uint8
    # Where the image still shows a pure palette colour, the mask holds that colour's category.
    pure = (np.abs(new_image[:, :, None].astype(int) - PALETTE[None, None]).max(-1) == 0).any(-1)
    np.testing.assert_array_equal(new_mask[pure], _decode(new_image)[pure])
    assert not np.array_equal(new_mask, mask) or name == "scale_crop"
    inside = _interior(new_mask)
    assert inside.mean() > 0.5
    agree = _decode(new_image)[inside] == new_mask[inside]
    assert agree.mean() > 0.995, f"{name}: only {agree.mean():.3%} of interior pixels agree"


# Far-apart ids, each drawn in a pure colour: a linear mask invents 2..6 between them, and
# the label of a pixel can be read back from its colour wherever the colour is not blended.
LOW, HIGH = 1, 7
COLOURS = {LOW: (255, 0, 0), HIGH: (0, 0, 255)}


def _checkerboard(cell: int = 4) -> np.ndarray:
    yy, xx = np.indices((SIZE[1], SIZE[0]))
    return np.where((yy // cell + xx // cell) % 2 == 0, LOW, HIGH).astype(np.uint8)


def _label_of(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label read from the colour, where the colour is one of the two pure colours)."""
    label = np.zeros(image.shape[:2], np.uint8)
    for value, colour in COLOURS.items():
        label[(image.astype(int) == colour).all(-1)] = value
    return label, label > 0


@pytest.mark.parametrize("name", ["rotate", "scale_crop", "hflip"])
@pytest.mark.parametrize("seed", range(4))
def test_mask_is_still_a_function_of_the_image(name: str, seed: int) -> None:
    mask = _checkerboard()
    image = np.zeros((*mask.shape, 3), np.uint8)
    for value, colour in COLOURS.items():
        image[mask == value] = colour
    out = build_augmentation([name], SIZE, seed, always=True)(image=image, mask=mask)
    new_image, new_mask = out["image"], out["mask"]
    values = set(np.unique(new_mask).tolist())
    assert values <= {0, LOW, HIGH}, f"{name}: invented ids {sorted(values - {0, LOW, HIGH})}"
    label, clear = _label_of(new_image)
    scored = clear & (new_mask != 0)  # not padding, colour not blended on an edge
    assert scored.sum() > 0.4 * (new_mask != 0).sum()  # the check covers most of the frame
    wrong = int((new_mask[scored] != label[scored]).sum())
    assert wrong == 0, f"{name}: {wrong} pixels whose mask is not their colour's label"
    assert (new_mask[label > 0] != 0).all()  # a pure-coloured pixel is never padding


def test_hflip_flips_both() -> None:
    mask = _blocks()
    image = PALETTE[mask]
    out = build_augmentation(["hflip"], SIZE, 0, always=True)(image=image, mask=mask)
    assert np.array_equal(out["mask"], mask[:, ::-1])
    assert np.array_equal(out["image"], image[:, ::-1])


def test_scale_crop_pads_mask_with_void() -> None:
    mask = np.full((64, 128), 5, np.uint8)  # all sky: any 0 in the output is padding
    image = PALETTE[mask]
    pipeline = build_augmentation(["scale_crop"], SIZE, 0, always=True)
    padded = 0
    for seed in range(20):
        pipeline.set_random_seed(seed)
        out = pipeline(image=image, mask=mask)
        void = out["mask"] == 0
        padded += int(void.any())
        assert set(np.unique(out["mask"])) <= {0, 5}
        assert (out["image"][void] == 0).all()  # image padded with 0 exactly where mask is void
        assert (out["image"][~void] == PALETTE[5]).all()
    assert padded > 0  # some draws scale below 1 and need padding


@pytest.mark.parametrize("name", PHOTOMETRIC)
def test_photometric_changes_image_not_mask(name: str) -> None:
    mask = _blocks()
    image = PALETTE[mask]
    out = build_augmentation([name], SIZE, 0, always=True)(image=image, mask=mask)
    assert np.array_equal(out["mask"], mask)
    assert out["image"].dtype == np.uint8 and out["image"].shape == image.shape
    assert not np.array_equal(out["image"], image)


def test_same_seed_same_result_and_order_of_names_irrelevant() -> None:
    mask = _blocks()
    image = PALETTE[mask]
    names = list_techniques()
    a = build_augmentation(names, SIZE, 7)(image=image, mask=mask)
    b = build_augmentation(list(reversed(names)), SIZE, 7)(image=image, mask=mask)
    styled = list_techniques(style=True)
    c = build_augmentation(styled, SIZE, 7, reference_images=_photos())(image=image, mask=mask)
    d = build_augmentation(styled[::-1], SIZE, 7, reference_images=_photos())(
        image=image, mask=mask
    )
    assert np.array_equal(c["image"], d["image"]) and np.array_equal(c["mask"], d["mask"])
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    outs = [build_augmentation(names, SIZE, s)(image=image, mask=mask)["image"] for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown augmentation technique\(s\) \['flip'\].*hflip"):
        build_augmentation(["flip"], SIZE, 0)


def test_no_names_no_pipeline() -> None:
    assert build_augmentation([], SIZE, 0) is None
    assert set(list_techniques()) == set(GEOMETRIC + PHOTOMETRIC)
    assert set(list_techniques(style=True)) == set(GEOMETRIC + PHOTOMETRIC + STYLE)


@pytest.mark.parametrize("name", STYLE)
def test_style_techniques_need_real_photos(name: str) -> None:
    with pytest.raises(ValueError, match=r"data\.style_images"):
        build_augmentation([name], SIZE, 0)


@pytest.mark.parametrize("name", STYLE)
def test_style_techniques_move_colours_toward_the_photos_not_the_mask(name: str) -> None:
    mask = _blocks()
    image = PALETTE[mask]
    warm = _photos()[:1]
    out = build_augmentation([name], SIZE, 0, always=True, reference_images=warm)(
        image=image, mask=mask
    )
    assert np.array_equal(out["mask"], mask)
    assert out["image"].shape == image.shape and out["image"].dtype == np.uint8
    # the warm photo is red-heavy and blue-poor: the restyled frame moves that way
    before = image.reshape(-1, 3).mean(0)
    after = out["image"].reshape(-1, 3).mean(0).astype(float)
    assert (after[0] - after[2]) > (before[0] - before[2]) + 5, (before, after)


def test_reference_images_load_sorted_and_resized(tmp_path) -> None:
    from PIL import Image

    from cityseg.data.augment import load_reference_images

    for k, photo in enumerate(_photos()):
        Image.fromarray(photo).resize((60, 45)).save(tmp_path / f"p{k}.png")
    loaded = load_reference_images(tmp_path, SIZE)
    assert [p.shape for p in loaded] == [(SIZE[1], SIZE[0], 3)] * 2
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_reference_images(tmp_path / "nowhere", SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.png"):
        load_reference_images(tmp_path / "empty", SIZE)


def test_exposure_reaches_dusk_and_noon_where_color_stays_near_the_frame() -> None:
    """`exposure` spans a camera's light range: some frames at a third to a half of the light."""
    image = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)

    def light(name: str) -> np.ndarray:
        pipeline = build_augmentation([name], SIZE, 0, always=True)
        return np.array([pipeline(image=image, mask=mask)["image"].mean() / 128 for _ in range(60)])

    exposure, color = light("exposure"), light("color")
    assert (exposure < 0.6).mean() > 0.1 and exposure.min() < 0.45 and exposure.max() > 1.1
    assert color.min() > 0.6
