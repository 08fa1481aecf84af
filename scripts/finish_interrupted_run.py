"""Score an interrupted run on its best completed epoch, as training would have at its end.

Used when the CPU budget ran out before a run's last epoch: writes `model.keras` from the
best checkpoint and `metrics.json` (val and test at the original resolution), marked
`"interrupted": true` with the epochs completed, so no table mistakes it for a finished run.

    python scripts/finish_interrupted_run.py runs/camvid/models/lraspp_lite0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cityseg.training import config as config_mod
from cityseg.training.callbacks import RunState
from cityseg.training.tracking import Tracker
from cityseg.training.train import CHECKPOINT_DIR, _save_best_model, finish_run, load_manifest_for


def main(run_dir: Path) -> None:
    """Finish `run_dir` from its checkpoint (no training)."""
    config = config_mod.load(run_dir / "config.yaml")
    state = RunState.load(run_dir / CHECKPOINT_DIR)
    _save_best_model(config, run_dir / CHECKPOINT_DIR / state.best_file, run_dir / "model.keras")
    tracker = Tracker(False, config.tracking.tracking_uri, config.tracking.experiment)
    metrics = finish_run(config, run_dir, load_manifest_for(config), state, tracker)
    metrics["interrupted"] = True
    metrics["note"] = (
        f"stopped after epoch {state.epoch + 1} of {config.train.epochs} (CPU budget); "
        f"scored on its best epoch {state.best_epoch + 1}"
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    print(run_dir, metrics["note"], "test category IoU", metrics["test"]["category_iou"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
