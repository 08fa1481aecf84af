"""Training: it learns, writes a complete run folder, resumes after SIGKILL, runs mirrored."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cityseg.training import config as config_mod
from cityseg.training.callbacks import RunState, learning_rate_at, trim_history

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "data.size=64x32",
    "data.batch_size=1",  # more steps per epoch: BatchNorm statistics settle sooner
    "data.workers=1",
    "data.use_multiprocessing=false",
    "data.cache=false",
    "data.augment=[hflip]",
    "train.warmup_epochs=0",
    "train.learning_rate=0.003",
    "train.early_stopping=0",
]


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split manifest of the shared synthetic tree, kept outside it (the tree is shared)."""
    from cityseg.data.split import make_split

    return make_split(synth_root).save(tmp_path_factory.mktemp("split") / "split.json")


def tiny_config(root: Path, manifest: Path, *extra: str) -> config_mod.Config:
    """unet_mini at 64x32 on the synthetic tree: seconds per epoch on one core."""
    return config_mod.load(
        REPO / "configs" / "unet_mini_256x128_ce.yaml",
        [f"data.root={root}", f"data.manifest={manifest}", "tracking.mlflow=false", *TINY, *extra],
    )


# --------------------------------------------------------------------------- pure parts


def test_learning_rate_warms_up_then_follows_the_schedule() -> None:
    kw = {"peak": 1.0, "warmup_epochs": 2, "epochs": 10}
    assert [learning_rate_at(e, schedule="cosine", **kw) for e in (0, 1)] == [1 / 3, 2 / 3]
    assert learning_rate_at(2, schedule="cosine", **kw) == pytest.approx(1.0)
    assert learning_rate_at(9, schedule="cosine", **kw) == pytest.approx(0.01)
    cosine = [learning_rate_at(e, schedule="cosine", **kw) for e in range(2, 10)]
    assert all(a > b for a, b in itertools.pairwise(cosine))
    assert learning_rate_at(7, schedule="constant", **kw) == 1.0
    assert learning_rate_at(7, schedule="plateau", scale=0.25, **kw) == 0.25
    with pytest.raises(ValueError, match=r"train\.schedule"):
        learning_rate_at(3, schedule="step", **kw)


def test_time_limit_stops_before_an_epoch_would_end_past_it(tmp_path: Path) -> None:
    import keras

    from cityseg.training.callbacks import TrainingMonitor

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.zeros((1, 2)), np.zeros((1, 1)))  # the optimizer has its slots

    def epochs(limit_s: float, seconds: list[float], done: list[float]) -> RunState:
        state = RunState(epoch_times=list(done))
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        (run / "checkpoint").mkdir(parents=True)
        monitor = TrainingMonitor(run, state, schedule="constant", peak_lr=0.1,
                                  warmup_epochs=0, epochs=9, patience=0, validated=False,
                                  time_limit_s=limit_s)  # fmt: skip
        monitor.set_model(model)
        model.stop_training = False
        for epoch, spent in enumerate(seconds, start=len(done)):
            monitor.on_epoch_begin(epoch)
            monitor._started -= spent  # as if the epoch had taken `spent` seconds
            monitor.on_epoch_end(epoch, {"loss": 1.0})
            if model.stop_training:
                break
        return state

    # 6 s epochs under 20 s: after two (12 s) a third would end at 18 s, after three at 24
    state = epochs(20.0, [6.0, 6.0, 6.0, 6.0], [])
    assert len(state.epoch_times) == 3 and state.time_limited and state.stopped_early
    # a resumed run counts the seconds of its earlier sessions
    state = epochs(20.0, [6.0, 6.0], [6.0, 6.0])
    assert len(state.epoch_times) == 3 and state.time_limited
    assert not epochs(0.0, [6.0, 6.0], []).time_limited  # 0: no limit
    with pytest.raises(ValueError, match=r"train\.time_limit_min must be >= 0"):
        epochs(-60.0, [1.0], [])


def test_history_trim_drops_the_epoch_a_kill_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n1,0.9\n2,0.8\n3,0.7\n")
    trim_history(path, last_epoch=1)  # 0-based: epochs 1 and 2 completed
    with path.open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_state_round_trips_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    state = RunState(seed=3, epoch=4, best_val_miou=0.5, wait=2, epoch_times=[1.0, 2.0])
    state.save(tmp_path)
    assert RunState.load(tmp_path) == state
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"state\.json"):
        RunState.load(tmp_path)


def test_checkpoint_arrays_restore_weights_and_optimizer_state(tmp_path: Path) -> None:
    import keras

    from cityseg.training.callbacks import load_arrays, save_arrays

    def build() -> keras.Model:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(keras.optimizers.AdamW(0.01), "mse")
        return model

    trained = build()
    trained.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=3, verbose=0)
    save_arrays(tmp_path / "epoch.npz", trained, optimizer=True)
    fresh = build()
    load_arrays(tmp_path / "epoch.npz", fresh, optimizer=True)
    for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations.numpy()) == 3  # Adam moments and step count restored
    for a, b in zip(trained.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"epoch\.npz"):
        load_arrays(tmp_path / "epoch.npz", other, optimizer=False)


def test_tracking_failure_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from cityseg.training.tracking import Tracker, flatten

    assert flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": "1,2"}
    blocker = tmp_path / "file"
    blocker.write_text("")
    tracker = Tracker(True, f"sqlite:///{blocker}/sub/mlflow.db", "x")  # a file, not a folder
    assert tracker.start("run", {"a": 1}) is None
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.end()
    assert not tracker.enabled
    assert "MLflow start failed" in caplog.text


def test_class_weights_favour_rare_categories(synth_root: Path) -> None:
    from cityseg.data.cityscapes import list_samples
    from cityseg.training.train import class_weights

    weights = class_weights(list_samples(synth_root, "train"), (64, 32))
    assert weights.shape == (8,) and np.isfinite(weights).all()
    # flat (road) is common and human is rare in street scenes.
    assert weights[6] > weights[1]


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def trained_run(synth_root: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short real training run, with MLflow on, shared by the tests below."""
    from cityseg.training.train import train

    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(
        synth_root,
        manifest,
        "train.epochs=5",
        "tracking.mlflow=true",
        f"tracking.tracking_uri=sqlite:///{out}/mlflow.db",
        "tracking.experiment=test",
    )
    return train(cfg, out / "tiny")


class MajorityPredictor:
    """Predicts the most frequent training category everywhere: the baseline to beat."""

    def __init__(self, category: int) -> None:
        self.category = category

    def predict_many(self, images: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        return [np.full(image.shape[:2], self.category, dtype=np.uint8) for image in images]


@pytest.mark.slow
def test_training_learns_beyond_the_majority_class(trained_run: Path, manifest: Path) -> None:
    from cityseg.data import labels
    from cityseg.data.cityscapes import read_label
    from cityseg.data.split import load_manifest
    from cityseg.evaluation.evaluate import evaluate

    with (trained_run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert losses[-1] < 0.8 * losses[0]
    split = load_manifest(manifest)
    counts = np.zeros(8, dtype=np.int64)
    for sample in split.train:
        counts += np.bincount(labels.to_categories(read_label(sample.label)).ravel(), minlength=8)
    baseline = evaluate(MajorityPredictor(int(counts.argmax())), split.val)["miou"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["val"]["miou"] > baseline + 0.05, (metrics["val"]["miou"], baseline)


@pytest.mark.slow
def test_run_folder_is_complete(trained_run: Path) -> None:
    for name in ("config.yaml", "history.csv", "metrics.json", "model.keras", "eval_val.json"):
        assert (trained_run / name).is_file(), name
    for name in ("learning_curves.png", "confusion_matrix_test.png", "examples_val.png"):
        assert (trained_run / "plots" / name).stat().st_size > 1000, name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    keys = {"name", "model", "loss", "input_size", "params", "model_size_mb", "train_time_s",
            "time_per_epoch_s", "epochs_run", "best_epoch", "inference_ms", "val", "test"}  # fmt: skip
    assert keys <= set(metrics)
    assert metrics["time_limited"] is False  # no train.time_limit_min: all 5 epochs ran
    for split in ("val", "test"):
        scores = metrics[split]
        for key in ("miou", "category_iou", "per_category_iou", "dice", "per_category_dice",
                    "pixel_accuracy", "confusion_matrix"):  # fmt: skip
            assert key in scores, (split, key)
        assert len(scores["confusion_matrix"]) == 8
    assert metrics["input_size"] == "64x32" and metrics["epochs_run"] == 5
    assert 1 <= metrics["best_epoch"] <= 5 and metrics["params"] > 1000
    assert metrics["inference_ms"] > 0 and metrics["model_size_mb"] > 0
    # The saved config reloads to the same run.
    saved = config_mod.load(trained_run / "config.yaml")
    assert saved.input_size == (64, 32) and saved.train.epochs == 5
    # model.keras is the best epoch: its val mIoU (training resolution) is the best in history.
    with (trained_run / "history.csv").open() as f:
        best = max(float(r["val_miou"]) for r in csv.DictReader(f))
    assert metrics["best_val_miou_during_training"] == pytest.approx(best)


@pytest.mark.slow
def test_mlflow_recorded_params_metrics_and_artifacts(trained_run: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{trained_run.parent}/mlflow.db")
    experiment = client.get_experiment_by_name("test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["model.name"] == "unet_mini"
    assert run.data.params["data.size"] == "64x32"
    assert len(client.get_metric_history(run.info.run_id, "val_miou")) == 5
    assert "test.miou" in run.data.metrics
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_an_existing_run_is_not_overwritten(
    trained_run: Path, synth_root: Path, manifest: Path
) -> None:
    from cityseg.training.train import TrainingError, train

    with pytest.raises(TrainingError, match="--resume"):
        train(tiny_config(synth_root, manifest), trained_run)
    with pytest.raises(TrainingError, match="already finished"):
        train(tiny_config(synth_root, manifest), trained_run, resume=True)


@pytest.mark.slow
def test_init_from_a_run_starts_from_its_weights_at_another_input_size(
    trained_run: Path, synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    """Fine-tuning from a recorded run: the new run's first step sees exactly the saved
    weights, although it trains at another input size (the models are fully convolutional)."""
    import keras

    from cityseg.inference.runtime import load_keras_model
    from cityseg.training.train import train

    saved = load_keras_model(trained_run / "model.keras").get_weights()
    first: list[list[np.ndarray]] = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            first.append(self.model.get_weights())

    cfg = tiny_config(
        synth_root, manifest, f"model.init_from={trained_run}", "data.size=96x48", "train.epochs=1"
    )
    run = train(cfg, tmp_path / "tuned", callbacks=[Spy()])
    assert len(first[0]) == len(saved)
    assert all(np.array_equal(a, b) for a, b in zip(first[0], saved, strict=True))
    assert config_mod.load(run / "config.yaml").model.init_from == str(trained_run)


@pytest.mark.slow
def test_init_from_refuses_another_model_and_names_the_file(
    trained_run: Path, tmp_path: Path
) -> None:
    from cityseg.models.registry import create_model
    from cityseg.training.train import TrainingError, init_weights

    other = create_model("unet_mini", input_size=(64, 32), num_classes=8, filters=(8, 16, 32, 64))
    with pytest.raises(TrainingError, match=r"model\.keras: weight .* has shape .*same"):
        init_weights(other, trained_run / "model.keras")
    shallower = create_model("unet_mini", input_size=(64, 32), num_classes=8, filters=(8, 16, 32))
    with pytest.raises(TrainingError, match=r"weight tensors.*must be the same"):
        init_weights(shallower, trained_run / "model.keras")


def test_init_from_a_missing_run_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from cityseg.training.train import TrainingError, train

    cfg = tiny_config(
        tmp_path / "no-data", tmp_path / "no-split.json", f"model.init_from={tmp_path / 'gone'}"
    )
    with pytest.raises(TrainingError, match=r"model\.init_from: .*gone: no such"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_steps_per_epoch_never_runs_out_of_data() -> None:
    import keras

    from cityseg.training.callbacks import LimitedSteps

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epochs_ended = 0

        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return np.full((2, 3), index, np.float32), np.ones((2, 1), np.float32)

        def on_epoch_end(self) -> None:
            self.epochs_ended += 1

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = Batches()
    # Keras' steps_per_epoch=3 would exhaust 4 batches in epoch 2 and stop; each epoch restarts here.
    history = model.fit(LimitedSteps(data, 3), epochs=5, verbose=0)
    assert len(history.history["loss"]) == 5
    assert data.epochs_ended >= 5  # every epoch reaches the dataset (new shuffle, new draws)


def test_mixed_precision_is_refused_politely_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    import keras

    from cityseg.training.train import set_mixed_precision

    assert set_mixed_precision(True) is False
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "needs a GPU" in caplog.text


def test_other_keras_backends_train_on_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """JAX or PyTorch (a GPU machine without TensorFlow): one replica; tf.distribute refused."""
    import keras

    from cityseg.training.train import SingleDevice, TrainingError, make_strategy

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for name in ("auto", "default"):
        strategy = make_strategy(name)
        assert isinstance(strategy, SingleDevice) and strategy.num_replicas_in_sync == 1
        with strategy.scope():
            pass
    with pytest.raises(TrainingError, match=r"'mirrored' needs the TensorFlow back end.*jax"):
        make_strategy("mirrored")


@pytest.mark.slow
def test_rescore_writes_a_finished_runs_scores_again(trained_run: Path, tmp_path: Path) -> None:
    """scripts/gpu/rescore_run.py (for runs trained elsewhere): the same scores from model.keras,
    the recorded training kept."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location(
        "rescore_run", REPO / "scripts" / "gpu" / "rescore_run.py"
    )
    assert spec is not None and spec.loader is not None
    rescore_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rescore_run)

    with pytest.raises(SystemExit, match=r"config.yaml not found \(not a finished run folder\)"):
        rescore_run.rescore(tmp_path)
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.npz"))
    before = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**before, "test": {"miou": 0.0}}))
    (run / "eval_test.json").unlink()
    after = rescore_run.rescore(run, machine="elsewhere")
    assert after == json.loads((run / "metrics.json").read_text())
    assert after["trained_on_machine"] == "elsewhere"
    assert after["scored_there"]["test"] == {"miou": 0.0}  # what the other machine measured
    assert after["test"]["miou"] == pytest.approx(before["test"]["miou"])
    assert after["val"]["confusion_matrix"] == before["val"]["confusion_matrix"]
    assert after["train_time_s"] == before["train_time_s"]
    assert after["best_epoch"] == before["best_epoch"]
    assert (run / "eval_test.json").is_file()


# --------------------------------------------------------------------------- subprocesses


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cityseg.cli import main; main()", *args]


@pytest.mark.slow
def test_resume_after_sigkill_runs_every_epoch_exactly_once(
    synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    run = tmp_path / "killed"
    config = tmp_path / "config.yaml"
    # A refit (train + val, no validation): its state holds no validation score to resume
    # from, the case an ordinary run's in-process resume test below cannot reach.
    refit = ("data.train_on=[train,val]", "train.early_stopping=0")
    tiny_config(synth_root, manifest, "train.epochs=3", *refit).save(config)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        _cli("train", "--config", str(config), "--out", str(run)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state = run / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-epoch 2 (or later): at most that epoch is lost
    _, err = proc.communicate()
    assert state.is_file(), err.decode()[-3000:]
    killed_at = json.loads(state.read_text())["epoch"]
    assert killed_at < 2 and not (run / "metrics.json").exists()

    done = subprocess.run(
        _cli("train", "--resume", str(run)), env=env, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with (run / "history.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["trained_on"] == ["train", "val"]
    assert "val" not in metrics and not math.isnan(metrics["test"]["miou"])
    assert len(list((run / "checkpoint").glob("epoch_*.npz"))) == 1
    assert len(list((run / "checkpoint").glob("best_*.npz"))) == 1


MIRRORED = """
import logging, sys, tensorflow as tf
logging.basicConfig(level=logging.INFO)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from cityseg.training import config as config_mod
from cityseg.training.train import make_strategy, train
assert make_strategy("mirrored").num_replicas_in_sync == 2
cfg = config_mod.load(sys.argv[1])
train(cfg, Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_one_epoch_under_mirrored_strategy_on_two_logical_cpus(
    synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    # The global batch of 2 gives each replica one image (8 train and 4 val images: no remainder).
    extra = ("train.epochs=1", "train.strategy=mirrored", "data.batch_size=2")
    tiny_config(synth_root, manifest, *extra).save(config)
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(config), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1


# --------------------------------------------------------------------------- resume, selection


class Interrupted(RuntimeError):
    """Raised by `StopAfter` to end a run as a crash would, after an epoch's checkpoint."""


def _own_miou(model, samples: list, size: tuple[int, int]) -> float:
    """mIoU of `model` on `samples` at the training size, computed here with NumPy."""
    from cityseg.data.generator import CityscapesSequence

    seq = CityscapesSequence(samples, size=size, batch_size=4)
    cm = np.zeros((8, 8), np.int64)
    for i in range(len(seq)):
        x, y = seq[i]
        pred = np.asarray(model(x, training=False)).argmax(-1)
        cm += np.bincount(y.ravel().astype(np.int64) * 8 + pred.ravel(), minlength=64).reshape(8, 8)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]))


def _resume_callbacks(manifest_path: Path, seen: list, stop_after: int | None = None) -> list:
    """Spy (val mIoU recomputed on val and test), sabotage of the last epoch, optional stop."""
    import keras

    from cityseg.data.split import load_manifest

    split = load_manifest(manifest_path)

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.append(
                (
                    epoch,
                    float(logs["val_miou"]),
                    _own_miou(self.model, split.val, (64, 32)),
                    _own_miou(self.model, split.test, (64, 32)),
                )
            )

    class SabotageLastEpoch(keras.callbacks.Callback):
        # The last epoch starts from a model that calls everything "human": it ends worse
        # than the best epoch, so saving the last epoch instead of the best shows.
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 2:
                head = [w for w in self.model.weights if tuple(w.shape) == (8,)][-1]
                head.assign(np.eye(8, dtype=np.float32)[6] * 100.0)

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == stop_after:
                raise Interrupted(f"stopped after epoch {epoch}")

    return [Spy(), SabotageLastEpoch(), *([StopAfter()] if stop_after is not None else [])]


RESUME = ("train.epochs=3", "train.steps_per_epoch=2", "data.augment=[hflip,scale_crop]")


@pytest.fixture(scope="module")
def straight_run(synth_root: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three short epochs straight through (the last one sabotaged), with what the spy saw."""
    from cityseg.training.train import train

    seen: list = []
    out = tmp_path_factory.mktemp("straight") / "run"
    train(
        tiny_config(synth_root, manifest, *RESUME), out, callbacks=_resume_callbacks(manifest, seen)
    )
    return out, seen


@pytest.fixture(scope="module")
def resumed_run(synth_root: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same run as `straight_run`, interrupted after its first epoch, then resumed."""
    from cityseg.training.train import train

    out = tmp_path_factory.mktemp("resumed") / "run"
    cfg = tiny_config(synth_root, manifest, *RESUME)
    with pytest.raises(Interrupted):
        train(cfg, out, callbacks=_resume_callbacks(manifest, [], stop_after=0))
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 0
    train(cfg, out, resume=True, callbacks=_resume_callbacks(manifest, []))
    return out


def _history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_resumed_run_ends_with_the_weights_and_loss_of_an_uninterrupted_one(
    straight_run: tuple, resumed_run: Path
) -> None:
    straight, resumed = straight_run[0], resumed_run
    a, b = _history(straight), _history(resumed)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == ["1", "2", "3"]
    for ra, rb in zip(a, b, strict=True):  # same loss every epoch, the resumed ones included
        assert float(rb["loss"]) == pytest.approx(float(ra["loss"]), rel=1e-4, abs=1e-6), (ra, rb)
        assert float(rb["val_miou"]) == pytest.approx(float(ra["val_miou"]), abs=1e-4)
    # Weights AND optimizer state (Adam moments, step count) match after the last epoch.
    with (
        np.load(straight / "checkpoint" / "epoch_0003.npz") as wa,
        np.load(resumed / "checkpoint" / "epoch_0003.npz") as wb,
    ):
        assert sorted(wa.files) == sorted(wb.files)
        assert any(k.startswith("o") for k in wa.files)
        for key in wa.files:
            np.testing.assert_allclose(wb[key], wa[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
def test_selection_reads_validation_never_test(straight_run: tuple) -> None:
    seen = straight_run[1]
    assert [epoch for epoch, *_ in seen] == [0, 1, 2]
    for epoch, logged, on_val, on_test in seen:
        assert logged == pytest.approx(on_val, abs=1e-4), (epoch, logged, on_val, on_test)
    # The two sets score differently, so the check above tells them apart.
    assert any(abs(on_val - on_test) > 1e-3 for _, _, on_val, on_test in seen)


@pytest.mark.slow
def test_model_keras_is_the_best_epoch_not_the_last(straight_run: tuple) -> None:
    from cityseg.data.split import load_manifest
    from cityseg.inference.runtime import load_keras_model

    run = straight_run[0]
    val_miou = [float(r["val_miou"]) for r in _history(run)]
    best = int(np.argmax(val_miou))
    assert best < 2 and val_miou[2] < val_miou[best] - 0.01  # the sabotaged last epoch is worse
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == best + 1
    config = config_mod.load(run / "config.yaml")
    split = load_manifest(config.data.manifest)
    saved = _own_miou(load_keras_model(run / "model.keras"), split.val, (64, 32))
    assert saved == pytest.approx(val_miou[best], abs=1e-4), (saved, val_miou)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("data.train_on=[train,test]",), "expected [train] or [train, val]"),
        (("data.train_on=[train,val]", "train.early_stopping=3"), "train.early_stopping=0"),
        (("data.train_on=[train,val]", "train.schedule=plateau"), "train.schedule=plateau"),
    ],
)
def test_train_on_refuses_what_would_need_validation(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    from cityseg.training.train import TrainingError, train

    cfg = tiny_config(tmp_path / "no-data", tmp_path / "no-split.json", *extra)
    with pytest.raises(TrainingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.slow
def test_refit_with_a_frozen_first_epoch_learns_from_train_and_val_and_keeps_the_last_epoch(
    synth_root: Path, manifest: Path, tmp_path: Path
) -> None:
    """Two behaviours in one (short) training, to keep the suite fast: a refit on train + val,
    and the encoder frozen for the first epoch, then unfrozen and recompiled."""
    import keras

    from cityseg.data.split import load_manifest
    from cityseg.inference.runtime import load_keras_model
    from cityseg.training.train import train

    split = load_manifest(manifest)
    seen: list[tuple[int, bool, int]] = []
    steps: list[int] = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            encoder = self.model.get_layer("encoder")
            seen.append((epoch, encoder.trainable, len(self.model.trainable_weights)))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            steps.append(self.params["steps"])
            assert "val_miou" not in (logs or {})

    cfg = tiny_config(
        synth_root,
        manifest,
        "model.name=unet_vgg16",  # 19 encoder layers: compiles in seconds, twice
        "model.freeze_epochs=1",
        "train.epochs=2",
        "data.train_on=[train,val]",
        "data.batch_size=4",
    )
    run = train(cfg, tmp_path / "refit", callbacks=[Spy()])
    assert [(epoch, trainable) for epoch, trainable, _ in seen] == [(0, False), (1, True)]
    assert seen[1][2] > seen[0][2]  # the encoder's weights joined the trainable set
    assert steps == [math.ceil((len(split.train) + len(split.val)) / 4)] * 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val" not in metrics and metrics["test"]["miou"] > 0
    assert metrics["trained_on"] == ["train", "val"] and metrics["best_epoch"] == 2
    assert metrics["epochs_run"] == 2
    saved = load_keras_model(run / "model.keras").get_weights()
    with np.load(run / "checkpoint" / "epoch_0002.npz") as last:
        for i, weights in enumerate(saved):
            np.testing.assert_array_equal(weights, last[f"w{i:05d}"])
