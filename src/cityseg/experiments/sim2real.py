"""Sim-to-real: train on synthetic cities only, score on the test drive of a real dataset.

`run_sim2real` renders the synthetic cities if they are missing (`cityseg.data.synth`), splits
them by city, trains one config on them (resuming or skipping a finished run with the same
config, as the suites do), then scores the model on the *test* set of a real dataset's split
manifest (e.g. CamVid converted by `cityseg import camvid`, test drive 0001TP) at the original
resolution. Everything lands in the run folder: `sim2real.json` (real-photo scores, the
synthetic test-city scores, the category shares of the synthetic training cities, how the
cities were rendered and the command) beside `eval_real_test.json` and its figures. The
technical note reads `sim2real.json` (`cityseg.report.sim2real`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from cityseg.experiments.records import current_command
from cityseg.experiments.runner import ensure_data
from cityseg.experiments.runs import default_train, read_metrics, retire, run_status
from cityseg.experiments.suites import SuiteError, TrainFn
from cityseg.training.config import Config

log = logging.getLogger(__name__)

RECORD = "sim2real.json"  # per run folder
DEFAULT_RUNS_DIR = Path("runs/sim2real")
REAL_SPLIT = "real_test"  # suffix of eval_<...>.json and the figures of the real-photo scores


def run_sim2real(
    config: Config,
    real_root: str | Path,
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    synth: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    real_manifest: str | Path | None = None,
    train_fn: TrainFn | None = None,
    command: str | None = None,
    score_only: bool = False,
) -> dict[str, Any]:
    """Train `config` on synthetic cities, score it on the real test set; return the record.

    `synth` are `cityseg.data.synth.generate` arguments used when `config.data.root` holds no
    frames yet; `split` are `make_split` arguments for its manifest. The real dataset must
    have a split manifest (`<real_root>/split.json` unless `real_manifest` names one) whose
    test set is scored; its validation set is never looked at.
    """
    from cityseg.data import split as split_mod
    from cityseg.data.synth_stats import category_shares, share_distance, shares_table

    real_root = Path(real_root)
    manifest_path = Path(real_manifest or split_mod.default_manifest_path(real_root))
    if not manifest_path.is_file():
        raise SuiteError(
            f"no split manifest {manifest_path} for the real photographs; "
            f"write one with `cityseg split --data {real_root}`"
        )
    real = split_mod.load_manifest(manifest_path)
    real_test = [s for s in real.test if s.label is not None]
    if not real_test:
        raise SuiteError(f"{manifest_path}: the test set has no labelled frames to score")
    if not synth and not (Path(config.data.root) / "leftImg8bit").is_dir():
        raise SuiteError(f"{config.data.root} has no synthetic frames and no synth settings")

    pinned = ensure_data(config, {"synth": synth or {}, "split": split or {}})
    config = _with_data(config, pinned)
    run_dir = Path(runs_dir) / config.name
    status = run_status(run_dir, config)
    started = time.perf_counter()
    if status != "done" and not score_only:
        if status == "stale":
            retire(run_dir)
        (train_fn or default_train())(config, run_dir, resume=status == "resume")
    train_s = time.perf_counter() - started
    metrics = read_metrics(run_dir)
    partial = metrics is None and score_only
    if partial:
        # an interrupted run: score its best checkpoint so far, and say so in the record
        _best_model_so_far(config, run_dir)
        metrics = {"epochs_run": _epochs_done(run_dir)}
    if metrics is None:
        raise SuiteError(f"training {config.name} finished without {run_dir / 'metrics.json'}")

    from cityseg.evaluation import evaluate as ev
    from cityseg.inference.runtime import Predictor

    started = time.perf_counter()
    result = ev.evaluate(Predictor.load(run_dir, "keras"), real_test)
    ev.write_outputs(result, run_dir, REAL_SPLIT)
    synth_manifest = split_mod.load_manifest(pinned["data.manifest"])
    pseudo = _pseudo_meta(Path(config.data.root), synth_manifest.method)
    # the rendered frames alone: pseudo-labelled real frames (if any) are counted apart
    synth_train = [s for s in synth_manifest.train if s.city not in pseudo.get("cities", [])]
    shares = category_shares(synth_train)
    synth_meta = _synth_meta(Path(config.data.root))
    record = {
        "name": config.name,
        "model": config.model.name,
        "encoder_weights": config.model.encoder_weights,
        "input_size": config.data.size,
        "augment": list(config.data.augment),
        "paste": list(config.data.paste),
        "paste_p": config.data.paste_p,
        "style_images": config.data.style_images,
        "pseudo_labels": pseudo or None,
        "epochs_run": metrics.get("epochs_run"),
        "train_time_s": metrics.get("train_time_s"),
        "trained_now": status != "done" and not score_only,
        "partial": partial,
        "real": {
            "root": str(real_root),
            "manifest": str(manifest_path),
            "cities": real.cities("test"),
            "num_images": len(real_test),
            **{k: ev.jsonable(result.get(k)) for k in _SCORES},
            "eval_s": round(time.perf_counter() - started, 1),
            # category shares of the real *training* drives (labels only counted, never learnt)
            "train_shares": category_shares(real.train),
        },
        "synth_val": _pick(metrics.get("val")),
        "synth_test": _pick(metrics.get("test")),
        "synth": {
            "root": config.data.root,
            "generator": synth_meta,
            "train_cities": sorted({s.city for s in synth_train}),
            "train_frames": len(synth_train),
            "category_shares": shares,
            "share_table": shares_table(shares),
            "share_distance": share_distance(shares),
        },
        "command": command or current_command(),
        "train_wall_s": round(train_s, 1),
    }
    (run_dir / RECORD).write_text(json.dumps(record, indent=2))
    log.info("%s: real-photo category IoU %.3f", config.name, result["category_iou"])
    return record


_SCORES = (
    "category_iou",
    "per_category_iou_official",
    "miou",
    "per_category_iou",
    "pixel_accuracy",
)


def _pick(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    if not scores:
        return None
    return {k: scores.get(k) for k in _SCORES}


def _best_model_so_far(config: Config, run_dir: Path) -> None:
    """Write `model.keras` from the best checkpoint of an unfinished run (SuiteError if none)."""

    from cityseg.training.train import _save_best_model

    state_path = run_dir / "checkpoint" / "state.json"
    best = ""
    if state_path.is_file():
        best = str(json.loads(state_path.read_text()).get("best_file") or "")
    if not best or not (run_dir / "checkpoint" / best).is_file():
        raise SuiteError(f"{run_dir}: no completed epoch yet, nothing to score (--score-only)")
    _save_best_model(config, run_dir / "checkpoint" / best, run_dir / "model.keras")


def _epochs_done(run_dir: Path) -> int:
    """Completed epochs of a run, from its `history.csv` (0 if none)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return 0
    return max(0, len(path.read_text().strip().splitlines()) - 1)


def _synth_meta(root: Path) -> dict[str, Any]:
    path = root / "synth.json"
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    return {k: meta.get(k) for k in ("renderer", "seed", "size", "frames_per_city", "cities")}


def _pseudo_meta(root: Path, method: dict[str, Any]) -> dict[str, Any]:
    """What `cityseg pseudo-label` wrote into `root` (its pseudo.json), or {} for plain data."""
    cities = (method.get("pseudo_labels") or {}).get("cities")
    if not cities:
        return {}
    path = root / "pseudo.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    keys = ("frames", "keep", "cap", "coverage", "kept", "model", "labelled", "command")
    return {"cities": list(cities), **{k: meta.get(k) for k in keys}}


def _with_data(config: Config, pinned: dict[str, Any]) -> Config:
    from cityseg.training import config as config_mod

    tree = config.to_dict()
    tree["data"]["root"] = pinned["data.root"]
    tree["data"]["manifest"] = pinned["data.manifest"]
    return config_mod.from_dict(tree)


def read_records(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> list[dict[str, Any]]:
    """Every `sim2real.json` under `runs_dir`, sorted by run name (malformed files are errors)."""
    out = []
    for path in sorted(Path(runs_dir).glob(f"*/{RECORD}")):
        try:
            out.append(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise SuiteError(f"{path}: not valid JSON ({err})") from err
    return out
