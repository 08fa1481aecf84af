"""On-disk cache of pre-resized samples as memory-mapped .npy arrays.

Full-size PNGs are decoded and letterboxed once into `cache_dir/<key>/images.npy`
(uint8 N×H×W×3) and `categories.npy` (uint8 N×H×W), rows in sorted image-path order. The
key hashes the sorted sample paths with their file sizes and mtimes, the size and a format
version, so a changed source file or a new size gives a new key. A cache is built in a temp
folder and renamed into place, so two processes building it at once are safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.data import resize
from cityseg.data.cityscapes import DataError, Sample, read_sample

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_META = "meta.json"


def load_resized(sample: Sample, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample and letterbox it to `size` (image bilinear, mask nearest, void pad)."""
    image, categories = read_sample(sample)
    if categories is None:
        raise DataError(f"{sample.image}: no label; training and evaluation need labelled samples")
    return resize.letterbox(image, size, fill=0)[0], resize.letterbox(categories, size, fill=0)[0]


def _stat(path: Path | None) -> list[object]:
    if path is None:
        return [None]
    try:
        st = path.stat()
    except OSError as err:
        raise DataError(f"{path}: cannot stat ({err})") from err
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _unique_sorted(samples: Sequence[Sample]) -> list[Sample]:
    """One row per image path, in path order (a list may repeat samples)."""
    return sorted({str(s.image): s for s in samples}.values(), key=lambda s: str(s.image))


def cache_key(samples: Sequence[Sample], size: tuple[int, int]) -> str:
    """Hash of (sorted sample paths with sizes and mtimes, size, format version)."""
    items = [_stat(s.image) + _stat(s.label) for s in _unique_sorted(samples)]
    blob = json.dumps([FORMAT_VERSION, list(size), items]).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


@dataclass
class SampleCache:
    """A built cache: memory-mapped arrays plus the row of each image path."""

    folder: Path
    rows: dict[str, int]  # str(image path) -> row
    _images: np.ndarray | None = None
    _categories: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        """uint8 (N, H, W, 3), memory-mapped read-only (opened lazily, per process)."""
        if self._images is None:
            self._images = np.load(self.folder / "images.npy", mmap_mode="r")
        return self._images

    @property
    def categories(self) -> np.ndarray:
        """uint8 (N, H, W), memory-mapped read-only."""
        if self._categories is None:
            self._categories = np.load(self.folder / "categories.npy", mmap_mode="r")
        return self._categories

    def get(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the cached image and categories of `sample`."""
        try:
            row = self.rows[str(sample.image)]
        except KeyError as err:
            raise DataError(f"{sample.image}: not in the cache {self.folder}") from err
        return np.array(self.images[row]), np.array(self.categories[row])

    def __getstate__(self) -> dict[str, object]:
        # Never pickle the memory maps themselves (that would copy the whole cache into
        # every worker); each process re-opens them.
        return {"folder": self.folder, "rows": self.rows, "_images": None, "_categories": None}


def _fill_rows(args: tuple[Path, list[tuple[int, Sample]], tuple[int, int]]) -> int:
    folder, jobs, size = args
    images = np.load(folder / "images.npy", mmap_mode="r+")
    categories = np.load(folder / "categories.npy", mmap_mode="r+")
    for row, sample in jobs:
        images[row], categories[row] = load_resized(sample, size)
    images.flush()
    categories.flush()
    return len(jobs)


def _open(folder: Path, ordered: list[Sample]) -> SampleCache:
    return SampleCache(folder, {str(s.image): i for i, s in enumerate(ordered)})


def build_cache(
    samples: Sequence[Sample],
    size: tuple[int, int],
    cache_dir: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> SampleCache:
    """The cache of `samples` at `size`, built (in parallel, with a progress bar) if missing."""
    if not samples:
        raise DataError("cannot cache an empty list of samples")
    ordered = _unique_sorted(samples)
    key = cache_key(ordered, size)
    final = Path(cache_dir) / key
    if (final / _META).is_file():
        log.debug("cache hit %s", final)
        return _open(final, ordered)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
    try:
        n, (width, height) = len(ordered), size
        np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, height, width, 3)
        ).flush()
        np.lib.format.open_memmap(
            tmp / "categories.npy", mode="w+", dtype=np.uint8, shape=(n, height, width)
        ).flush()
        workers = max(1, min(workers or os.cpu_count() or 1, n))
        chunk = max(1, min(16, n // (workers * 4) or 1))
        rows = list(enumerate(ordered))
        jobs = [(tmp, rows[i : i + chunk], tuple(size)) for i in range(0, n, chunk)]
        _run(jobs, workers, progress, f"caching {n} samples at {width}x{height}")
        meta = {
            "version": FORMAT_VERSION,
            "size": [width, height],
            "images": [str(s.image) for s in ordered],
        }
        (tmp / _META).write_text(json.dumps(meta))
        try:
            tmp.rename(final)
        except OSError:
            # Another process renamed its copy first: theirs is as good as ours.
            if not (final / _META).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("cache of %d samples at %dx%d written to %s", n, width, height, final)
    return _open(final, ordered)


def _run(jobs: list, workers: int, progress: bool, title: str) -> None:  # type: ignore[type-arg]
    from rich.progress import Progress

    total = sum(len(j[1]) for j in jobs)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(title, total=total)
        if workers == 1:
            for job in jobs:
                bar.advance(task, _fill_rows(job))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_fill_rows, jobs):
                bar.advance(task, done)
