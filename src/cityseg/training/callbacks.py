"""Training state that survives a kill: LR schedule, best model, early stopping, checkpoints.

One Keras callback (`TrainingMonitor`) owns everything that changes from epoch to epoch, and
all of it lives in one `RunState` written to `checkpoint/state.json` after every completed
epoch, so `cityseg train --resume` continues exactly where the last epoch ended:

- learning rate: linear warm-up, then cosine / constant / halve-on-plateau, a pure function of
  the epoch (plus the plateau factor, which is part of the state);
- best model on `val_miou` (weights in `checkpoint/best_NNNN.npz`; `model.keras` is written
  from it at the end);
- early stopping on `val_miou` (the wait counter is part of the state);
- `history.csv`, one row per completed epoch, appended (and trimmed on resume so that an epoch
  killed half-way never appears twice).

Files are written to a temporary name and renamed (`os.replace`), so a SIGKILL leaves either
the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

log = logging.getLogger(__name__)

MONITOR = "val_miou"
STATE_FILE = "state.json"
HISTORY_COLUMNS = ("epoch", "loss", "miou", "val_loss", "val_miou", "lr", "time_s")


def learning_rate_at(
    epoch: int, *, schedule: str, peak: float, warmup_epochs: int, epochs: int, scale: float = 1.0
) -> float:
    """Learning rate of a 0-based epoch: linear warm-up to `peak`, then the schedule.

    `cosine` decays to 1% of the peak at the last epoch; `constant` and `plateau` stay at the
    peak times `scale` (the plateau factor, halved by `TrainingMonitor` on a plateau).
    """
    if schedule not in ("cosine", "constant", "plateau"):
        raise ValueError(f"train.schedule {schedule!r} is not cosine, constant or plateau")
    if epoch < warmup_epochs:
        return peak * (epoch + 1) / (warmup_epochs + 1)
    if schedule == "cosine":
        span = max(1, epochs - warmup_epochs - 1)
        progress = min(1.0, (epoch - warmup_epochs) / span)
        floor = 0.01 * peak
        return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
    return peak * scale


@dataclass
class RunState:
    """Everything needed to continue a run after its last completed epoch."""

    seed: int = 0  # the config seed; epoch e runs with keras seed `seed + e`
    epoch: int = -1  # last completed epoch (0-based); -1 = none yet
    best_val_miou: float = -1.0  # best validation mIoU so far
    best_epoch: int = -1  # its epoch (0-based)
    wait: int = 0  # epochs since the last improvement (early stopping)
    lr_scale: float = 1.0  # plateau factor on the peak learning rate
    plateau_wait: int = 0  # epochs since the last improvement or LR cut (plateau schedule)
    stopped_early: bool = False  # early stopping fired: resume has nothing left to do
    time_limited: bool = False  # stopped by train.time_limit_min (then stopped_early too)
    epoch_times: list[float] = field(default_factory=list)  # seconds per completed epoch
    mlflow_run_id: str | None = None  # the MLflow run to continue on resume
    weights_file: str = ""  # checkpoint file of the last completed epoch
    best_file: str = ""  # weights of the best epoch so far (no optimizer state)

    def save(self, folder: Path) -> None:
        """Write `state.json` atomically."""
        atomic_write_text(folder / STATE_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> RunState:
        """Read `state.json`; an unreadable one is an error naming it."""
        path = folder / STATE_FILE
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path}: not a readable checkpoint state ({err})") from err


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_arrays(path: Path, model: Any, *, optimizer: bool) -> None:
    """Model weights (and optimizer variables) to one `.npz`, atomically, in a fixed order."""
    arrays: dict[str, Any] = {f"w{i:05d}": np.asarray(v) for i, v in enumerate(model.get_weights())}
    if optimizer and model.optimizer is not None:
        for i, var in enumerate(model.optimizer.variables):
            arrays[f"o{i:05d}"] = np.asarray(var.numpy())
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_arrays(path: Path, model: Any, *, optimizer: bool) -> None:
    """Restore what `save_arrays` wrote; the optimizer only if asked and present."""
    with np.load(path) as data:
        weights = [data[k] for k in sorted(k for k in data.files if k.startswith("w"))]
        opt = [data[k] for k in sorted(k for k in data.files if k.startswith("o"))]
    current = model.get_weights()
    if len(weights) != len(current) or any(
        a.shape != b.shape for a, b in zip(weights, current, strict=True)
    ):
        raise ValueError(f"{path}: weights do not fit this model (another model or input size?)")
    model.set_weights(weights)
    if not (optimizer and opt):
        return
    variables = model.optimizer.variables
    if not variables or len(variables) != len(opt):
        model.optimizer.build(model.trainable_variables)
        variables = model.optimizer.variables
    if len(variables) != len(opt):
        log.warning(
            "%s: optimizer state does not fit (%d vs %d variables); starting it fresh",
            path,
            len(opt),
            len(variables),
        )
        return
    for var, value in zip(variables, opt, strict=True):
        var.assign(value)


def trim_history(path: Path, last_epoch: int) -> None:
    """Keep only rows up to `last_epoch` (0-based) so a resumed epoch is never listed twice."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch + 1]
    _write_history(path, rows)


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def append_history(path: Path, row: dict[str, Any]) -> None:
    """Append one epoch row (writing the header first if the file is new)."""
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", restval="")
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def read_history(path: Path) -> list[dict[str, float]]:
    """`history.csv` as a list of numeric dicts (empty values skipped)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
        ]


class TrainingMonitor(keras.callbacks.Callback):
    """Per-epoch LR, seeding, best-model tracking, early stopping, history and checkpoint.

    Args:
        run_dir: the run folder (`history.csv`, `checkpoint/`).
        state: the `RunState` to update (restored from `state.json` on resume).
        schedule, peak_lr, warmup_epochs, epochs: the learning-rate schedule.
        patience: early-stopping patience on `val_miou` in epochs (0 = off).
        time_limit_s: stop when another epoch of the mean length so far would end past this
            many seconds of training (over all sessions of a resumed run); 0 = no limit.
        validated: whether the epochs are scored on a validation set; without one (a refit on
            train + val) every epoch is the "best" so far and the last one is kept.
        on_epoch: called with `(epoch, logs)` after each checkpoint (e.g. MLflow logging).
    """

    def __init__(
        self,
        run_dir: Path,
        state: RunState,
        *,
        schedule: str,
        peak_lr: float,
        warmup_epochs: int,
        epochs: int,
        patience: int,
        validated: bool = True,
        time_limit_s: float = 0.0,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoint"
        self.state = state
        self.schedule = schedule
        self.peak_lr = peak_lr
        self.warmup_epochs = warmup_epochs
        self.epochs = epochs
        self.patience = patience
        self.validated = validated
        if time_limit_s < 0:
            raise ValueError(f"train.time_limit_min must be >= 0, got {time_limit_s / 60:g}")
        self.time_limit_s = time_limit_s
        self.plateau_patience = max(2, patience // 2) if patience else 3
        self.on_epoch = on_epoch
        self._started = 0.0
        self._lr = peak_lr

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Re-seeding per epoch makes a resumed epoch draw the same randomness as an uninterrupted one.
        keras.utils.set_random_seed(self.state.seed + epoch)
        self._lr = learning_rate_at(
            epoch,
            schedule=self.schedule,
            peak=self.peak_lr,
            warmup_epochs=self.warmup_epochs,
            epochs=self.epochs,
            scale=self.state.lr_scale,
        )
        self.model.optimizer.learning_rate.assign(self._lr)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        seconds = time.perf_counter() - self._started
        state = self.state
        value = logs.get(MONITOR, math.nan)
        if self.validated and MONITOR not in logs:
            raise KeyError(
                f"{MONITOR} missing from the epoch logs {sorted(logs)}: no validation set?"
            )
        improved = not self.validated or value > state.best_val_miou
        previous = (state.weights_file, state.best_file)
        if improved:
            state.best_val_miou, state.best_epoch = value, epoch
            state.wait = state.plateau_wait = 0
            # A new name per epoch: until state.json is renamed, the previous best stays valid.
            state.best_file = f"best_{epoch + 1:04d}.npz"
            save_arrays(self.ckpt_dir / state.best_file, self.model, optimizer=False)
        else:
            state.wait += 1
            state.plateau_wait += 1
            if self.schedule == "plateau" and state.plateau_wait >= self.plateau_patience:
                state.lr_scale *= 0.5
                state.plateau_wait = 0
                log.info("val_miou on a plateau: learning rate scale now %.3g", state.lr_scale)
        if self.patience and state.wait >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
            log.info("early stopping: no val_miou gain for %d epochs", state.wait)
        state.epoch = epoch
        state.epoch_times.append(seconds)
        spent, mean = sum(state.epoch_times), float(np.mean(state.epoch_times))
        if self.time_limit_s and not state.stopped_early and spent + mean > self.time_limit_s:
            state.stopped_early = state.time_limited = True
            self.model.stop_training = True
            log.info(
                "time limit: %.0f s of training, another epoch would pass %.0f s",
                spent,
                self.time_limit_s,
            )
        append_history(
            self.run_dir / "history.csv",
            {"epoch": epoch + 1, **logs, "lr": self._lr, "time_s": seconds},
        )
        # The weights go first under a new name; state.json, renamed last, is the commit point.
        state.weights_file = f"epoch_{epoch + 1:04d}.npz"
        save_arrays(self.ckpt_dir / state.weights_file, self.model, optimizer=True)
        state.save(self.ckpt_dir)
        for stale in previous:
            if stale and stale not in (state.weights_file, state.best_file):
                (self.ckpt_dir / stale).unlink(missing_ok=True)
        if self.on_epoch is not None:
            self.on_epoch(epoch, {**logs, "lr": self._lr, "epoch_time_s": seconds})


class LimitedSteps(keras.utils.PyDataset):
    """The first `steps` batches of `dataset` in each epoch (`train.steps_per_epoch`).

    Keras' own `steps_per_epoch` keeps one iterator across epochs, so a finite PyDataset
    runs out of data after `len / steps` epochs and training stops. Here every epoch is a
    fresh pass that ends early; `on_epoch_end` still reaches the dataset, so each epoch
    draws a new shuffle and new augmentations.
    """

    def __init__(self, dataset: Any, steps: int) -> None:
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.steps = max(1, min(int(steps), len(dataset)))

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()
