"""Loader throughput: images/s of `CityscapesSequence` for 1..N workers, cache and augmentation.

Every configuration is read through Keras's own `PyDatasetAdapter` (what `model.fit` uses),
so the worker processes are the ones training gets. The reference is a plain
single-process loop that decodes and resizes the PNGs with no PyDataset at all.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cityseg.data.cityscapes import Sample

log = logging.getLogger(__name__)

DEFAULT_AUGMENT: tuple[str, ...] = ("hflip", "scale_crop", "color")


def iterate_epoch(seq: Any, max_batches: int | None = None) -> Iterator[tuple[Any, ...]]:
    """Yield one epoch of `seq` the way `model.fit` reads it (workers included), then end it."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(seq, shuffle=False)
    adapter.on_epoch_begin()
    try:
        for i, batch in enumerate(adapter.get_numpy_iterator()):
            if max_batches is not None and i >= max_batches:
                break
            yield batch
    finally:
        if adapter.enqueuer is not None:
            adapter.enqueuer.stop()
        adapter.on_epoch_end()


def _rate(images: int, seconds: float) -> float:
    return round(images / seconds, 2) if seconds > 0 else float("inf")


def plain_loop(samples: Sequence[Sample], size: tuple[int, int], n_images: int) -> dict[str, Any]:
    """Decode + letterbox `n_images` samples in this process, one after the other."""
    from cityseg.data.cache import load_resized

    start = time.perf_counter()
    for i in range(n_images):
        load_resized(samples[i % len(samples)], size)
    seconds = time.perf_counter() - start
    return {
        "images": n_images,
        "seconds": round(seconds, 3),
        "images_per_s": _rate(n_images, seconds),
    }


def time_sequence(seq: Any, batches: int) -> dict[str, Any]:
    """Images/s over the first `batches` batches of one epoch, pool start-up included.

    `steady_images_per_s` leaves out the wait for the first batch (start-up); it favours
    workers slightly, as they prefetch while the first batch is awaited.
    """
    if len(seq) < batches:
        raise ValueError(f"the sequence has {len(seq)} batches, fewer than the {batches} to time")
    images = first_images = 0
    begin = time.perf_counter()
    first = last = begin
    for i, (x, _y) in enumerate(iterate_epoch(seq, batches)):
        last = time.perf_counter()
        images += len(x)
        if i == 0:
            first, first_images = last, len(x)
    return {
        "batches": batches,
        "images": images,
        "seconds": round(last - begin, 3),
        "startup_s": round(first - begin, 3),
        "images_per_s": _rate(images, last - begin),
        "steady_images_per_s": _rate(images - first_images, last - first),
    }


def repeat_to(samples: Sequence[Sample], count: int) -> list[Sample]:
    """`count` samples cycling through `samples`, so one epoch lasts long enough to time."""
    return [samples[i % len(samples)] for i in range(max(count, len(samples)))]


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several timings of one configuration, plus the median rate."""
    best = dict(max(results, key=lambda r: r["images_per_s"]))
    best["median_images_per_s"] = round(
        float(statistics.median(r["images_per_s"] for r in results)), 2
    )
    return best


def usable_cores() -> int:
    """CPU cores this process may run on (affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _modes(workers: Sequence[int]) -> list[tuple[int, str]]:
    """(workers, mode): one in-process run for 1 worker; threads and processes beyond."""
    out: list[tuple[int, str]] = []
    for w in workers:
        out += [(w, "inline")] if w == 1 else [(w, "threads"), (w, "processes")]
    return out


def bench_loader(
    samples: Sequence[Sample],
    *,
    size: tuple[int, int],
    workers: Sequence[int] = (1, 2),
    batches: int = 20,
    batch_size: int = 8,
    augment: Sequence[str] = DEFAULT_AUGMENT,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """Measure every (workers × mode × cache × augmentation) configuration; JSON-ready dict."""
    from cityseg.data.cache import build_cache
    from cityseg.data.generator import CityscapesSequence

    if not samples:
        raise ValueError("no samples to benchmark")
    if min(workers) < 1:
        raise ValueError(f"workers {list(workers)}: each must be >= 1")
    cores = usable_cores()
    load_before = os.getloadavg()
    own_cache = cache_dir is None
    cache_root = Path(cache_dir or tempfile.mkdtemp(prefix="cityseg-bench-"))
    epoch = repeat_to(samples, batches * batch_size)
    configs = [
        (cached, augmented, w, mode)
        for cached in (False, True)
        for augmented in (False, True)
        for w, mode in _modes(workers)
    ]
    timings: dict[tuple[bool, bool, int, str], list[dict[str, Any]]] = {c: [] for c in configs}
    plains: list[dict[str, Any]] = []
    try:
        start = time.perf_counter()
        build_cache(samples, size, cache_root, workers=max(workers), progress=True)
        cache_build_s = time.perf_counter() - start
        # Rounds interleave the configurations, so that a burst of load from other
        # processes hits all of them alike; the best round is the least disturbed one.
        for round_ in range(repeats):
            plains.append(plain_loop(samples, size, batches * batch_size))
            for config in configs:
                cached, augmented, w, mode = config
                seq = CityscapesSequence(
                    epoch,
                    size=size,
                    batch_size=batch_size,
                    augment=tuple(augment) if augmented else (),
                    shuffle=True,
                    seed=seed,
                    cache_dir=cache_root if cached else None,
                    workers=w,
                    use_multiprocessing=mode == "processes",
                    progress=False,
                )
                timings[config].append(time_sequence(seq, batches))
                log.info(
                    "round %d workers=%d %s cache=%s augment=%s: %.1f images/s",
                    round_ + 1, w, mode, cached, augmented, timings[config][-1]["images_per_s"],
                )  # fmt: skip
    finally:
        if own_cache:
            shutil.rmtree(cache_root, ignore_errors=True)
    plain = _best(plains)
    runs = []
    for (cached, augmented, w, mode), results in timings.items():
        result = _best(results)
        result.update(workers=w, mode=mode, cache=cached, augment=augmented)
        result["ratio_to_plain_loop"] = round(result["images_per_s"] / plain["images_per_s"], 3)
        runs.append(result)
    return {
        "size": list(size),
        "batch_size": batch_size,
        "samples": len(samples),
        "source_image": str(samples[0].image),
        "cores": cores,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "augment": list(augment),
        "cache_build_s": round(cache_build_s, 3),
        "plain_loop": plain,
        "runs": runs,
        "summary": summarise(runs, workers, cores),
        "repeats": repeats,
        "timing": (
            "one epoch per run, `batches` batches timed from the start (pool start-up "
            "included); samples repeat when the split has fewer than batches × batch_size; "
            "images_per_s is the best of `repeats` interleaved rounds, median_images_per_s "
            "the median"
        ),
    }


def summarise(runs: list[dict[str, Any]], workers: Sequence[int], cores: int) -> dict[str, Any]:
    """Speed-ups of the most workers over one (per mode), per core, and cache over decoding."""

    def rate(w: int, mode: str, cached: bool, augmented: bool) -> float:
        return float(
            next(
                r["images_per_s"]
                for r in runs
                if (r["workers"], r["mode"], r["cache"], r["augment"])
                == (w, mode, cached, augmented)
            )
        )

    first, most = min(workers), max(workers)
    base_mode = "inline" if first == 1 else "processes"
    summary: dict[str, Any] = {}
    for cached in (False, True):
        for augmented in (False, True):
            key = f"{'cache' if cached else 'decode'}_{'aug' if augmented else 'noaug'}"
            base = rate(first, base_mode, cached, augmented)
            for mode in ("threads", "processes") if most > 1 else ():
                speedup = rate(most, mode, cached, augmented) / base
                summary[f"speedup_{most}w_{mode}_vs_{first}w_{key}"] = round(speedup, 3)
                summary[f"speedup_per_core_{most}w_{mode}_{key}"] = round(speedup / cores, 3)
    summary["cache_vs_decode_1w_noaug"] = round(
        rate(first, base_mode, True, False) / rate(first, base_mode, False, False), 3
    )
    summary["cache_vs_decode_1w_aug"] = round(
        rate(first, base_mode, True, True) / rate(first, base_mode, False, True), 3
    )
    return summary
