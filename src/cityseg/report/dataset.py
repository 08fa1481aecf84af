"""The data behind the note: split rule and class pixel frequencies."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cityseg.data import labels

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- data


def _sample_attr(sample: Any, *names: str) -> Any:
    for name in names:
        value = getattr(sample, name, None)
        if value is not None:
            return value
    return None


def city_of(sample: Any) -> str:
    city = _sample_attr(sample, "city")
    if city:
        return str(city)
    path = Path(str(_sample_attr(sample, "image", "image_path") or ""))
    return path.parent.name or "?"


def load_split(config: dict[str, Any]) -> tuple[Any, Path | None, str]:
    """The split manifest of a run's dataset, its path, and a note when it cannot be read."""
    data = config.get("data") or {}
    root = Path(str(data.get("root") or ""))
    try:
        from cityseg.data import split as split_mod
    except ImportError as err:
        return None, None, f"the split module is unavailable ({err})"
    path = Path(data["manifest"]) if data.get("manifest") else split_mod.default_manifest_path(root)
    if not path.is_file():
        return None, path, f"split manifest {path} not found"
    try:
        return split_mod.load_manifest(path), path, ""
    except Exception as err:  # a broken manifest must not stop the rest of the note
        return None, path, f"split manifest {path} unreadable: {err}"


def split_rule(manifest: Any, cities: dict[str, list[str]]) -> str:
    """How the three sets were made, from the manifest's own record of it."""
    method = dict(getattr(manifest, "method", {}) or {})
    if method.get("test_cities"):
        return (
            "Split rule: whole cities (drives) chosen by name, because the dataset's official "
            "split shares them between train and test: **test** is "
            f"{', '.join(cities['test'])}, **validation** {', '.join(cities['val'])}, **train** "
            f"{', '.join(cities['train'])} (official train and val frames pooled; no city in "
            "two sets)."
        )
    if isinstance(method.get("val_cities"), list):
        how = f"the cities {', '.join(method['val_cities'])} (chosen by name)"
    elif "val_cities" in method:
        how = f"{method['val_cities']} {'city' if method['val_cities'] == 1 else 'cities'}"
    elif "val_fraction" in method:
        how = (
            f"cities adding up to at least {100 * float(method['val_fraction']):.0f}% of the frames"
        )
    else:
        how = "cities"
    return (
        "Split rule: the official test labels are not public, so **test** is the official "
        f"`val` split ({len(cities['test'])} cities), and **validation** is {how} drawn from the "
        f"official `train` cities with seed {getattr(manifest, 'seed', '?')}; the remaining "
        f"{len(cities['train'])} cities are **train**."
    )


def pixel_frequencies(samples: Sequence[Any], limit: int = 400) -> tuple[dict[str, float], int]:
    """Share of pixels per category over (up to `limit`, evenly spaced) label images."""
    from PIL import Image

    if not samples:
        return {}, 0
    step = max(1, math.ceil(len(samples) / limit))
    chosen = list(samples)[::step]
    counts = np.zeros(labels.NUM_CLASSES, dtype=np.int64)
    for sample in chosen:
        path = _sample_attr(sample, "label", "label_path", "labels")
        with Image.open(path) as img:
            ids = np.asarray(img)
        cats = labels.to_categories(ids, source=str(path))
        counts += np.bincount(cats.ravel(), minlength=labels.NUM_CLASSES)
    total = max(int(counts.sum()), 1)
    return {labels.CATEGORIES[i]: counts[i] / total for i in range(labels.NUM_CLASSES)}, len(chosen)
