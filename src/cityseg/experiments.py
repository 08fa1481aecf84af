"""Experiment suites: a base config, a grid of overrides and per-profile settings, run to the end.

A suite is a YAML file under `configs/experiments/` (see `models.yaml` for the annotated
format). `run_suite` resolves one `Config` per grid point (and seed), skips runs that are
already complete (`metrics.json` present and the saved config identical), resumes runs that
have a checkpoint but no metrics, trains the rest with `cityseg.train.train`, and keeps a
record of what it did and how long it took in `<runs_dir>/<suite>/suite.json`.

Suites can build on each other: the loss suite trains "the chosen model" (best validation mIoU
of the models suite, if that suite has been run with the same profile), the augmentation suite
the chosen model, loss and learning rate. Selection only ever looks at validation scores.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cityseg import config as config_mod
from cityseg.config import Config

log = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("ci", "cpu", "cityscapes")
DEFAULT_SUITES_DIR = Path("configs/experiments")
DEFAULT_RUNS_DIR = Path("runs/experiments")
SUITE_RECORD = "suite.json"  # per suite folder: profile, commands, wall time, runs
SELECTION_KEY = ("val", "miou")  # the only score used to choose anything

TrainFn = Callable[..., Path]


class SuiteError(ValueError):
    """A suite file is malformed or a suite cannot run (the message names the file or field)."""


@dataclass(frozen=True)
class GridPoint:
    """One arm of a suite: a short name and the config overrides that make it differ."""

    name: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Suite:
    """A parsed suite file.

    Args:
        name: suite name (the folder under the runs directory).
        description: one line shown by `cityseg experiments list` and in the note.
        path: the YAML file it came from.
        base: nested config dict every run starts from.
        grid: the arms.
        seeds: each arm is trained once per seed (empty = the base seed only).
        profiles: profile -> `{overrides, data, optuna, arms, seeds, max_inference_ms}`.
        choose: `[{suite, fields}]`: copy `fields` from the best validation run of `suite`.
        defaults: dotted overrides used when a chosen suite has not been run.
        optuna: learning-rate study settings (empty = no study).
    """

    name: str
    description: str
    path: Path
    base: dict[str, Any]
    grid: tuple[GridPoint, ...]
    seeds: tuple[int, ...] = ()
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    choose: tuple[dict[str, Any], ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    optuna: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlannedRun:
    """A resolved run of a suite and what `run_suite` will do with it."""

    name: str  # folder name under <runs_dir>/<suite>/
    arm: str  # grid point name (the same for every seed)
    seed: int
    config: Config
    run_dir: Path
    status: str  # done | resume | new | stale


# --------------------------------------------------------------------------- suite files


def list_suites(suites_dir: str | Path = DEFAULT_SUITES_DIR) -> list[str]:
    """Names of the suite files in `suites_dir`, sorted."""
    return sorted(p.stem for p in Path(suites_dir).glob("*.yaml"))


def load_suite(name: str | Path, suites_dir: str | Path = DEFAULT_SUITES_DIR) -> Suite:
    """Read and validate a suite by name (`models`) or path (`configs/experiments/models.yaml`)."""
    path = Path(name)
    if not path.suffix:
        path = Path(suites_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_suites(suites_dir)) or "none"
        raise SuiteError(f"suite file not found: {path} (suites in {suites_dir}: {known})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - {
        "name",
        "description",
        "base",
        "grid",
        "seeds",
        "profiles",
        "choose",
        "defaults",
        "optuna",
    }
    if unknown:
        raise SuiteError(f"{path}: unknown keys {sorted(unknown)}")
    grid = tuple(_grid_point(item, path, i) for i, item in enumerate(raw.get("grid") or []))
    if not grid:
        raise SuiteError(f"{path}: 'grid' must list at least one set of overrides")
    names = [p.name for p in grid]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SuiteError(f"{path}: grid names must differ; repeated: {duplicates}")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise SuiteError(f"{path}: 'profiles' must map a profile name to its settings")
    for pname, spec in profiles.items():
        if pname not in PROFILES:
            raise SuiteError(f"{path}: unknown profile {pname!r}; known: {list(PROFILES)}")
        bad = set(spec or {}) - {
            "overrides",
            "data",
            "optuna",
            "seeds",
            "arms",
            "max_inference_ms",
        }
        if bad:
            raise SuiteError(f"{path}: profiles.{pname}: unknown keys {sorted(bad)}")
    choose = tuple(raw.get("choose") or ())
    for i, item in enumerate(choose):
        if not isinstance(item, dict) or "suite" not in item or "fields" not in item:
            raise SuiteError(f"{path}: choose[{i}] needs 'suite' and 'fields'")
    return Suite(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or "").strip(),
        path=path,
        base=_load_base(raw.get("base"), path),
        grid=grid,
        seeds=tuple(int(s) for s in raw.get("seeds") or ()),
        profiles={k: dict(v or {}) for k, v in profiles.items()},
        choose=choose,
        defaults=dict(raw.get("defaults") or {}),
        optuna=dict(raw.get("optuna") or {}),
    )


def _load_base(base: Any, path: Path) -> dict[str, Any]:
    if base is None:
        return {}
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if isinstance(base, str):
        candidates = [Path(base), path.parent / base]
        for candidate in candidates:
            if candidate.is_file():
                tree = yaml.safe_load(candidate.read_text()) or {}
                if not isinstance(tree, dict):
                    raise SuiteError(f"{candidate}: base config must be a mapping")
                return tree
        raise SuiteError(f"{path}: base config {base!r} not found")
    raise SuiteError(f"{path}: 'base' must be a config path or an inline mapping")


def _grid_point(item: Any, path: Path, index: int) -> GridPoint:
    if not isinstance(item, dict):
        raise SuiteError(f"{path}: grid[{index}] must be a mapping of dotted overrides")
    overrides = {k: v for k, v in item.items() if k != "name"}
    for key in overrides:
        if "." not in key:
            raise SuiteError(f"{path}: grid[{index}]: {key!r} is not a dotted key like train.loss")
    name = str(item.get("name") or _name_from(overrides))
    return GridPoint(name=name, overrides=overrides)


def _name_from(overrides: dict[str, Any]) -> str:
    """A run name that says what differs, e.g. `unet_vgg16` or `hflip+color` or `none`."""
    parts = []
    for value in overrides.values():
        if isinstance(value, list | tuple):
            parts.append("+".join(str(v) for v in value) or "none")
        else:
            parts.append(str(value))
    return "-".join(parts) or "base"


# --------------------------------------------------------------------------- resolving


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SuiteError(f"override {dotted!r}: {key!r} is not a config section")
    node[keys[-1]] = copy.deepcopy(value)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`["train.epochs=2", "data.augment=[hflip]"]` -> dotted dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SuiteError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def profile_spec(suite: Suite, profile: str) -> dict[str, Any]:
    """The settings of `profile` in `suite` (a clear error if the suite lacks it)."""
    if profile not in PROFILES:
        raise SuiteError(f"unknown profile {profile!r}; known: {list(PROFILES)}")
    if profile not in suite.profiles:
        raise SuiteError(f"{suite.path}: no profile {profile!r} (has {sorted(suite.profiles)})")
    return suite.profiles[profile]


def resolve_config(
    suite: Suite,
    profile: str,
    arm: GridPoint,
    *,
    seed: int | None = None,
    run_name: str | None = None,
    choices: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Base -> profile -> chosen fields -> arm -> seed -> command-line overrides, validated."""
    tree = copy.deepcopy(suite.base)
    spec = profile_spec(suite, profile)
    for layer in (spec.get("overrides") or {}, choices or {}, arm.overrides):
        for key, value in layer.items():
            _set(tree, key, value)
    if seed is not None:
        _set(tree, "train.seed", seed)
    _set(tree, "name", f"{suite.name}-{run_name or arm.name}")
    _set(tree, "tracking.experiment", f"cityseg-{suite.name}")
    for key, value in (overrides or {}).items():
        _set(tree, key, value)
    try:
        return config_mod.from_dict(tree)
    except (KeyError, ValueError, TypeError) as err:
        raise SuiteError(f"{suite.path}: arm {arm.name!r}, profile {profile!r}: {err}") from err


def select_arms(suite: Suite, profile: str) -> list[GridPoint]:
    """The arms `profile` runs: all of them, or the subset named by its `arms` list."""
    wanted = profile_spec(suite, profile).get("arms")
    if not wanted:
        return list(suite.grid)
    by_name = {arm.name: arm for arm in suite.grid}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise SuiteError(
            f"{suite.path}: profiles.{profile}.arms names {missing}, not in the grid {list(by_name)}"
        )
    return [by_name[name] for name in wanted]


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


# --------------------------------------------------------------------------- records


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
            values[key] = _get(saved, key)
        notes.append(
            f"from {item['suite']}: {run_dir.name} (val mIoU {selection_score(metrics):.4f}"
            + (f", {metrics.get('inference_ms'):.1f} <= {limit} ms/image)" if limit else ")")
        )
    return values, notes


# --------------------------------------------------------------------------- planning


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


# --------------------------------------------------------------------------- data


def ensure_data(config: Config, data_spec: dict[str, Any]) -> dict[str, Any]:
    """Make sure the dataset and split manifest exist; return the data overrides to pin them.

    `data_spec` may hold `synth: {cities, frames_per_city, size, seed}` (render the synthetic
    cities when `data.root` has none) and `split: {val_cities, seed}` (make the manifest).
    """
    root = Path(config.data.root)
    synth_spec = data_spec.get("synth")
    if not (root / "leftImg8bit").is_dir():
        if not synth_spec:
            raise SuiteError(
                f"dataset root {root} has no leftImg8bit/ folder and the profile does not "
                "render synthetic cities; pass --set data.root=PATH"
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


# --------------------------------------------------------------------------- running


def _default_train() -> TrainFn:
    from cityseg.train import train

    return train


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


def _retire(run_dir: Path) -> None:
    """Move a run whose config changed aside, so that it is never mixed with the new one."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = run_dir.parent / ".stale" / f"{run_dir.name}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(target))
    log.info("config of %s changed: old run moved to %s", run_dir, target)


def _execute(run: PlannedRun, train_fn: TrainFn, callbacks: list[Any] | None = None) -> float:
    started = time.perf_counter()
    if run.status == "stale":
        _retire(run.run_dir)
    resume = run.status == "resume"
    log.info("%s %s -> %s", "resuming" if resume else "training", run.name, run.run_dir)
    _call_train(train_fn, run.config, run.run_dir, resume, callbacks or [])
    if read_metrics(run.run_dir) is None:
        raise SuiteError(f"training {run.name} finished without {run.run_dir / 'metrics.json'}")
    return time.perf_counter() - started


class _Recorder:
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
) -> dict[str, Any]:
    """Run every missing run of suite `name` under `profile`; return the suite record.

    With `dry_run` nothing is trained or written: the record lists the planned runs and
    their status (done / resume / new / stale).
    """
    runs_dir = Path(runs_dir)
    suite = load_suite(name, suites_dir)
    spec = profile_spec(suite, profile)
    extra = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides)
    planned = plan_suite(suite, profile, runs_dir, extra)
    if dry_run:
        return _dry_record(suite, profile, runs_dir, planned, spec)

    # Pin the dataset root and manifest in every config, so that skip-complete compares them.
    extra.update(ensure_data(planned[0].config, spec.get("data") or {}))
    planned = plan_suite(suite, profile, runs_dir, extra)
    train_fn = train_fn or _default_train()
    recorder = _Recorder(runs_dir, suite, profile, command or current_command())
    recorder.record["choices"] = chosen_fields(suite, profile, runs_dir)[1]
    if spec.get("max_inference_ms") is not None:
        recorder.record["max_inference_ms"] = float(spec["max_inference_ms"])
    try:
        for run in planned:
            if run.status == "done":
                log.info("skipping %s: complete with the same config", run.name)
                recorder.run(run, "skipped", 0.0)
                continue
            seconds = _execute(run, train_fn)
            recorder.run(run, "resumed" if run.status == "resume" else "trained", seconds)
        study = {**suite.optuna, **(spec.get("optuna") or {})}
        if study.get("trials"):
            _run_study(suite, profile, runs_dir, extra, study, planned, train_fn, recorder)
    except BaseException:
        recorder.save("interrupted")
        raise
    recorder.save("complete")
    return recorder.record


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


# --------------------------------------------------------------------------- Optuna


def pruning_callback(trial: Any, monitor: str = "val_miou") -> Any:
    """A Keras callback reporting `monitor` to the Optuna trial each epoch and stopping if pruned.

    Training stops gracefully (rather than raising) so that the run still writes its
    metrics and is recorded like any other; the caller then tells Optuna the trial was pruned.
    """
    import keras

    class OptunaPruning(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None:
                log.warning("no %r in the epoch logs: cannot report to Optuna", monitor)
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                log.info("Optuna pruned trial %d after epoch %d", trial.number, epoch + 1)
                self.pruned_at = epoch
                self.model.stop_training = True

    return OptunaPruning()


def _run_study(
    suite: Suite,
    profile: str,
    runs_dir: Path,
    extra: dict[str, Any],
    study_spec: dict[str, Any],
    planned: list[PlannedRun],
    train_fn: TrainFn,
    recorder: _Recorder,
) -> None:
    """Search one hyperparameter (the learning rate) with TPE + MedianPruner on val mIoU."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    param = str(study_spec.get("param", "train.learning_rate"))
    low, high = float(study_spec["low"]), float(study_spec["high"])
    trials = int(study_spec["trials"])
    # The study tunes the best grid arm (validation mIoU) of this very suite.
    finished = [r for r in planned if read_metrics(r.run_dir) is not None]
    if not finished:
        raise SuiteError(f"{suite.name}: no finished grid run to base the Optuna study on")
    best = max(finished, key=lambda r: selection_score(read_metrics(r.run_dir)))
    folder = runs_dir / suite.name
    folder.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    study_name = f"{suite.name}-{profile}-{best.arm}-{param}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=int(study_spec.get("seed", 0))),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=int(study_spec.get("n_startup_trials", 2)),
            n_warmup_steps=int(study_spec.get("n_warmup_steps", 1)),
        ),
        load_if_exists=True,
    )
    for old in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(old.number, state=TrialState.FAIL)  # interrupted by a previous invocation
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    arm = next(a for a in suite.grid if a.name == best.arm)
    for _ in range(max(0, trials - len(done))):
        trial = study.ask()
        value = trial.suggest_float(param, low, high, log=bool(study_spec.get("log", True)))
        name = f"{best.arm}-lr-t{trial.number}"
        overrides = {**arm.overrides, param: value}
        cfg = resolve_config(
            suite,
            profile,
            GridPoint(name, overrides),
            seed=best.config.train.seed,
            run_name=name,
            choices=chosen_fields(suite, profile, runs_dir)[0],
            overrides=extra,
        )
        run = PlannedRun(name, name, cfg.train.seed, cfg, folder / name, "new")
        if run.run_dir.exists():
            _retire(run.run_dir)
        callback = pruning_callback(trial)
        try:
            seconds = _execute(run, train_fn, [callback])
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        score = selection_score(read_metrics(run.run_dir))
        state = "pruned" if callback.pruned_at is not None else "complete"
        if state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, score)
        recorder.run(
            run, "trained", seconds, trial=trial.number, trial_state=state, **{param: value}
        )
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    recorder.record["optuna"] = {
        "study": study_name,
        "param": param,
        "range": [low, high],
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "base_arm": best.arm,
        "trials": [
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                param: t.params.get(param),
                "run": f"{best.arm}-lr-t{t.number}",
            }
            for t in study.get_trials(deepcopy=False)
        ],
        "best": (
            {"value": study.best_value, param: study.best_params[param]} if complete else None
        ),
    }
    recorder.save()
