"""Experiment suites: planning, skip-complete, resume, stale configs, choices, Optuna, ci run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from cityseg import experiments
from cityseg.training.config import Config

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "configs" / "experiments"


class FakeTrain:
    """Stands in for cityseg.training.train.train: writes what a finished run leaves, records calls."""

    def __init__(
        self, scores: dict[str, float] | None = None, ms: dict[str, float] | None = None
    ) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.scores = scores or {}
        self.ms = ms or {}

    def score(self, config: Config) -> float:
        for key in (config.model.name, config.train.loss, config.name):
            if key in self.scores:
                return self.scores[key]
        return 0.5

    def __call__(self, config: Config, out_dir: Path, resume: bool = False, callbacks=()) -> Path:
        self.calls.append((config.name, resume))
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir / "config.yaml")
        val = self.score(config)
        for epoch, callback in enumerate(callbacks):
            callback.on_epoch_end(epoch, {"val_miou": val})
        (out_dir / "metrics.json").write_text(
            json.dumps(
                {
                    "name": config.name,
                    "inference_ms": self.ms.get(config.model.name, 1.0),
                    "val": {"miou": val},
                    # Test ranks the runs the other way round: a choice made on
                    # test instead of validation picks a different run.
                    "test": {"miou": 1.0 - val},
                }
            )
        )
        return out_dir


def _suite_dir(tmp_path: Path, **edits: Any) -> Path:
    """A copy of the real suite files, optionally edited (suite name -> dict update)."""
    folder = tmp_path / "suites"
    shutil.copytree(SUITES, folder)
    for name, update in edits.items():
        path = folder / f"{name}.yaml"
        tree = yaml.safe_load(path.read_text())
        tree.update(update)
        path.write_text(yaml.safe_dump(tree))
    return folder


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Skip dataset preparation: the fake trainer reads no data."""
    monkeypatch.setattr(
        experiments.runner, "ensure_data", lambda config, spec: {"data.root": "data/fake"}
    )
    return ["data.root=data/fake"]


def test_real_suite_files_parse_and_name_what_differs() -> None:
    assert experiments.list_suites(SUITES) == ["augmentation", "loss", "models"]
    models = experiments.load_suite("models", SUITES)
    assert [a.name for a in models.grid] == [
        "unet_mini",
        "unet_vgg16",
        "unet_mobilenetv2",
        "fpn_efficientnetb0",
        "deeplabv3plus",
        "lraspp_mobilenetv3",
        "lraspp_lite0",
        "lraspp_lite0-imagenet",
        "lraspp_lite0-imagenet-frozen12",
        "deeplabv3plus_lite0",
        "deeplabv3plus_lite0-imagenet",
    ]
    # the synthetic cpu profile: the six from-scratch models and the real-time Lite0 pair;
    # camvid: the pretrained real-time model beside LR-ASPP from scratch
    assert len(experiments.select_arms(models, "cpu")) == 8
    assert [a.name for a in experiments.select_arms(models, "camvid")] == [
        "lraspp_lite0-imagenet-frozen12",
        "lraspp_mobilenetv3",
    ]
    aug = experiments.load_suite("augmentation", SUITES)
    assert len(aug.seeds) >= 2
    assert aug.grid[0].name == "none" and aug.grid[-1].name == "all"
    for suite in (models, experiments.load_suite("loss", SUITES)):
        assert set(suite.profiles) == set(experiments.PROFILES)
    assert set(aug.profiles) == set(experiments.PROFILES) - {"camvid"}


def test_grid_names_and_techniques_exist_in_the_code() -> None:
    from cityseg.data.augment import list_techniques
    from cityseg.models.registry import list_models

    models = experiments.load_suite("models", SUITES)
    assert {a.overrides["model.name"] for a in models.grid} <= set(list_models())
    aug = experiments.load_suite("augmentation", SUITES)
    alone = [a.name for a in aug.grid if a.name not in ("none", "all")]
    assert sorted(alone) == sorted(list_techniques())
    assert sorted(aug.grid[-1].overrides["data.augment"]) == sorted(list_techniques())


def test_dry_run_lists_runs_and_writes_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    record = experiments.run_suite(
        "augmentation", "ci", runs_dir=runs, suites_dir=SUITES, dry_run=True
    )
    names = [r["name"] for r in record["runs"]]
    assert names == ["none-s0", "none-s1", "hflip-s0", "hflip-s1"]
    assert {r["status"] for r in record["runs"]} == {"new"}
    assert record["runs"][0]["augment"] == [] and record["runs"][2]["augment"] == ["hflip"]
    assert record["runs"][1]["seed"] == 1
    assert not runs.exists()


def test_profile_overrides_reach_the_config(tmp_path: Path) -> None:
    suite = experiments.load_suite("models", SUITES)
    ci = experiments.resolve_config(suite, "ci", suite.grid[1], overrides={"train.epochs": 3})
    cpu = experiments.resolve_config(suite, "cpu", suite.grid[1])
    assert (ci.data.size, ci.train.epochs, ci.model.name) == ("64x32", 3, "unet_vgg16")
    assert (cpu.data.size, cpu.data.root, cpu.train.epochs) == ("256x128", "data/synth_cpu", 5)
    assert ci.name == "models-unet_vgg16" and ci.tracking.experiment == "cityseg-models"
    arm = next(a for a in suite.grid if a.name == "lraspp_lite0-imagenet")
    camvid = experiments.resolve_config(suite, "camvid", arm)
    assert (camvid.data.size, camvid.data.root) == ("384x288", "data/camvid")
    assert (camvid.model.encoder_weights, camvid.model.freeze_epochs) == ("imagenet", 1)


def test_skip_complete_resume_and_stale(tmp_path: Path, fake_data: list[str]) -> None:
    runs = tmp_path / "runs"
    train = FakeTrain()
    first = experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=fake_data, train_fn=train
    )
    assert [c[0] for c in train.calls] == ["models-unet_mini", "models-lraspp_mobilenetv3"]
    assert first["invocations"][-1]["trained"] == 2

    # Second run: both complete with the same config -> nothing trained.
    train.calls.clear()
    second = experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=fake_data, train_fn=train
    )
    assert train.calls == []
    assert second["invocations"][-1]["skipped"] == 2
    assert len(second["invocations"]) == 2 and second["wall_time_s"] >= 0

    # A checkpoint without metrics resumes; a changed config retrains from scratch.
    lraspp = runs / "models" / "lraspp_mobilenetv3"
    (lraspp / "metrics.json").unlink()
    (lraspp / "checkpoint").mkdir()
    experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=SUITES, overrides=fake_data, train_fn=train
    )
    assert train.calls == [("models-lraspp_mobilenetv3", True)]

    train.calls.clear()
    experiments.run_suite(
        "models",
        "ci",
        runs_dir=runs,
        suites_dir=SUITES,
        overrides=[*fake_data, "train.learning_rate=0.01"],
        train_fn=train,
    )
    assert train.calls == [("models-unet_mini", False), ("models-lraspp_mobilenetv3", False)]
    assert len(list((runs / "models" / ".stale").iterdir())) == 2  # old runs kept aside


def test_loss_suite_trains_the_best_validation_model(tmp_path: Path, fake_data) -> None:
    runs = tmp_path / "runs"
    # lraspp wins on validation even though the defaults name unet_mini.
    train = FakeTrain({"lraspp_mobilenetv3": 0.7, "unet_mini": 0.6})
    suites = _suite_dir(tmp_path, loss={"optuna": {}})
    plan = experiments.run_suite("loss", "ci", runs_dir=runs, suites_dir=suites, dry_run=True)
    assert {r["model"] for r in plan["runs"]} == {"unet_mini"}  # models suite not run yet
    experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=suites, overrides=fake_data, train_fn=train
    )
    plan = experiments.run_suite("loss", "ci", runs_dir=runs, suites_dir=suites, dry_run=True)
    assert {r["model"] for r in plan["runs"]} == {"lraspp_mobilenetv3"}
    assert "lraspp_mobilenetv3" in plan["choices"][0]
    # Another profile's models suite is not a choice for this one.
    assert experiments.best_run(runs, "models", "cpu") is None


def test_loss_suite_copies_a_pretrained_winner_with_its_recipe(tmp_path: Path, fake_data) -> None:
    # Copying the model's name alone trained the ImageNet winner from scratch in the loss suite.
    runs = tmp_path / "runs"
    train = FakeTrain({"lraspp_lite0": 0.7, "unet_mini": 0.6})
    models = yaml.safe_load((SUITES / "models.yaml").read_text())
    models["profiles"]["ci"]["arms"] = ["unet_mini", "lraspp_lite0-imagenet"]
    suites = _suite_dir(tmp_path, models=models)
    experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=suites, overrides=fake_data, train_fn=train
    )
    loss = experiments.load_suite("loss", suites)
    values, notes = experiments.chosen_fields(loss, "ci", runs)
    assert values == {
        "model.name": "lraspp_lite0",
        "model.encoder_weights": "imagenet",
        "model.freeze_epochs": 1,
        "train.encoder_lr_scale": 0.1,
    }
    assert "lraspp_lite0-imagenet" in notes[0]


def test_arms_option_runs_only_those_and_records_a_partial_suite(tmp_path: Path, fake_data) -> None:
    runs, train = tmp_path / "runs", FakeTrain()
    suites = _suite_dir(tmp_path)
    record = experiments.run_suite(
        "models",
        "ci",
        runs_dir=runs,
        suites_dir=suites,
        overrides=fake_data,
        train_fn=train,
        arms=["lraspp_mobilenetv3"],
    )
    assert [name for name, _ in train.calls] == ["models-lraspp_mobilenetv3"]
    assert record["invocations"][-1]["status"] == "partial"
    with pytest.raises(experiments.SuiteError, match=r"--arms \['nope'\]: not arms of models"):
        experiments.run_suite("models", "ci", runs_dir=runs, suites_dir=suites, arms=["nope"])


def test_chosen_model_respects_the_latency_budget(tmp_path: Path, fake_data) -> None:
    runs = tmp_path / "runs"
    train = FakeTrain({"lraspp_mobilenetv3": 0.7, "unet_mini": 0.6}, ms={"lraspp_mobilenetv3": 50})
    tree = yaml.safe_load((SUITES / "loss.yaml").read_text())
    tree["profiles"]["ci"]["max_inference_ms"] = 10
    tree["optuna"] = {}
    suites = _suite_dir(tmp_path, loss=tree)
    experiments.run_suite(
        "models", "ci", runs_dir=runs, suites_dir=suites, overrides=fake_data, train_fn=train
    )
    plan = experiments.run_suite("loss", "ci", runs_dir=runs, suites_dir=suites, dry_run=True)
    assert {r["model"] for r in plan["runs"]} == {"unet_mini"}  # lraspp is better but too slow
    assert "<= 10 ms/image" in plan["choices"][0]


def test_optuna_study_records_trials_and_resumes(tmp_path: Path, fake_data) -> None:
    runs = tmp_path / "runs"
    train = FakeTrain({"dice": 0.6, "ce": 0.5})
    record = experiments.run_suite(
        "loss", "ci", runs_dir=runs, suites_dir=SUITES, overrides=fake_data, train_fn=train
    )
    study = record["optuna"]
    assert study["base_arm"] == "dice"  # the best grid loss on validation
    assert len(study["trials"]) == 2
    low, high = study["range"]
    for trial in study["trials"]:
        assert low <= trial["train.learning_rate"] <= high
        saved = yaml.safe_load((runs / "loss" / trial["run"] / "config.yaml").read_text())
        assert saved["train"]["loss"] == "dice"
        assert saved["train"]["learning_rate"] == pytest.approx(trial["train.learning_rate"])
    assert study["best"]["value"] == pytest.approx(0.6)
    # Rerun: the grid is complete and the study has its trials, so nothing trains.
    train.calls.clear()
    again = experiments.run_suite(
        "loss", "ci", runs_dir=runs, suites_dir=SUITES, overrides=fake_data, train_fn=train
    )
    assert train.calls == []
    assert len(again["optuna"]["trials"]) == 2


def test_bad_suite_files_name_the_field(tmp_path: Path) -> None:
    bad = _suite_dir(tmp_path, models={"profiles": {"gpu": {}}})
    with pytest.raises(experiments.SuiteError, match=r"models.yaml: unknown profile 'gpu'"):
        experiments.load_suite("models", bad)
    bad = _suite_dir(tmp_path / "b", loss={"grid": [{"loss": "ce"}]})
    with pytest.raises(experiments.SuiteError, match=r"grid\[0\]: 'loss' is not a dotted key"):
        experiments.load_suite("loss", bad)
    suite = experiments.load_suite("models", SUITES)
    with pytest.raises(experiments.SuiteError, match="unknown config field"):
        experiments.resolve_config(suite, "ci", suite.grid[0], overrides={"train.epoch": 1})
    with pytest.raises(experiments.SuiteError, match="suite file not found"):
        experiments.load_suite("nope", SUITES)


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    config = experiments.resolve_config(
        experiments.load_suite("models", SUITES),
        "ci",
        experiments.load_suite("models", SUITES).grid[0],
        overrides={"data.root": str(tmp_path / "nothing")},
    )
    with pytest.raises(experiments.SuiteError, match="nothing has no leftImg8bit"):
        experiments.ensure_data(config, {})


def test_cli_dry_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityseg.cli import app

    result = CliRunner().invoke(
        app,
        [
            "experiments",
            "run",
            "models",
            "--profile",
            "ci",
            "--dry-run",
            "--runs-dir",
            str(tmp_path),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "unet_mini" in result.output and "new" in result.output
    result = CliRunner().invoke(app, ["experiments", "run", "models", "--profile", "gpu"])
    assert result.exit_code == 2 and "unknown profile" in result.output


def test_cli_list_json_and_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityseg.cli import app

    result = CliRunner().invoke(app, ["experiments", "list", "--json", "--suites-dir", str(SUITES)])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["augmentation"]["seeds"] == [0, 1]
    assert rows["loss"]["optuna_trials"] == 4
    out = tmp_path / "docs" / "note.md"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--runs-dir",
            str(tmp_path / "none"),
            "--out",
            str(out),
            "--bench-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".html").is_file()
    assert "The models suite has not been run" in out.read_text()
