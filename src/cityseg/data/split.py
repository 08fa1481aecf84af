"""Leak-free train / val / test split by city, saved as a JSON manifest.

The official test labels are dummies, so the **official val split is our test set**, and
our validation set is carved out of the official train split **by city**: no city (and so
no frame) is in two sets. The choice is seeded and written to `<root>/split.json`, which
training, evaluation and the service all read. The official test split is never used.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityseg.data.cityscapes import (
    DataError,
    Sample,
    drop_bad,
    find_root,
    list_samples,
    validate,
)

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
SETS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.2


def default_manifest_path(root: str | Path) -> Path:
    """Where the manifest of a dataset lives by default: `<root>/split.json`."""
    return Path(root) / "split.json"


@dataclass(frozen=True)
class SplitManifest:
    """The three sets of samples plus how they were chosen."""

    root: Path
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    seed: int = 0
    method: dict[str, Any] = field(default_factory=dict)  # val_cities / val_fraction asked for

    def samples(self, name: str) -> list[Sample]:
        """The samples of set `name` (train, val or test)."""
        if name not in SETS:
            raise KeyError(f"unknown set {name!r}; expected one of {SETS}")
        return list(getattr(self, name))

    def cities(self, name: str) -> list[str]:
        """Sorted cities of set `name`."""
        return sorted({s.city for s in self.samples(name)})

    def check(self) -> None:
        """Raise DataError if a city or a frame is in two sets (e.g. a hand-edited manifest)."""
        for i, a in enumerate(SETS):
            for b in SETS[i + 1 :]:
                cities = set(self.cities(a)) & set(self.cities(b))
                frames = {s.image for s in self.samples(a)} & {s.image for s in self.samples(b)}
                if cities or frames:
                    raise DataError(
                        f"split leaks between {a} and {b}: cities {sorted(cities)}, "
                        f"{len(frames)} shared frame(s); if the dataset's official split "
                        "shares them (CamVid), choose whole cities by name: `cityseg split "
                        "--test-cities NAMES --val-cities NAMES`"
                    )

    def to_dict(self, base: Path) -> dict[str, Any]:
        """JSON-ready dict; paths relative to the root, root relative to `base`."""

        def rel(path: Path | None) -> str | None:
            return None if path is None else path.relative_to(self.root).as_posix()

        return {
            "version": MANIFEST_VERSION,
            "root": os.path.relpath(self.root.resolve(), base.resolve()),
            "seed": self.seed,
            "method": self.method,
            "official": _official(self.method),
            "sets": {
                name: {
                    "cities": self.cities(name),
                    "count": len(self.samples(name)),
                    "samples": [
                        {
                            "image": rel(s.image),
                            "label": rel(s.label),
                            "city": s.city,
                            "split": s.split,
                            "stem": s.stem,
                        }
                        for s in self.samples(name)
                    ],
                }
                for name in SETS
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write the manifest as JSON (atomically) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(path.parent), indent=1))
        tmp.replace(path)
        log.info("split manifest written to %s", path)
        return path


def make_split(
    root: str | Path | None,
    val_cities: int | Sequence[str] | None = None,
    seed: int = 0,
    *,
    val_fraction: float | None = None,
    test_cities: Sequence[str] | None = None,
    skip_bad: bool = False,
    decode: bool = False,
    workers: int = 1,
) -> SplitManifest:
    """Split by city: test = official val; val = seeded cities of official train.

    Give `val_cities` (a number of cities, or their names) or `val_fraction` (cities are
    added in seeded order until they hold at least this fraction of the official train
    frames); default fraction 0.2. At least one city stays in train.

    `test_cities` (names) is the way forward for datasets whose official split shares a
    city or drive between train and test (CamVid): the official train and val frames are
    pooled, test is every frame of those cities, validation is chosen from the rest as
    above, and the leak check still holds. `decode=True` also decodes every file first
    (`cityscapes.validate`); bad samples then fail the split, or with `skip_bad` are
    dropped with a warning naming each.
    """
    if val_cities is not None and val_fraction is not None:
        raise ValueError("give val_cities or val_fraction, not both")
    base = find_root(root)
    if test_cities:
        pool = list_samples(base, "train", skip_bad=skip_bad)
        if (base / "leftImg8bit" / "val").is_dir():
            pool += list_samples(base, "val", skip_bad=skip_bad)
        if decode:
            pool = _decoded(pool, skip_bad, workers)
        wanted = _named(test_cities, {s.city for s in pool}, "test_cities", base)
        official_train = [s for s in pool if s.city not in wanted]
        test = [s for s in pool if s.city in wanted]
    else:
        official_train = list_samples(base, "train", skip_bad=skip_bad)
        test = list_samples(base, "val", skip_bad=skip_bad)
        if decode:
            official_train, test = (_decoded(s, skip_bad, workers) for s in (official_train, test))
    cities = sorted({s.city for s in official_train})
    if len(cities) < 2:
        raise DataError(
            f"{base / 'leftImg8bit' / 'train'}: found {len(cities)} city outside test; need at "
            "least 2 to carve a validation set out by city"
        )
    order = list(cities)
    random.Random(seed).shuffle(order)
    method: dict[str, Any]
    if val_cities is not None and not isinstance(val_cities, int):
        named = _named(val_cities, set(cities), "val_cities", base)
        if set(cities) <= named:
            raise ValueError(f"val_cities={sorted(named)}: no city left for training")
        chosen = sorted(named)
        method = {"val_cities": chosen}
    elif val_cities is not None:
        if not 1 <= val_cities < len(cities):
            raise ValueError(f"val_cities={val_cities}: expected 1..{len(cities) - 1}")
        chosen = order[:val_cities]
        method = {"val_cities": val_cities}
    else:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else float(val_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"val_fraction={fraction}: expected a number in (0, 1)")
        per_city = {c: sum(s.city == c for s in official_train) for c in cities}
        chosen, frames = [], 0
        for city in order[:-1]:  # never take the last one: train keeps at least one city
            if chosen and frames >= fraction * len(official_train):
                break
            chosen.append(city)
            frames += per_city[city]
        method = {"val_fraction": fraction}
    if test_cities:
        method["test_cities"] = sorted(test_cities)
    val_set = set(chosen)
    manifest = SplitManifest(
        root=base,
        train=[s for s in official_train if s.city not in val_set],
        val=[s for s in official_train if s.city in val_set],
        test=test,
        seed=seed,
        method=method,
    )
    manifest.check()
    return manifest


def _official(method: dict[str, Any]) -> dict[str, str]:
    """Which official split each set was drawn from (pooled when test cities were named)."""
    if method.get("test_cities"):
        return {name: "train+val" for name in SETS}
    return {"train": "train", "val": "train", "test": "val"}


def parse_cities(text: str | None) -> int | list[str] | None:
    """`--val-cities` text: a number of cities (`2`) or comma-separated names (`0006R0,0016E5`)."""
    if text is None or not text.strip():
        return None
    if text.strip().isdigit():
        return int(text)
    return [c.strip() for c in text.split(",") if c.strip()]


def parse_cities_names(text: str | None) -> list[str] | None:
    """`--test-cities` text: comma-separated city names (None when empty)."""
    if text is None or not text.strip():
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def _named(names: str | Sequence[str], known: set[str], field_name: str, base: Path) -> set[str]:
    wanted = {names} if isinstance(names, str) else {str(n) for n in names}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(
            f"{field_name}: {unknown} are no cities of {base} (cities there: {sorted(known)})"
        )
    return wanted


# Bad files named one per line in a split error; the rest are counted.
LISTED_BAD = 20


def _decoded(samples: list[Sample], skip_bad: bool, workers: int) -> list[Sample]:
    bad = validate(samples, workers=workers)
    if bad and not skip_bad:
        listing = "\n  ".join(msg for _, msg in bad[:LISTED_BAD])
        if len(bad) > LISTED_BAD:
            listing += f"\n  ... and {len(bad) - LISTED_BAD} more"
        raise DataError(
            f"{len(bad)} sample(s) failed to decode (--skip-bad drops them):\n  {listing}"
        )
    return drop_bad(samples, bad)


def load_manifest(path: str | Path, root: str | Path | None = None) -> SplitManifest:
    """Read a manifest written by `SplitManifest.save`; `root` overrides the stored root."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"split manifest {path} not found; write it with `cityseg split`") from err
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"split manifest {path}: unreadable JSON ({err})") from err
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise DataError(f"{path}: expected a split manifest of version {MANIFEST_VERSION}")
    base = Path(root) if root is not None else (path.parent / data["root"]).resolve()
    sets: dict[str, list[Sample]] = {}
    try:
        for name in SETS:
            sets[name] = [
                Sample(
                    image=base / item["image"],
                    label=None if item.get("label") is None else base / item["label"],
                    city=item["city"],
                    split=item["split"],
                    stem=item["stem"],
                )
                for item in data["sets"][name]["samples"]
            ]
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: malformed manifest, missing field {err}") from err
    manifest = SplitManifest(
        root=base, seed=int(data.get("seed", 0)), method=dict(data.get("method") or {}), **sets
    )
    manifest.check()
    return manifest


def print_summary(manifest: SplitManifest, console: Any = None) -> None:
    """Print the cities and counts of each set as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"split of {manifest.root} (seed {manifest.seed})")
    table.add_column("set")
    table.add_column("official split")
    table.add_column("cities", justify="right")
    table.add_column("frames", justify="right")
    table.add_column("city names")
    official = _official(manifest.method)
    for name in SETS:
        cities = manifest.cities(name)
        table.add_row(
            name,
            official[name],
            str(len(cities)),
            str(len(manifest.samples(name))),
            ", ".join(cities),
        )
    console.print(table)
