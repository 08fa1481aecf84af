"""Each suite run trains in its own process; skip-complete and resume behave as in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cityseg import experiments
from cityseg.experiments import child

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "configs" / "experiments"


class RecordingPopen(subprocess.Popen):  # type: ignore[type-arg]
    """subprocess.Popen that records each command and the request it was given."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        RecordingPopen.requests.append(json.loads(Path(args[-1]).read_text()) | {"argv": args})
        super().__init__(args, **kwargs)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    RecordingPopen.requests = []
    monkeypatch.setattr(child.subprocess, "Popen", RecordingPopen)
    return RecordingPopen.requests


def test_default_train_runs_in_a_child_process() -> None:
    assert experiments.runs.default_train() is child.subprocess_train


@pytest.mark.slow
def test_suite_trains_each_run_in_its_own_process_then_skips(
    synth_root: Path,
    tmp_path: Path,
    recording: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = tmp_path / "runs"
    overrides = [
        f"data.root={synth_root}",
        f"data.manifest={tmp_path / 'split.json'}",
        # Both arms build unet_mini: the test is about processes, not models, and tracing
        # MobileNetV3's training graph took 80 of this test's 194 s in CI.
        "model.name=unet_mini",
    ]
    record = experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=overrides
    )
    assert [r["config"]["name"] for r in recording] == [
        "models-unet_mini",
        "models-lraspp_mobilenetv3",
    ]
    assert all(r["argv"][1:3] == ["-m", "cityseg.experiments.child"] for r in recording)
    assert not any(r["resume"] for r in recording)
    for name in ("unet_mini", "lraspp_mobilenetv3"):
        metrics = json.loads((runs / "models" / name / "metrics.json").read_text())
        assert record["runs"][name]["val_miou"] == pytest.approx(metrics["val"]["miou"])
    assert not list((runs / "models").glob(".*.json"))  # request files are cleaned up
    # An interrupted run (checkpoint, no metrics) is handed to a child with resume=True. The
    # child here only puts the metrics back: a real child resuming after SIGKILL is
    # test_train's, and a third TensorFlow process cost this test 40 s in CI.
    metrics_file = runs / "models" / "lraspp_mobilenetv3" / "metrics.json"
    saved = metrics_file.read_text()
    metrics_file.unlink()
    recording.clear()

    class ResumingPopen(RecordingPopen):
        def __init__(self, args: list[str], **kwargs: Any) -> None:
            metrics_file.write_text(saved)
            super().__init__([sys.executable, "-c", "pass", args[-1]], **kwargs)

    monkeypatch.setattr(child.subprocess, "Popen", ResumingPopen)
    experiments.run_suite("models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=overrides)
    assert [(r["config"]["name"], r["resume"]) for r in recording] == [
        ("models-lraspp_mobilenetv3", True)
    ]
    monkeypatch.setattr(child.subprocess, "Popen", RecordingPopen)
    recording.clear()
    experiments.run_suite("models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=overrides)
    assert recording == []  # both complete with the same config: nothing started


def test_a_failing_child_is_a_suite_error_naming_the_run(synth_root: Path, tmp_path: Path) -> None:
    suite = experiments.load_suite("models", SUITES)
    config = experiments.resolve_config(
        suite,
        "ci",
        suite.grid[0],
        # refused before TensorFlow loads: the child fails in seconds, not half a minute
        overrides={"data.train_on": ["test"], "data.root": str(synth_root)},
    )
    with pytest.raises(
        experiments.SuiteError, match=r"models-x failed in its process \(exit code 1\)"
    ):
        child.subprocess_train(config, tmp_path / "models-x")
    assert not list(tmp_path.glob(".*.json"))
