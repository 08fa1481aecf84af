"""MLflow tracking that can never kill a training run.

Every call is wrapped: the first failure (no MLflow, a locked SQLite file, a bad URI) is
logged as a warning and tracking is switched off for the rest of the run.

Browse the runs with `uv run mlflow ui --backend-store-uri sqlite:///mlflow.db`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# MLflow rejects parameter values longer than this.
_MAX_PARAM_CHARS = 500


def _leaves(tree: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of each non-mapping value of a nested dict, depth first in order."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{name}.")
        else:
            yield name, value


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists and tuples become comma-joined strings."""
    return {
        name: ",".join(str(v) for v in value) if isinstance(value, list | tuple) else value
        for name, value in _leaves(tree, prefix)
    }


def numeric_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested dict, flattened with `.` (lists are skipped)."""
    return {
        name: float(value)
        for name, value in _leaves(tree, prefix)
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


class Tracker:
    """A thin, failure-proof wrapper around one MLflow run.

    Args:
        enabled: track at all (`config.tracking.mlflow`).
        tracking_uri: MLflow store, `sqlite:///mlflow.db` by default.
        experiment: MLflow experiment name.
    """

    def __init__(self, enabled: bool, tracking_uri: str, experiment: str) -> None:
        self.enabled = enabled
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id: str | None = None
        self._mlflow: Any = None

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as err:  # tracking must never stop training
            log.warning(
                "MLflow %s failed (%s: %s); tracking is off for this run",
                what,
                type(err).__name__,
                err,
            )
            self.enabled = False
            return None

    def start(
        self, run_name: str, params: Mapping[str, Any], run_id: str | None = None
    ) -> str | None:
        """Start (or, given `run_id`, resume) the MLflow run; returns its id."""

        def _start() -> str:
            import mlflow

            self._mlflow = mlflow
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_experiment(self.experiment)
            if run_id:
                run = mlflow.start_run(run_id=run_id)
            else:
                run = mlflow.start_run(run_name=run_name)
                clean = {k: str(v)[:_MAX_PARAM_CHARS] for k, v in flatten(params).items()}
                mlflow.log_params(clean)
            return str(run.info.run_id)

        self.run_id = self._guard("start", _start)
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numbers of `metrics` (nested dicts flattened)."""
        values = numeric_metrics(metrics)
        if values:
            self._guard("log_metrics", lambda: self._mlflow.log_metrics(values, step=step))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Attach a file (config, metrics, plot) to the run, if it exists."""
        if Path(path).is_file():
            self._guard("log_artifact", lambda: self._mlflow.log_artifact(str(path), artifact_path))

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (`FINISHED`, `FAILED` or `KILLED`)."""
        if self._mlflow is not None:
            self._guard("end_run", lambda: self._mlflow.end_run(status=status))
