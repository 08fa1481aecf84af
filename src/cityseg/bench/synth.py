"""Throughput of the synthetic-city generator: frames/s with 1 and 2 worker processes."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from cityseg.common.sizes import format_size
from cityseg.data.synth import SPLITS, _run, _Task, city_plan


def bench_synth(
    size: tuple[int, int] = (1024, 512),
    frames: int = 40,
    workers: tuple[int, ...] = (1, 2),
    seed: int = 0,
) -> dict[str, Any]:
    """Render and write `frames` full frames (all 4 label files) per worker count; report frames/s.

    Wall-clock time includes starting the worker pool and writing every PNG and JSON file,
    i.e. exactly what `cityseg synth` pays. On a shared machine the load average at the
    start is recorded too, since other processes slow every number down.
    """
    if frames < 1:
        raise ValueError(f"frames={frames} must be at least 1")
    plan = city_plan(5, seed)
    styles = [s for split in SPLITS for s in plan[split] if split != "test"]
    results: list[dict[str, Any]] = []
    for count in workers:
        with tempfile.TemporaryDirectory(prefix="cityseg-bench-synth-") as tmp:
            tasks = [
                _Task(Path(tmp), "train", styles[i % len(styles)], i, size, seed)
                for i in range(frames)
            ]
            load = os.getloadavg()[0]
            start = time.perf_counter()
            cpu = _run(tasks, count, progress=False)
            wall = time.perf_counter() - start
        results.append(
            {
                "workers": count,
                "seconds": round(wall, 3),
                "frames_per_s": round(frames / wall, 3),
                "frames_per_s_per_worker": round(frames / wall / count, 3),
                # CPU seconds spent rendering and writing frames (summed over workers, pool
                # start-up excluded): frames per CPU second is the rate of one uncontended
                # core, whatever else shares the machine.
                "cpu_s": round(cpu, 3),
                "frames_per_cpu_s": round(frames / cpu, 3) if cpu > 0 else None,
                "load_avg_1min_at_start": round(load, 2),
            }
        )
    by_workers: dict[int, float] = {r["workers"]: r["frames_per_s"] for r in results}
    out: dict[str, Any] = {
        "benchmark": "synth",
        "size": format_size(size),
        "frames": frames,
        "results": results,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "target_frames_per_s_per_core": 5.0,
    }
    if 1 in by_workers and 2 in by_workers:
        out["speedup_2_vs_1"] = round(by_workers[2] / by_workers[1], 3)
    return out
