"""The named augmentation techniques (albumentations 2) and the one place they are assembled.

Every technique transforms the image and the category mask together; the mask always uses
nearest interpolation and pads with void (0). Augmentation is for training only: the
generator never applies it to validation or test sets.

Two families serve sim-to-real transfer (issue #14). `domain_rand` and `camera` randomise what
the synthetic renderer holds fixed (colour, tone, texture, lens and compression) and need
nothing but the synthetic frames. `fda` (Fourier domain adaptation: the low-frequency
amplitude spectrum of an unlabelled real photo) and `histmatch` (its per-channel histogram)
restyle a synthetic frame after *unlabelled real photos*
(`reference_images`): results with them are reported apart from purely synthetic training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

VOID = 0  # category id used to pad masks (and 0 for the image)

# Geometric techniques first (they move pixels of image and mask), photometric after.
ORDER: tuple[str, ...] = (
    "hflip",
    "scale_crop",
    "rotate",
    "fda",
    "histmatch",
    "domain_rand",
    "color",
    "exposure",
    "weather",
    "blur",
    "camera",
    "noise",
)
# Techniques that restyle a frame after unlabelled real photos (`reference_images`).
STYLE_TECHNIQUES: tuple[str, ...] = ("fda", "histmatch")


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


def _exposure(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    # A camera's exposure range rather than a colour cast: from dusk (a third of the light,
    # flatter and greyer) to a bright overcast noon, then a gamma for the tone curve. `color`
    # (0.7..1.3) keeps every frame near the training drive's light.
    return [
        A.Sequential(
            [
                A.ColorJitter(
                    brightness=(0.35, 1.3), contrast=(0.6, 1.2), saturation=(0.5, 1.2), hue=0.03
                ),
                A.RandomGamma(gamma_limit=(80, 140), p=1.0),
            ],
            p=p,
        )
    ]


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


def _domain_rand(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    # Strong appearance randomisation: the renderer's palette, tone curve and texture
    # statistics are never the real ones, so the model must not rely on any of them.
    return [
        A.Sequential(
            [
                A.HueSaturationValue(
                    hue_shift_limit=(-25, 25),
                    sat_shift_limit=(-60, 40),
                    val_shift_limit=(-30, 30),
                    p=1.0,
                ),
                A.RGBShift(r_shift_limit=25, g_shift_limit=25, b_shift_limit=25, p=0.5),
                A.RandomToneCurve(scale=0.25, per_channel=True, p=0.5),
                A.RandomGamma(gamma_limit=(60, 150), p=0.5),
                A.PlanckianJitter(p=0.3),
                A.ToGray(p=0.05),
                A.OneOf(
                    [
                        A.Sharpen(alpha=(0.2, 0.5), lightness=(0.7, 1.2)),
                        A.Emboss(alpha=(0.2, 0.5), strength=(0.3, 0.8)),
                        A.Superpixels(p_replace=(0.05, 0.2), n_segments=(150, 400)),
                        A.ISONoise(color_shift=(0.01, 0.05), intensity=(0.2, 0.6)),
                    ],
                    p=0.5,
                ),
            ],
            p=p,
        )
    ]


def _camera(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    # What a real dash camera adds: motion blur, lost resolution, JPEG blocks, lens vignetting.
    return [
        A.Sequential(
            [
                A.OneOf(
                    [
                        A.MotionBlur(blur_limit=(3, 7), angle_range=(0, 30)),
                        A.Downscale(
                            scale_range=(0.4, 0.8),
                            interpolation_pair={
                                "downscale": cv2.INTER_AREA,
                                "upscale": cv2.INTER_LINEAR,
                            },
                        ),
                    ],
                    p=0.6,
                ),
                A.ImageCompression(quality_range=(30, 85), p=1.0),
                A.Lambda(image=_vignette, p=0.5),
            ],
            p=p,
        )
    ]


def _vignette(image: np.ndarray, **_: Any) -> np.ndarray:
    """Darken toward the corners like a cheap wide lens (cos^4 fall-off, random strength)."""
    height, width = image.shape[:2]
    strength = np.random.default_rng(int(image[::37, ::41].sum())).uniform(0.2, 0.5)
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    gain = 1 - strength * np.clip((xs**2 + ys**2) / 2, 0, 1) ** 1.5
    return np.clip(image * gain[..., None], 0, 255).astype(image.dtype)


def _fda(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    # low-frequency amplitude swap: beta is the half-width of the swapped band (fraction of size)
    return [A.FDA(beta_limit=(0.01, 0.08), metadata_key=STYLE_KEYS["fda"], p=p)]


def _histmatch(size: tuple[int, int], p: float) -> list[Any]:
    import albumentations as A

    return [A.HistogramMatching(blend_ratio=(0.5, 1.0), metadata_key=STYLE_KEYS["histmatch"], p=p)]


# The data key through which each style technique receives its photo (albumentations 2 takes
# pre-loaded target images per call; `reference_images=` at construction is deprecated).
STYLE_KEYS: dict[str, str] = {"fda": "fda_metadata", "histmatch": "hm_metadata"}


class StyledCompose:
    """A Compose whose style techniques each get one seeded pick of the reference photos.

    Behaves like `albumentations.Compose` for the generator: `set_random_seed(s)` then
    `pipeline(image=..., mask=...)`; the photo is chosen from the same seed, so the output
    depends on (seed, sample) only.
    """

    def __init__(self, compose: Any, references: Sequence[np.ndarray], keys: Sequence[str]):
        self.compose = compose
        self.references = list(references)
        self.keys = tuple(keys)
        self._rng = np.random.default_rng(0)

    def set_random_seed(self, seed: int) -> None:
        """Reseed the pipeline and the photo choice."""
        self.compose.set_random_seed(seed)
        self._rng = np.random.default_rng([int(seed), 4099])

    def __call__(self, **data: Any) -> dict[str, Any]:
        """Apply the pipeline with a photo for each style technique."""
        photo = self.references[int(self._rng.integers(len(self.references)))]
        return dict(self.compose(**data, **{k: [photo] for k in self.keys}))


def load_reference_images(
    folder: str | Path, size: tuple[int, int], limit: int = 64
) -> list[np.ndarray]:
    """Up to `limit` unlabelled photos under `folder` (sorted, evenly spaced), resized to `size`.

    Only their style is used (colours, spectrum); they carry no labels. Pass photos of drives
    that are never scored, never the test drive.
    """
    from cityseg.data.cityscapes import read_image
    from cityseg.data.resize import resize_image

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"style image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise ValueError(f"{root}: no .png or .jpg photos to take the style from")
    step = max(1, len(paths) // limit)
    return [resize_image(read_image(p), size) for p in paths[::step][:limit]]


# name -> (factory(size, p), default probability per sample)
TECHNIQUES: dict[str, tuple[Callable[[tuple[int, int], float], list[Any]], float]] = {
    "hflip": (_hflip, 0.5),
    "scale_crop": (_scale_crop, 0.5),
    "rotate": (_rotate, 0.3),
    "color": (_color, 0.5),
    "exposure": (_exposure, 0.6),
    "noise": (_noise, 0.2),
    "blur": (_blur, 0.2),
    "weather": (_weather, 0.2),
    "domain_rand": (_domain_rand, 0.8),
    "camera": (_camera, 0.5),
}
# name -> (factory(size, p), default probability per sample); these need reference photos
REFERENCE_TECHNIQUES: dict[str, tuple[Callable[[tuple[int, int], float], list[Any]], float]] = {
    "fda": (_fda, 0.5),
    "histmatch": (_histmatch, 0.5),
}
assert set(TECHNIQUES) | set(REFERENCE_TECHNIQUES) == set(ORDER)
assert set(REFERENCE_TECHNIQUES) == set(STYLE_TECHNIQUES)


def list_techniques(*, style: bool = False) -> list[str]:
    """Names accepted by `build_augmentation`, in the order they are applied.

    The purely synthetic techniques only, unless `style=True` adds those that need
    unlabelled real photos (`STYLE_TECHNIQUES`).
    """
    return [n for n in ORDER if style or n not in STYLE_TECHNIQUES]


def build_augmentation(
    names: Iterable[str],
    size: tuple[int, int],
    seed: int = 0,
    *,
    always: bool = False,
    reference_images: Sequence[np.ndarray] = (),
) -> Any:
    """An `albumentations.Compose` of the named techniques for `size` = (w, h), or None.

    The order of `names` does not matter (geometric first, then photometric); `always=True`
    applies each technique to every sample (for figures). `reference_images` (RGB uint8,
    unlabelled real photos) are needed by `fda` and `histmatch`. Reseed per sample with
    `pipeline.set_random_seed(s)` for determinism.
    """
    wanted = [n.strip() for n in names if n and n.strip()]
    unknown = sorted(set(wanted) - set(ORDER))
    if unknown:
        raise ValueError(
            f"unknown augmentation technique(s) {unknown}; valid names: "
            f"{list_techniques(style=True)}"
        )
    styled = [n for n in wanted if n in REFERENCE_TECHNIQUES]
    if styled and not len(reference_images):
        raise ValueError(
            f"augmentation {styled} restyles frames after unlabelled real photos: set "
            "data.style_images to a folder of them"
        )
    if not wanted:
        return None
    import albumentations as A

    transforms: list[Any] = []
    for name in ORDER:
        if name in wanted:
            factory, p = {**TECHNIQUES, **REFERENCE_TECHNIQUES}[name]
            transforms += factory(tuple(size), 1.0 if always else p)  # type: ignore[arg-type]
    compose = A.Compose(transforms, seed=seed, strict=True)
    if not styled:
        return compose
    styled_compose = StyledCompose(compose, reference_images, [STYLE_KEYS[n] for n in styled])
    styled_compose.set_random_seed(seed)
    return styled_compose
