"""`train(config, out_dir)`: Keras `fit` with checkpoints, resume, tracking and a full report.

One run folder holds everything (see docs/architecture.md): `config.yaml`, `history.csv`,
`checkpoint/` (last completed epoch, for `--resume`), `model.keras` (best on val mIoU),
`metrics.json` (val and test scores at the original resolution, timing, size) and `plots/`.

The model is trained on `train` and selected on `val` (cities carved out of the official
train split); `test` (the official val split) is only scored once, at the end.
`data.train_on=[train,val]` refits a recipe chosen that way on both sets for its fixed
number of epochs and keeps the last epoch: nothing is selected on data it learnt from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cityseg.common.sizes import format_size
from cityseg.data import labels
from cityseg.training.config import Config

if TYPE_CHECKING:
    from cityseg.data.cityscapes import Sample
    from cityseg.training.config import DataConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"


class TrainingError(RuntimeError):
    """A run cannot start or continue (a finished run, a missing checkpoint, a bad config)."""


# --------------------------------------------------------------------------- setup helpers


def load_manifest_for(config: Config) -> Any:
    """The split manifest of `config.data` (made and saved with `make_split` if missing)."""
    from cityseg.data import split as split_mod

    path = Path(config.data.manifest) if config.data.manifest else None
    if path is None:
        path = split_mod.default_manifest_path(config.data.root)
    if path.is_file():
        return split_mod.load_manifest(path)
    if config.data.manifest:
        raise TrainingError(f"data.manifest {path} not found")
    log.info("no split manifest at %s: making one by city with seed %d", path, config.train.seed)
    manifest = split_mod.make_split(config.data.root, seed=config.train.seed)
    manifest.save(path)
    return manifest


class SingleDevice:
    """The strategy of a non-TensorFlow Keras back end (JAX, PyTorch): one device, one replica.

    It has what `train` uses of a `tf.distribute.Strategy`: the replica count and a scope.
    """

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def accelerator_present() -> bool:
    """Whether the Keras back end in use (TensorFlow, JAX or PyTorch) computes on a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() in ("gpu", "cuda", "rocm")
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def make_strategy(name: str) -> Any:
    """A `tf.distribute` strategy: auto | default | mirrored | multiworker.

    Under another Keras back end (`KERAS_BACKEND=jax` or `torch`, e.g. on a machine with a GPU
    but no TensorFlow build for it) only one device is used: auto and default.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        if name not in ("auto", "default"):
            raise TrainingError(
                f"train.strategy {name!r} needs the TensorFlow back end "
                f"(KERAS_BACKEND={keras.backend.backend()}); use auto or default"
            )
        return SingleDevice()
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multiworker"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPU devices (how it is tested on one machine).
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            log.warning("strategy multiworker without TF_CONFIG: this process is the only worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"train.strategy {name!r} is not auto, default, mirrored or multiworker")


def set_mixed_precision(enabled: bool) -> bool:
    """Use float16 compute on a GPU; on CPU refuse with a warning. Returns whether it is on."""
    if not enabled:
        return False
    import keras

    if not accelerator_present():
        log.warning("train.mixed_precision needs a GPU; training in float32 on this CPU")
        return False
    keras.mixed_precision.set_global_policy("mixed_float16")
    return True


def class_weights(
    samples: Sequence[Any], size: tuple[int, int], max_samples: int = 200
) -> np.ndarray:
    """Class weights for `weighted_ce` from the train pixel frequencies at the train size.

    At most `max_samples` labels are read (evenly spaced), enough for stable frequencies;
    the weighting is `losses.class_weights_from_frequencies` (mean pixel weight 1).
    """
    from cityseg.data.cityscapes import read_label
    from cityseg.data.resize import resize_mask
    from cityseg.training.losses import class_weights_from_frequencies, pixel_frequencies

    step = max(1, math.ceil(len(samples) / max_samples))
    masks = (
        labels.to_categories(resize_mask(read_label(s.label), size), source=str(s.label))
        for s in samples[::step]
    )
    freq = pixel_frequencies(masks, num_classes=labels.NUM_CLASSES)
    return class_weights_from_frequencies(freq).astype(np.float32)


def _check_batches(batch_size: int, replicas: int, sets: dict[str, Sequence[Any]]) -> None:
    """Every replica must get at least one image of every batch, the last partial one included."""
    if replicas == 1:
        return
    if batch_size % replicas:
        raise TrainingError(
            f"data.batch_size={batch_size} is the global batch: it must be a multiple of the "
            f"{replicas} replicas"
        )
    for name, samples in sets.items():
        rest = len(samples) % batch_size
        if 0 < rest < replicas:
            raise TrainingError(
                f"the {name} set's last batch holds {rest} image(s) for {replicas} replicas; "
                f"choose data.batch_size so that {len(samples)} images leave no fewer than that"
            )


def _build_optimizer(config: Config, model: Any = None) -> Any:
    import keras

    t = config.train
    if t.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=t.learning_rate, weight_decay=t.weight_decay
        )
    elif t.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=t.learning_rate)
    elif t.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=t.learning_rate, momentum=0.9, nesterov=True)
    else:
        raise TrainingError(f"train.optimizer {t.optimizer!r} is not adam, adamw or sgd")
    if t.encoder_lr_scale == 1.0 or model is None:
        return optimizer
    from cityseg.models.registry import ENCODER_LAYER
    from cityseg.training.optimizers import scale_encoder_learning_rate

    try:
        encoder = model.get_layer(ENCODER_LAYER)
    except ValueError:
        raise TrainingError(
            f"train.encoder_lr_scale={t.encoder_lr_scale} needs a model with an encoder; "
            f"{config.model.name!r} has none"
        ) from None
    return scale_encoder_learning_rate(optimizer, encoder.trainable_variables, t.encoder_lr_scale)


def _compile(model: Any, config: Config, loss: Any) -> None:
    from cityseg.evaluation.metrics import MeanIoU

    model.compile(
        optimizer=_build_optimizer(config, model),
        loss=loss,
        metrics=[MeanIoU(num_classes=labels.NUM_CLASSES, name="miou")],
        # XLA pays off on GPUs; on CPU it made a unet_mini 256x128 train step 2.1x slower
        # (2.74 s vs 1.28 s, batch 8) and the first step 2.4x slower to compile.
        # (JAX compiles every step whatever this says.)
        jit_compile=accelerator_present(),
    )


def _create(config: Config) -> Any:
    from cityseg.models.registry import create_model

    return create_model(
        config.model.name,
        input_size=config.input_size,
        num_classes=labels.NUM_CLASSES,
        encoder_weights=config.model.encoder_weights,
        **dict(config.model.kwargs),
    )


def init_source(config: Config) -> Path | None:
    """The `.keras` file named by `model.init_from` (a run folder or the file itself), or None."""
    if not config.model.init_from:
        return None
    path = Path(config.model.init_from)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        raise TrainingError(
            f"model.init_from: {path}: no such .keras file or run folder with a model.keras"
        )
    return model_file


def init_weights(model: Any, source: Path) -> None:
    """Copy every weight of the model saved in `source` into `model`, which must be the same
    architecture (the zoo's models are fully convolutional, so the input size may differ)."""
    from cityseg.inference.runtime import load_keras_model

    saved = load_keras_model(source)
    ours, theirs = model.weights, saved.weights
    if len(ours) != len(theirs):
        raise TrainingError(
            f"model.init_from: {source} holds {saved.name} ({len(theirs)} weight tensors), "
            f"not {model.name} ({len(ours)}): the model must be the same"
        )
    for mine, other in zip(ours, theirs, strict=True):
        if tuple(mine.shape) != tuple(other.shape):
            raise TrainingError(
                f"model.init_from: {source}: weight {other.path} has shape {tuple(other.shape)}, "
                f"this model's {mine.path} {tuple(mine.shape)}: the model must be the same"
            )
    model.set_weights(saved.get_weights())
    log.info("weights of %s loaded from %s", model.name, source)


def _set_frozen(model: Any, frozen: bool) -> None:
    from cityseg.models.registry import set_encoder_trainable

    set_encoder_trainable(model, not frozen)


def inference_ms(predictor: Any, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one batch-1 forward pass at the model's input size, after warm-up."""
    width, height = predictor.input_size
    batch = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32)
    for _ in range(warmup):
        predictor.predict_logits(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_logits(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


# --------------------------------------------------------------------------- train


def _prepare_run_dir(config: Config, run_dir: Path, resume: bool) -> Any:
    from cityseg.training.callbacks import RunState, trim_history

    ckpt = run_dir / CHECKPOINT_DIR
    if resume:
        if (run_dir / "metrics.json").is_file():
            raise TrainingError(f"{run_dir}: the run is already finished (metrics.json exists)")
        if (ckpt / "state.json").is_file():
            state = RunState.load(ckpt)
            trim_history(run_dir / "history.csv", state.epoch)
            for stale in ckpt.glob("*.npz"):  # a kill between two renames can leave one behind
                if stale.name not in (state.weights_file, state.best_file):
                    stale.unlink()
            log.info(
                "resuming %s after epoch %d (best val_miou %.4f)",
                run_dir,
                state.epoch + 1,
                state.best_val_miou,
            )
            return state
        log.warning("%s: no checkpoint to resume from; starting from scratch", run_dir)
    elif (ckpt / "state.json").is_file() or (run_dir / "metrics.json").is_file():
        raise TrainingError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick another --out"
        )
    ckpt.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.csv").unlink(missing_ok=True)
    return RunState(seed=config.train.seed)


def _paste_arguments(
    data: DataConfig, samples: Sequence[Sample], pseudo_cities: Sequence[str]
) -> dict[str, Any]:
    """Copy-paste settings of the training sequence: labelled frames onto pseudo-labelled ones
    (the cities `cityseg pseudo-label` recorded in the manifest) when the set holds both, else
    every frame onto every other."""
    if not data.paste:
        return {}
    pseudo = [i for i, s in enumerate(samples) if s.city in pseudo_cities]
    labelled = [i for i, s in enumerate(samples) if s.city not in pseudo_cities]
    cross = bool(pseudo) and bool(labelled)
    log.info(
        "copy-paste of %s (p=%.2f): %s",
        "+".join(data.paste),
        data.paste_p,
        f"{len(labelled)} labelled frames onto {len(pseudo)} pseudo-labelled ones"
        if cross
        else f"between all {len(samples)} frames",
    )
    return {
        "paste": data.paste,
        "paste_p": data.paste_p,
        "paste_sources": labelled if cross else None,
        "paste_targets": pseudo if cross else None,
    }


def train(
    config: Config,
    out_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[Any] | None = None,
) -> Path:
    """Train `config` into the run folder `out_dir` (continuing its checkpoint if `resume`).

    Extra Keras `callbacks` (e.g. an Optuna pruner) are added to `fit`. Returns the run folder.
    """
    refit = check_train_on(config)  # before anything is written (or TensorFlow loaded)
    init_file = init_source(config)
    import keras

    from cityseg.data.generator import CityscapesSequence
    from cityseg.training.callbacks import LimitedSteps, TrainingMonitor, load_arrays
    from cityseg.training.losses import get_loss
    from cityseg.training.tracking import Tracker

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _prepare_run_dir(config, run_dir, resume)
    config.save(run_dir / "config.yaml")
    keras.utils.set_random_seed(config.train.seed + state.epoch + 1)
    t = config.train
    start_epoch = state.epoch + 1
    if state.stopped_early or start_epoch >= t.epochs:
        log.info("%s: training already complete; writing the final report", run_dir)

    manifest = load_manifest_for(config)
    if not manifest.train or not manifest.val:
        raise TrainingError(f"{config.data.root}: the split needs train and val samples")
    train_samples = [*manifest.train, *manifest.val] if refit else list(manifest.train)
    if refit:
        log.info(
            "refit on train + val (%d + %d images): no validation, the last of %d epochs is kept",
            len(manifest.train),
            len(manifest.val),
            t.epochs,
        )
    size = config.input_size
    cache = config.data.cache_dir if config.data.cache else None
    common: dict[str, Any] = {
        "size": size,
        "batch_size": config.data.batch_size,
        "cache_dir": cache,
        "workers": config.data.workers,
        "use_multiprocessing": config.data.use_multiprocessing,
    }
    references: list[np.ndarray] = []
    if config.data.style_images:
        from cityseg.data.augment import load_reference_images

        references = load_reference_images(config.data.style_images, size)
        log.info("%d unlabelled style photos from %s", len(references), config.data.style_images)
    train_seq = CityscapesSequence(
        train_samples,
        augment=config.data.augment,
        shuffle=True,
        seed=t.seed,
        reference_images=references,
        **_paste_arguments(
            config.data, train_samples, manifest.method.get("pseudo_labels", {}).get("cities", [])
        ),
        **common,
    )
    train_seq.set_epoch(start_epoch)
    train_data = LimitedSteps(train_seq, t.steps_per_epoch) if t.steps_per_epoch else train_seq
    val_seq = None if refit else CityscapesSequence(manifest.val, **common)

    weights = class_weights(train_samples, size) if t.loss == "weighted_ce" else None
    if weights is not None:
        log.info(
            "class weights: %s",
            dict(zip(labels.CATEGORIES, np.round(weights, 3).tolist(), strict=True)),
        )
    policy = keras.mixed_precision.global_policy().name  # restored at the end: it is global
    set_mixed_precision(t.mixed_precision)
    strategy = make_strategy(t.strategy)
    replicas = strategy.num_replicas_in_sync
    log.info("strategy %s with %d replica(s)", type(strategy).__name__, replicas)
    batched: dict[str, Sequence[Any]] = {"train": train_samples}
    if not refit:
        batched["val"] = manifest.val
    _check_batches(config.data.batch_size, replicas, batched)

    freeze = config.model.freeze_epochs
    with strategy.scope():
        model = _create(config)
        if init_file is not None and not state.weights_file:  # a checkpoint holds newer ones
            init_weights(model, init_file)
        loss = get_loss(
            t.loss,
            num_classes=labels.NUM_CLASSES,
            class_weights=weights,
            ignore_index=labels.IGNORE_INDEX,
        )
        if start_epoch < freeze:
            _set_frozen(model, True)
        _compile(model, config, loss)
        if state.weights_file:
            # The optimizer state only fits if the frozen/unfrozen phase is the same as when it was saved.
            same_phase = (state.epoch < freeze) == (start_epoch < freeze)
            load_arrays(run_dir / CHECKPOINT_DIR / state.weights_file, model, optimizer=same_phase)

    tracker = Tracker(
        config.tracking.mlflow, config.tracking.tracking_uri, config.tracking.experiment
    )
    state.mlflow_run_id = tracker.start(config.name, config.to_dict(), run_id=state.mlflow_run_id)
    monitor = TrainingMonitor(
        run_dir,
        state,
        schedule=t.schedule,
        peak_lr=t.learning_rate,
        warmup_epochs=t.warmup_epochs,
        epochs=t.epochs,
        patience=t.early_stopping,
        validated=not refit,
        time_limit_s=60.0 * t.time_limit_min,
        on_epoch=lambda epoch, logs: tracker.log_metrics(logs, step=epoch + 1),
    )
    fit_args = {
        "validation_data": val_seq,
        "callbacks": [monitor, *(callbacks or [])],
        "verbose": 1 if sys.stdout.isatty() else 2,
    }
    started = time.perf_counter()
    status = "FAILED"
    try:
        # Phase 1 (frozen encoder) then phase 2 (everything trainable, recompiled).
        if start_epoch < freeze and not state.stopped_early:
            model.fit(
                train_data, initial_epoch=start_epoch, epochs=min(freeze, t.epochs), **fit_args
            )
            start_epoch = state.epoch + 1
            if start_epoch == freeze and not state.stopped_early:
                with strategy.scope():
                    _set_frozen(model, False)
                    _compile(model, config, loss)
        if start_epoch < t.epochs and not state.stopped_early:
            model.fit(train_data, initial_epoch=start_epoch, epochs=t.epochs, **fit_args)
        log.info("training took %.1f s", time.perf_counter() - started)
        keras.mixed_precision.set_global_policy(policy)  # the saved model.keras is float32
        best = run_dir / CHECKPOINT_DIR / state.best_file
        if not state.best_file or not best.is_file():
            raise TrainingError(f"{run_dir}: no epoch completed, no best model to report")
        _save_best_model(config, best, run_dir / "model.keras")
        metrics = finish_run(config, run_dir, manifest, state, tracker)
        status = "FINISHED"
        log.info(
            "val mIoU %s, test mIoU %s -> %s",
            score_text(metrics, "val"),
            score_text(metrics, "test"),
            run_dir,
        )
    finally:
        keras.mixed_precision.set_global_policy(policy)
        tracker.end(status)
    return run_dir


def check_train_on(config: Config) -> bool:
    """Validate `data.train_on`; True for a refit on train + val (no validation set left).

    A refit has nothing to select on, so early stopping and the plateau schedule, which both
    watch validation mIoU, are refused rather than silently switched off.
    """
    train_on = tuple(config.data.train_on)
    if train_on == ("train",):
        return False
    if sorted(train_on) != ["train", "val"]:
        raise TrainingError(
            f"data.train_on={list(train_on)}: expected [train] or [train, val] "
            "(test is never trained on)"
        )
    t = config.train
    if t.early_stopping:
        raise TrainingError(
            f"data.train_on=[train, val] leaves no validation set: set train.early_stopping=0 "
            f"(now {t.early_stopping}) and a fixed train.epochs"
        )
    if t.schedule == "plateau":
        raise TrainingError(
            "data.train_on=[train, val] leaves no validation set for train.schedule=plateau; "
            "use cosine or constant"
        )
    return True


def score_text(metrics: dict[str, Any], split: str) -> str:
    """`0.1234`, or "not scored" for a split a run has no score on (a refit's val)."""
    scores = metrics.get(split)
    return f"{scores['miou']:.4f}" if scores else "not scored"


def _save_best_model(config: Config, best: Path, out: Path) -> None:
    """Write the best weights as a clean `model.keras` (no optimizer state, default strategy)."""
    from cityseg.training.callbacks import load_arrays

    model = _create(config)
    load_arrays(best, model, optimizer=False)
    tmp = out.with_name(".model.tmp.keras")
    model.save(tmp)
    os.replace(tmp, out)


def finish_run(
    config: Config, run_dir: Path, manifest: Any, state: Any, tracker: Any
) -> dict[str, Any]:
    """Score the saved model on val and test, time it, and write `metrics.json` and the plots."""
    from cityseg.evaluation import plots
    from cityseg.evaluation.evaluate import evaluate, jsonable, write_outputs
    from cityseg.inference.runtime import Predictor
    from cityseg.training.callbacks import read_history

    predictor = Predictor.load(run_dir / "model.keras")
    model = predictor.backend.model  # type: ignore[attr-defined]  # the Keras back end
    history = read_history(run_dir / "history.csv")
    plots.learning_curves(history, run_dir / "plots" / "learning_curves.png")
    metrics: dict[str, Any] = {
        "name": config.name,
        "model": config.model.name,
        "loss": config.train.loss,
        "input_size": format_size(config.input_size),
        "params": int(model.count_params()),
        "model_size_mb": (run_dir / "model.keras").stat().st_size / 1e6,
        "train_time_s": float(sum(state.epoch_times)),
        "time_per_epoch_s": float(np.mean(state.epoch_times)) if state.epoch_times else math.nan,
        "epochs_run": len(history),
        "best_epoch": state.best_epoch + 1,
        "best_val_miou_during_training": state.best_val_miou,
        "stopped_early": state.stopped_early,
        "time_limited": state.time_limited,
        "inference_ms": inference_ms(predictor),
    }
    splits = [("val", manifest.val), ("test", manifest.test)]
    if check_train_on(config):  # a refit trained on val: its score would say nothing
        metrics["trained_on"] = list(config.data.train_on)
        splits = splits[1:]
    for split, samples in splits:
        scored = [s for s in samples if s.label is not None]
        if not scored:
            log.warning("no labelled %s samples: %s scores skipped", split, split)
            continue
        result = evaluate(predictor, scored, batch_size=config.data.batch_size)
        write_outputs(result, run_dir, split)
        metrics[split] = jsonable(result)
    (run_dir / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2))
    tracker.log_metrics(
        {
            k: v
            for k, v in metrics.items()
            if k in ("val", "test", "inference_ms", "params", "model_size_mb", "train_time_s")
        }
    )
    for name in ("config.yaml", "metrics.json", "history.csv"):
        tracker.log_artifact(run_dir / name)
    for png in sorted((run_dir / "plots").glob("*.png")):
        tracker.log_artifact(png, "plots")
    return metrics
