"""Experiment suites: a base config, a grid of overrides and per-profile settings, run to the end.

A suite is a YAML file under `configs/experiments/` (see `models.yaml` for the annotated
format). `run_suite` resolves one `Config` per grid point (and seed), skips runs that are
already complete (`metrics.json` present and the saved config identical), resumes runs that
have a checkpoint but no metrics, trains the rest with `cityseg.training.train.train`, and keeps a
record of what it did and how long it took in `<runs_dir>/<suite>/suite.json`.

Suites can build on each other: the loss suite trains "the chosen model" (best validation mIoU
of the models suite, if that suite has been run with the same profile), the augmentation suite
the chosen model, loss and learning rate. Selection only ever looks at validation scores.
"""

from cityseg.experiments.records import best_run, chosen_fields, current_command, read_record
from cityseg.experiments.runner import ensure_data, plan_suite, run_suite
from cityseg.experiments.runs import read_metrics, run_status, selection_score
from cityseg.experiments.study import pruning_callback
from cityseg.experiments.suites import (
    DEFAULT_RUNS_DIR,
    DEFAULT_SUITES_DIR,
    PROFILES,
    SELECTION_KEY,
    SUITE_RECORD,
    GridPoint,
    PlannedRun,
    Suite,
    SuiteError,
    list_suites,
    load_suite,
    parse_overrides,
    profile_spec,
    resolve_config,
    select_arms,
)

__all__ = [
    "DEFAULT_RUNS_DIR",
    "DEFAULT_SUITES_DIR",
    "PROFILES",
    "SELECTION_KEY",
    "SUITE_RECORD",
    "GridPoint",
    "PlannedRun",
    "Suite",
    "SuiteError",
    "best_run",
    "chosen_fields",
    "current_command",
    "ensure_data",
    "list_suites",
    "load_suite",
    "parse_overrides",
    "plan_suite",
    "profile_spec",
    "pruning_callback",
    "read_metrics",
    "read_record",
    "resolve_config",
    "run_status",
    "run_suite",
    "select_arms",
    "selection_score",
]
