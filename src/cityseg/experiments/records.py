"""`suite.json`: what each suite ran, how long it took, and what later suites choose from it."""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cityseg.experiments.runs import read_metrics, selection_score
from cityseg.experiments.suites import (
    SUITE_RECORD,
    PlannedRun,
    Suite,
    get_field,
    profile_spec,
)

log = logging.getLogger(__name__)


def read_record(runs_dir: Path, suite_name: str) -> dict[str, Any] | None:
    """The `suite.json` record of a suite, or None if it has never run."""
    path = Path(runs_dir) / suite_name / SUITE_RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def best_run(
    runs_dir: Path, suite_name: str, profile: str, max_inference_ms: float | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The finished run of `suite_name` (same profile) with the best validation mIoU.

    With `max_inference_ms`, only runs whose measured `inference_ms` fits that budget count
    (the real-time constraint of the embedded camera).
    """
    record = read_record(runs_dir, suite_name)
    if not record or record.get("profile") != profile:
        return None
    best: tuple[float, Path, dict[str, Any]] | None = None
    for entry in record.get("runs", {}).values():
        run_dir = Path(entry["run_dir"])
        metrics = read_metrics(run_dir)
        score = selection_score(metrics)
        if metrics is None or math.isnan(score):
            continue
        if max_inference_ms is not None:
            ms = metrics.get("inference_ms")
            if ms is None or not float(ms) <= float(max_inference_ms):
                continue
        if best is None or score > best[0]:
            best = (score, run_dir, metrics)
    return None if best is None else (best[1], best[2])


def chosen_fields(suite: Suite, profile: str, runs_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Fields copied from earlier suites' best validation runs, else the suite's defaults."""
    values = dict(suite.defaults)
    notes = []
    limit = profile_spec(suite, profile).get("max_inference_ms")
    for item in suite.choose:
        found = best_run(runs_dir, item["suite"], profile, limit)
        if found is None:
            notes.append(
                f"suite {item['suite']!r}: no finished run with profile {profile!r}"
                + (f" within {limit} ms/image" if limit is not None else "")
                + ": defaults"
            )
            continue
        run_dir, metrics = found
        saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        for key in item["fields"]:
            values[key] = get_field(saved, key)
        notes.append(
            f"from {item['suite']}: {run_dir.name} (val mIoU {selection_score(metrics):.4f}"
            + (f", {metrics.get('inference_ms'):.1f} <= {limit} ms/image)" if limit else ")")
        )
    return values, notes


class Recorder:
    """Keeps `<runs_dir>/<suite>/suite.json` up to date after every run."""

    def __init__(self, runs_dir: Path, suite: Suite, profile: str, command: str) -> None:
        self.path = runs_dir / suite.name / SUITE_RECORD
        old = read_record(runs_dir, suite.name)
        if old is None or old.get("profile") != profile:
            old = {"suite": suite.name, "profile": profile, "runs": {}, "invocations": []}
        self.record: dict[str, Any] = old
        self.record["description"] = suite.description
        self.record["suite_file"] = str(suite.path)
        self.started = time.perf_counter()
        self.invocation: dict[str, Any] = {
            "command": command,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "trained": 0,
            "skipped": 0,
            "wall_time_s": 0.0,
            "status": "running",
        }
        self.record["invocations"].append(self.invocation)

    def run(self, run: PlannedRun, action: str, seconds: float, **extra: Any) -> None:
        metrics = read_metrics(run.run_dir) or {}
        entry = self.record["runs"].get(run.name, {})
        entry.update(
            name=run.name,
            arm=run.arm,
            seed=run.seed,
            run_dir=str(run.run_dir),
            action=action,
            val_miou=selection_score(metrics),
            **extra,
        )
        if action != "skipped":
            entry["suite_seconds"] = round(seconds, 2)
        self.record["runs"][run.name] = entry
        self.invocation["trained" if action != "skipped" else "skipped"] += 1
        self.save()

    def save(self, status: str = "running") -> None:
        self.invocation["wall_time_s"] = round(time.perf_counter() - self.started, 2)
        self.invocation["status"] = status
        self.record["wall_time_s"] = round(
            sum(i["wall_time_s"] for i in self.record["invocations"]), 2
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def current_command() -> str:
    """The command line that started this process, quoted so it can be pasted."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("cityseg", "__main__.py")):
        argv[0] = "cityseg"
    return shlex.join(argv)
