"""Run a whole suite: plan it, make sure its data exists, train what is missing, record it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cityseg.experiments.records import Recorder, chosen_fields, current_command
from cityseg.experiments.runs import default_train, execute, run_status
from cityseg.experiments.study import run_study
from cityseg.experiments.suites import (
    DEFAULT_RUNS_DIR,
    DEFAULT_SUITES_DIR,
    PlannedRun,
    Suite,
    SuiteError,
    TrainFn,
    load_suite,
    parse_overrides,
    profile_spec,
    resolve_config,
    select_arms,
)
from cityseg.training import config as config_mod
from cityseg.training.config import Config

log = logging.getLogger(__name__)


def plan_suite(
    suite: Suite,
    profile: str,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    overrides: dict[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every grid run of the suite under `profile`, resolved, with its current status."""
    runs_dir = Path(runs_dir)
    spec = profile_spec(suite, profile)
    choices, _ = chosen_fields(suite, profile, runs_dir)
    seeds: tuple[int | None, ...] = tuple(spec.get("seeds") or suite.seeds) or (None,)
    planned = []
    for arm in select_arms(suite, profile):
        for seed in seeds:
            name = arm.name if seed is None else f"{arm.name}-s{seed}"
            cfg = resolve_config(
                suite, profile, arm, seed=seed, run_name=name, choices=choices, overrides=overrides
            )
            run_dir = runs_dir / suite.name / name
            planned.append(
                PlannedRun(name, arm.name, cfg.train.seed, cfg, run_dir, run_status(run_dir, cfg))
            )
    return planned


def ensure_data(config: Config, data_spec: dict[str, Any]) -> dict[str, Any]:
    """Make sure the dataset and split manifest exist; return the data overrides to pin them.

    `data_spec` may hold `synth: {cities, frames_per_city, size, seed}` (render the synthetic
    cities when `data.root` has none), `camvid: {src}` (import CamVid from `src` when
    `data.root` has none) and `split: {val_cities, test_cities, seed}` (make the manifest).
    """
    root = Path(config.data.root)
    synth_spec = data_spec.get("synth")
    camvid_spec = data_spec.get("camvid")
    if not (root / "leftImg8bit").is_dir() and camvid_spec:
        from cityseg.data.camvid import import_camvid
        from cityseg.data.cityscapes import DataError

        log.info("importing CamVid into %s: %s", root, camvid_spec)
        try:
            import_camvid(camvid_spec["src"], root, workers=int(camvid_spec.get("workers", 2)))
        except (DataError, KeyError) as err:
            raise SuiteError(f"profile data.camvid {camvid_spec}: {err}") from err
    if not (root / "leftImg8bit").is_dir():
        if not synth_spec:
            raise SuiteError(
                f"dataset root {root} has no leftImg8bit/ folder and the profile does not "
                "render synthetic cities or import CamVid; pass --set data.root=PATH"
            )
        from cityseg.data import synth

        log.info("rendering synthetic cities into %s: %s", root, synth_spec)
        kwargs = dict(synth_spec)
        kwargs["size"] = config_mod.parse_size(kwargs.get("size", config.data.size))
        synth.generate(root, **kwargs)
    from cityseg.data import split as split_mod

    manifest = Path(config.data.manifest) if config.data.manifest else None
    manifest = manifest or split_mod.default_manifest_path(root)
    if not Path(manifest).is_file():
        split_kwargs = dict(data_spec.get("split") or {})
        log.info("writing the split manifest %s (%s)", manifest, split_kwargs)
        split_mod.make_split(root, **split_kwargs).save(manifest)
    return {"data.root": str(root), "data.manifest": str(manifest)}


def run_suite(
    name: str,
    profile: str = "cpu",
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    suites_dir: str | Path = DEFAULT_SUITES_DIR,
    overrides: Iterable[str] | dict[str, Any] = (),
    dry_run: bool = False,
    train_fn: TrainFn | None = None,
    command: str | None = None,
    arms: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every missing run of suite `name` under `profile`; return the suite record.

    With `dry_run` nothing is trained or written: the record lists the planned runs and
    their status (done / resume / new / stale). `arms` limits the run to those arms of the
    profile (the suite is then recorded as partial, and its Optuna study is not run).
    """
    runs_dir = Path(runs_dir)
    suite = load_suite(name, suites_dir)
    spec = profile_spec(suite, profile)
    extra = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides)
    planned = _only_arms(plan_suite(suite, profile, runs_dir, extra), arms, suite, profile)
    if dry_run:
        return _dry_record(suite, profile, runs_dir, planned, spec)

    # Pin the dataset root and manifest in every config, so that skip-complete compares them.
    extra.update(ensure_data(planned[0].config, spec.get("data") or {}))
    planned = _only_arms(plan_suite(suite, profile, runs_dir, extra), arms, suite, profile)
    train_fn = train_fn or default_train()
    recorder = Recorder(runs_dir, suite, profile, command or current_command())
    recorder.record["choices"] = chosen_fields(suite, profile, runs_dir)[1]
    if spec.get("max_inference_ms") is not None:
        recorder.record["max_inference_ms"] = float(spec["max_inference_ms"])
    try:
        for run in planned:
            if run.status == "done":
                log.info("skipping %s: complete with the same config", run.name)
                recorder.run(run, "skipped", 0.0)
                continue
            seconds = execute(run, train_fn)
            recorder.run(run, "resumed" if run.status == "resume" else "trained", seconds)
        study = {**suite.optuna, **(spec.get("optuna") or {})}
        if study.get("trials") and not arms:
            run_study(suite, profile, runs_dir, extra, study, planned, train_fn, recorder)
    except BaseException:
        recorder.save("interrupted")
        raise
    recorder.save("partial" if arms else "complete")
    return recorder.record


def _only_arms(
    planned: list[PlannedRun], arms: Sequence[str], suite: Suite, profile: str
) -> list[PlannedRun]:
    if not arms:
        return planned
    known = list(dict.fromkeys(run.arm for run in planned))
    unknown = [arm for arm in arms if arm not in known]
    if unknown:
        raise SuiteError(f"--arms {unknown}: not arms of {suite.name} ({profile}): {known}")
    return [run for run in planned if run.arm in arms]


def _dry_record(
    suite: Suite, profile: str, runs_dir: Path, planned: list[PlannedRun], spec: dict[str, Any]
) -> dict[str, Any]:
    _, notes = chosen_fields(suite, profile, runs_dir)
    study = {**suite.optuna, **(spec.get("optuna") or {})}
    return {
        "suite": suite.name,
        "profile": profile,
        "dry_run": True,
        "choices": notes,
        "runs": [
            {
                "name": r.name,
                "status": r.status,
                "run_dir": str(r.run_dir),
                "model": r.config.model.name,
                "loss": r.config.train.loss,
                "learning_rate": r.config.train.learning_rate,
                "augment": list(r.config.data.augment),
                "seed": r.config.train.seed,
                "size": r.config.data.size,
                "epochs": r.config.train.epochs,
            }
            for r in planned
        ],
        "optuna_trials": int(study.get("trials") or 0),
    }
