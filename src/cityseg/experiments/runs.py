"""One run of a suite: its status on disk, its score, and training it (or moving it aside)."""

from __future__ import annotations

import inspect
import json
import logging
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cityseg.experiments.suites import SELECTION_KEY, PlannedRun, SuiteError, TrainFn
from cityseg.training import config as config_mod
from cityseg.training.config import Config

log = logging.getLogger(__name__)


def run_status(run_dir: Path, config: Config) -> str:
    """`done` (metrics + same config), `resume` (checkpoint, same config), `stale`, or `new`."""
    same = _same_config(run_dir / "config.yaml", config)
    if (run_dir / "metrics.json").is_file():
        return "done" if same else "stale"
    if (run_dir / "checkpoint").exists():
        return "resume" if same else "stale"
    return "new"


def _same_config(path: Path, config: Config) -> bool:
    if not path.is_file():
        return False
    try:
        saved = yaml.safe_load(path.read_text()) or {}
        # Rebuild through the dataclasses so that defaults added later compare equal.
        return config_mod.from_dict(saved).to_dict() == config.to_dict()
    except (KeyError, ValueError, TypeError, yaml.YAMLError):
        return False


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The run's `metrics.json` as a dict, or None if the run has not finished."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SuiteError(f"{path}: not valid JSON ({err})") from err


def selection_score(metrics: dict[str, Any] | None) -> float:
    """Validation mIoU of a run (NaN when missing): the only number used to choose."""
    value: Any = metrics or {}
    for key in SELECTION_KEY:
        value = value.get(key) if isinstance(value, dict) else None
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def default_train() -> TrainFn:
    """Each run trains in its own process (memory does not pile up over a suite)."""
    from cityseg.experiments.child import subprocess_train

    return subprocess_train


def _call_train(
    train_fn: TrainFn, config: Config, run_dir: Path, resume: bool, callbacks: list[Any]
) -> Path:
    kwargs: dict[str, Any] = {"resume": resume}
    if callbacks:
        params = inspect.signature(train_fn).parameters
        if "callbacks" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
            kwargs["callbacks"] = callbacks
        else:
            log.warning("train() takes no callbacks: the Optuna trial cannot be pruned early")
    return Path(train_fn(config, run_dir, **kwargs))


def retire(run_dir: Path) -> None:
    """Move a run whose config changed aside, so that it is never mixed with the new one."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = run_dir.parent / ".stale" / f"{run_dir.name}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(target))
    log.info("config of %s changed: old run moved to %s", run_dir, target)


def execute(run: PlannedRun, train_fn: TrainFn, callbacks: list[Any] | None = None) -> float:
    started = time.perf_counter()
    if run.status == "stale":
        retire(run.run_dir)
    resume = run.status == "resume"
    log.info("%s %s -> %s", "resuming" if resume else "training", run.name, run.run_dir)
    _call_train(train_fn, run.config, run.run_dir, resume, callbacks or [])
    if read_metrics(run.run_dir) is None:
        raise SuiteError(f"training {run.name} finished without {run.run_dir / 'metrics.json'}")
    return time.perf_counter() - started
