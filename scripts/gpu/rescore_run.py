"""Score a run trained on another machine again here, rewriting its `metrics.json`.

`scripts/gpu/camvid.sh` trains on a lent GPU machine under `KERAS_BACKEND=jax`, from frames
carried as WebP and without the test drive. Its run folders come back here, and this scores
their `model.keras` with `cityseg.training.train.finish_run`, as at the end of every training:
val and test of the run's data root at the original resolution (the PNG frames), and
`inference_ms` on this machine's CPU. The history, epoch times and best epoch stay as recorded;
`trained_on_machine` names the machine and `scored_there` keeps the validation score it measured.

    python scripts/gpu/rescore_run.py --machine "H200 GPU, KERAS_BACKEND=jax" RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cityseg.training import config as config_mod
from cityseg.training.callbacks import RunState
from cityseg.training.tracking import Tracker
from cityseg.training.train import CHECKPOINT_DIR, finish_run, load_manifest_for, score_text


def rescore(run_dir: Path, machine: str = "") -> dict:
    """Score `run_dir` here; returns the new metrics (also written to its metrics.json)."""
    for needed in ("config.yaml", "model.keras", f"{CHECKPOINT_DIR}/state.json"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir}: {needed} not found (not a finished run folder)")
    there = run_dir / "metrics.json"
    before = json.loads(there.read_text()) if there.is_file() else {}
    config = config_mod.load(run_dir / "config.yaml")
    state = RunState.load(run_dir / CHECKPOINT_DIR)
    metrics = finish_run(config, run_dir, load_manifest_for(config), state, Tracker(False, "", ""))
    if machine:
        metrics["trained_on_machine"] = machine
        metrics["scored_there"] = before.get("scored_there") or {
            split: {k: before[split][k] for k in ("miou", "category_iou") if k in before[split]}
            for split in ("val", "test")
            if before.get(split)
        }
        there.write_text(json.dumps(metrics, indent=2, default=float))
    print(f"{run_dir}: val {score_text(metrics, 'val')}, test {score_text(metrics, 'test')}")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--machine", default="", help="where they were trained, for the tables")
    args = parser.parse_args()
    for run in args.runs:
        rescore(run, args.machine)
