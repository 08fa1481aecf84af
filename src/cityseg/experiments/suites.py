"""Suite files: parse and validate them, resolve one Config per arm, profile and seed."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cityseg.training import config as config_mod
from cityseg.training.config import Config

PROFILES: tuple[str, ...] = ("ci", "cpu", "cityscapes", "camvid")
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


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    try:
        config_mod.set_dotted(tree, dotted, value)
    except KeyError as err:
        raise SuiteError(err.args[0]) from err


def get_field(tree: dict[str, Any], dotted: str) -> Any:
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
