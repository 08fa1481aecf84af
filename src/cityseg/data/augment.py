"""The named augmentation techniques (albumentations 2) and the one place they are assembled.

Every technique transforms the image and the category mask together; the mask always uses
nearest interpolation and pads with void (0). Augmentation is for training only: the
generator never applies it to validation or test sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import cv2

VOID = 0  # category id used to pad masks (and 0 for the image)

# Geometric techniques first (they move pixels of image and mask), photometric after.
ORDER: tuple[str, ...] = ("hflip", "scale_crop", "rotate", "color", "weather", "blur", "noise")


def _hflip(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [A.HorizontalFlip(p=p)]


def _scale_crop(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    width, height = size
    # scale_limit is relative to 1: (-0.5, 1.0) draws a factor in 0.5..2.0.
    scale = A.RandomScale(
        scale_limit=(-0.5, 1.0),
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST_EXACT,
        p=1.0,
    )
    pad = A.PadIfNeeded(
        min_height=height,
        min_width=width,
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=VOID,
        position="random",
        p=1.0,
    )
    crop = A.RandomCrop(height=height, width=width, p=1.0)
    return [A.Sequential([scale, pad, crop], p=p)]


def _rotate(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [
        A.Rotate(
            limit=10,
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=VOID,
            p=p,
        )
    ]


def _color(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=p)]


def _noise(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    # std_range is a fraction of the dtype's maximum (255 for uint8).
    return [A.GaussNoise(std_range=(0.02, 0.08), p=p)]


def _blur(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.3, 1.5), p=p)]


def _weather(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [
        A.OneOf(
            [
                A.RandomFog(fog_coef_range=(0.2, 0.5), alpha_coef=0.1, p=1.0),
                A.RandomRain(rain_type="drizzle", drop_width=1, blur_value=3, p=1.0),
                A.RandomShadow(shadow_roi=(0, 0.5, 1, 1), num_shadows_limit=(1, 2), p=1.0),
            ],
            p=p,
        )
    ]


# name -> (factory(size, p), default probability per sample)
TECHNIQUES: dict[str, tuple[Callable[[tuple[int, int], float], list[Any]], float]] = {
    "hflip": (_hflip, 0.5),
    "scale_crop": (_scale_crop, 0.5),
    "rotate": (_rotate, 0.3),
    "color": (_color, 0.5),
    "noise": (_noise, 0.2),
    "blur": (_blur, 0.2),
    "weather": (_weather, 0.2),
}
assert set(TECHNIQUES) == set(ORDER)


def list_techniques() -> list[str]:
    """Names accepted by `build_augmentation`, in the order they are applied."""
    return list(ORDER)


def build_augmentation(
    names: Iterable[str], size: tuple[int, int], seed: int = 0, *, always: bool = False
) -> Any:
    """An `albumentations.Compose` of the named techniques for `size` = (w, h), or None.

    The order of `names` does not matter (geometric first, then photometric); `always=True`
    applies each technique to every sample (for figures). Reseed per sample with
    `pipeline.set_random_seed(s)` for determinism.
    """
    wanted = [n.strip() for n in names if n and n.strip()]
    unknown = sorted(set(wanted) - set(TECHNIQUES))
    if unknown:
        raise ValueError(
            f"unknown augmentation technique(s) {unknown}; valid names: {list_techniques()}"
        )
    if not wanted:
        return None
    import albumentations as A

    transforms: list[Any] = []
    for name in ORDER:
        if name in wanted:
            factory, p = TECHNIQUES[name]
            transforms += factory(tuple(size), 1.0 if always else p)  # type: ignore[arg-type]
    return A.Compose(transforms, seed=seed, strict=True)
