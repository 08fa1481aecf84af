"""Train one suite run in its own process: `python -m cityseg.experiments.child REQUEST.json`.

A Keras/TensorFlow process keeps growing by ~320 MB per training it runs (graphs, the
allocator's arenas), so a suite of a dozen trainings in one process ends several GB above
where it started. `subprocess_train` runs each training in a fresh interpreter instead and
waits for it; the run folder is the only thing the two processes share, so skip-complete
and resume work exactly as before.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cityseg.experiments.suites import SuiteError
from cityseg.training import config as config_mod
from cityseg.training.config import Config

log = logging.getLogger(__name__)


class ChildTrainingError(SuiteError):
    """The training process of a run exited with an error (its log says why)."""


def subprocess_train(
    config: Config,
    out_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[Any] | None = None,
) -> Path:
    """`train(config, out_dir, resume)` in a child process; returns the run folder.

    In-process `callbacks` (an Optuna pruner holds the live trial) cannot cross into the
    child: with callbacks the run trains in this process, as before.
    """
    run_dir = Path(out_dir)
    if callbacks:
        from cityseg.training.train import train

        return train(config, run_dir, resume=resume, callbacks=callbacks)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    request = {"config": config.to_dict(), "run_dir": str(run_dir), "resume": resume}
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", prefix=f".{run_dir.name}.", dir=run_dir.parent, delete=False
    ) as handle:
        json.dump(request, handle)
        path = Path(handle.name)
    command = [sys.executable, "-m", "cityseg.experiments.child", str(path)]
    log.info("training %s in a child process: %s", run_dir, " ".join(command))
    child = subprocess.Popen(command, env=os.environ.copy())
    try:
        code = child.wait()
    except BaseException:
        child.terminate()  # Ctrl-C or a kill of the suite: the child must not train on
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        raise
    finally:
        path.unlink(missing_ok=True)
    if code != 0:
        raise ChildTrainingError(
            f"training {run_dir} failed in its process (exit code {code}); its log is above"
        )
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the child: read the request, train, exit 0 (or 1 with the error logged)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m cityseg.experiments.child REQUEST.json", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    request = json.loads(Path(args[0]).read_text())
    from cityseg.training.train import train

    try:
        train(
            config_mod.from_dict(request["config"]),
            Path(request["run_dir"]),
            resume=bool(request["resume"]),
        )
    except Exception:
        log.exception("training %s failed", request["run_dir"])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
