"""Score a finished run again on this machine, rewriting its `metrics.json` and eval files.

For runs trained elsewhere, e.g. under `KERAS_BACKEND=jax` on a GPU machine that held the
frames in another encoding or without the test drive: the saved `model.keras` is scored here
by `cityseg.training.train.finish_run`, as at the end of every training (val and test of the
run's data root at the original resolution, and `inference_ms` on this machine's CPU). The
training history, epoch times and best epoch are kept as recorded.

    python scripts/rescore_run.py runs/camvid/recipes/RUN [RUN ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from cityseg.training import config as config_mod
from cityseg.training.callbacks import RunState
from cityseg.training.tracking import Tracker
from cityseg.training.train import CHECKPOINT_DIR, finish_run, load_manifest_for, score_text


def rescore(run_dir: Path) -> None:
    for needed in ("config.yaml", "model.keras", f"{CHECKPOINT_DIR}/state.json"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir}: {needed} not found (not a finished run folder)")
    config = config_mod.load(run_dir / "config.yaml")
    state = RunState.load(run_dir / CHECKPOINT_DIR)
    metrics = finish_run(config, run_dir, load_manifest_for(config), state, Tracker(False, "", ""))
    print(f"{run_dir}: val {score_text(metrics, 'val')}, test {score_text(metrics, 'test')}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for arg in sys.argv[1:]:
        rescore(Path(arg))
