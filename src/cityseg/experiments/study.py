"""The Optuna learning-rate study of a suite (TPE sampler, MedianPruner on val mIoU per epoch)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cityseg.experiments.records import Recorder, chosen_fields
from cityseg.experiments.runs import execute, read_metrics, retire, selection_score
from cityseg.experiments.suites import (
    GridPoint,
    PlannedRun,
    Suite,
    SuiteError,
    TrainFn,
    resolve_config,
)

log = logging.getLogger(__name__)


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


def run_study(
    suite: Suite,
    profile: str,
    runs_dir: Path,
    extra: dict[str, Any],
    study_spec: dict[str, Any],
    planned: list[PlannedRun],
    train_fn: TrainFn,
    recorder: Recorder,
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
            retire(run.run_dir)
        callback = pruning_callback(trial)
        try:
            seconds = execute(run, train_fn, [callback])
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
