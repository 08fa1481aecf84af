"""Find, pair, read and validate Cityscapes samples in the official directory layout.

Images and labels are paired **by name** (`<city>_<seq>_<frame>`), never by position, and
every listing is sorted. Problems raise a `DataError` naming the file and what was
expected; nothing is skipped silently (`skip_bad=True` skips explicitly, with a warning).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cityseg.data import labels

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
ENV_VAR = "CITYSCAPES_DATASET"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
EXPECTED_LAYOUT = (
    "expected the official Cityscapes layout:\n"
    "  ROOT/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "  ROOT/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)
# <city>_<seq>_<frame>: the city may contain underscores? Official names do not, but the
# sequence and frame are always the last two numeric fields.
_STEM = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)$")


class DataError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Sample:
    """One frame: its image, its labelIds PNG (None where the split has no labels)."""

    image: Path
    label: Path | None
    city: str
    split: str
    stem: str  # <city>_<seq>_<frame>, the pairing key


def find_root(root: str | Path | None = None) -> Path:
    """The dataset root: `root`, else `$CITYSCAPES_DATASET`; checked for the official layout."""
    if root is None or str(root) == "":
        env = os.environ.get(ENV_VAR)
        if not env:
            raise DataError(f"no dataset root given and ${ENV_VAR} is not set; {EXPECTED_LAYOUT}")
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset root {path} does not exist or is not a folder; {EXPECTED_LAYOUT}")
    missing = [name for name in ("leftImg8bit", "gtFine") if not (path / name).is_dir()]
    if missing:
        found = sorted(p.name for p in path.iterdir())[:10]
        raise DataError(
            f"dataset root {path}: missing {missing} (found {found}); {EXPECTED_LAYOUT}"
        )
    return path


def _stems(folder: Path, suffix: str, split: str) -> tuple[dict[str, Path], list[str]]:
    """stem -> file for every `*suffix` under folder/<city>/, plus naming problems."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    if not folder.is_dir():
        return found, problems
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):  # .DS_Store and the like
            continue
        if not entry.is_dir():
            problems.append(f"{entry}: expected only city folders in {folder}")
            continue
        for file in sorted(entry.iterdir()):
            if file.name.startswith("."):
                continue
            if not file.name.endswith(suffix):
                if suffix == LABEL_SUFFIX and "_gtFine_" in file.name:
                    continue  # gtFine also holds _color/_instanceIds/_polygons: not ours
                problems.append(f"{file}: unexpected file; expected only *{suffix} here")
                continue
            stem = file.name[: -len(suffix)]
            match = _STEM.match(stem)
            if match is None or match.group("city") != entry.name:
                problems.append(
                    f"{file}: name is not {entry.name}_<seq>_<frame>{suffix} "
                    f"(city folder {entry.name!r}, split {split!r})"
                )
                continue
            found[stem] = file
    return found, problems


def list_samples(root: str | Path | None, split: str, skip_bad: bool = False) -> list[Sample]:
    """All samples of one official split, paired by name and sorted by stem.

    Checks names and pairing only (cheap); `validate` decodes every file. A missing
    `gtFine/test` folder is allowed (official test labels are dummies): labels are None.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    base = find_root(root)
    image_dir, label_dir = base / "leftImg8bit" / split, base / "gtFine" / split
    images, problems = _stems(image_dir, IMAGE_SUFFIX, split)
    if not images:
        raise DataError(
            f"no *{IMAGE_SUFFIX} images under {image_dir} (split {split!r}); {EXPECTED_LAYOUT}"
        )
    unlabelled = split == "test" and not label_dir.is_dir()
    label_files, label_problems = ({}, []) if unlabelled else _stems(label_dir, LABEL_SUFFIX, split)
    problems += label_problems
    samples = []
    for stem in sorted(images):
        label = None if unlabelled else label_files.get(stem)
        if label is None and not unlabelled:
            problems.append(
                f"{images[stem]}: no label; expected {label_dir / images[stem].parent.name / (stem + LABEL_SUFFIX)}"
            )
            continue
        city = images[stem].parent.name
        samples.append(Sample(images[stem], label, city, split, stem))
    for stem in sorted(set(label_files) - set(images)):
        problems.append(
            f"{label_files[stem]}: label without image; expected "
            f"{image_dir / label_files[stem].parent.name / (stem + IMAGE_SUFFIX)}"
        )
    _report(problems, skip_bad, f"{split} split of {base}")
    if not samples:
        raise DataError(f"no usable samples in the {split} split of {base}; {EXPECTED_LAYOUT}")
    return samples


def _report(problems: list[str], skip_bad: bool, where: str) -> None:
    if not problems:
        return
    listing = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
    if not skip_bad:
        raise DataError(
            f"{len(problems)} problem(s) in the {where} (use skip_bad / --skip-bad to skip "
            f"them explicitly):\n  {listing}"
        )
    log.warning("skipping %d bad file(s) in the %s:\n  %s", len(problems), where, listing)


def read_image(path: str | Path, *, name: str = "image") -> np.ndarray:
    """Decode an RGB image to uint8 (H, W, 3); DataError naming the file if it cannot.

    `name` is what the message calls the file ("unreadable or truncated {name}").
    """
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated {name} ({err})") from err


def read_single_channel(
    path: str | Path, *, name: str, mode_name: str, expected: str
) -> np.ndarray:
    """Decode a single-channel (class-index) PNG to its raw array; DataError naming the file.

    The messages call the file `name` ("unreadable or truncated {name}") and, when the PNG
    is not single-channel, `mode_name` ("{mode_name} mode 'RGB'; expected a single-channel
    {expected}"). Shared by Cityscapes labelIds and CamVid class-index annotations.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "P", "I", "I;16"):
                raise DataError(
                    f"{path}: {mode_name} mode {image.mode!r}; expected a single-channel {expected}"
                )
            return np.asarray(image)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated {name} ({err})") from err


def read_label(path: str | Path) -> np.ndarray:
    """Decode a labelIds PNG to uint8 (H, W) official ids; DataError naming the file."""
    array = read_single_channel(
        path, name="label PNG", mode_name="label image", expected="8-bit labelIds PNG"
    )
    if array.dtype != np.uint8:
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise DataError(f"{path}: label values outside 0..255 are no Cityscapes ids")
        array = array.astype(np.uint8)
    return array


def read_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """Image uint8 (H, W, 3) and categories uint8 (H, W) 0..7 (None without a label)."""
    image = read_image(sample.image)
    if sample.label is None:
        return image, None
    ids = read_label(sample.label)
    if ids.shape != image.shape[:2]:
        raise DataError(
            f"{sample.label}: label is {ids.shape[1]}x{ids.shape[0]} but its image "
            f"{sample.image} is {image.shape[1]}x{image.shape[0]}; expected the same size"
        )
    try:
        categories = labels.to_categories(ids, source=str(sample.label))
    except labels.InvalidLabelError as err:
        raise DataError(str(err)) from err
    return image, categories


def _check_one(sample: Sample) -> str | None:
    try:
        read_sample(sample)
    except DataError as err:
        return str(err)
    return None


def validate(samples: Sequence[Sample], *, workers: int = 1) -> list[tuple[Sample, str]]:
    """Decode every image and label; return the bad samples with their error messages."""
    if workers > 1 and len(samples) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results: Iterable[str | None] = list(pool.map(_check_one, samples, chunksize=8))
    else:
        results = [_check_one(s) for s in samples]
    return [(s, msg) for s, msg in zip(samples, results, strict=True) if msg is not None]


def drop_bad(samples: Sequence[Sample], bad: Sequence[tuple[Sample, str]]) -> list[Sample]:
    """`samples` without those listed by `validate`, with a logged warning naming each."""
    if bad:
        log.warning(
            "skipping %d sample(s) that failed to decode:\n  %s",
            len(bad),
            "\n  ".join(msg for _, msg in bad),
        )
    dropped = {s.stem for s, _ in bad}
    return [s for s in samples if s.stem not in dropped]
