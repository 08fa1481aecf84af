"""Typed, frozen run configuration: YAML file + `key=value` overrides, saved with every run."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cityseg.common.sizes import format_size, parse_size

__all__ = ["Config", "format_size", "load", "parse_size", "set_dotted"]


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/synth"  # dataset root in the official Cityscapes layout
    manifest: str = ""  # split manifest; empty = <root>/split.json
    size: str = "256x128"  # model input WIDTHxHEIGHT (Cityscapes frames are 2:1)
    batch_size: int = 8  # images per batch; the last partial batch is kept
    workers: int = 2  # loader processes (PyDataset workers)
    # Threads by default: decoding, resizing and OpenCV release the GIL, and processes must
    # copy every float32 batch back (measured 4-12x slower on cached data by `bench loader`).
    use_multiprocessing: bool = False
    cache: bool = True  # decode + resize once into an on-disk memory-mapped cache
    cache_dir: str = ".cache/cityseg"  # where the cache lives
    augment: tuple[str, ...] = ("hflip", "scale_crop", "color")  # technique names (data.augment)
    # Folder of unlabelled real photos whose style fda / histmatch copy ("" = none).
    style_images: str = ""
    # Splits the model learns from. [train, val] refits a recipe already chosen on val with
    # both: nothing is validated, train.epochs is fixed (no early stopping) and the last
    # epoch is kept; only test is scored.
    train_on: tuple[str, ...] = ("train",)
    # Copy-paste: categories whose pixels (and labels) are pasted from one training frame onto
    # another with probability paste_p. With pseudo-labelled real frames in the set, from the
    # labelled frames onto the pseudo-labelled ones only (cross-domain, as DACS), which gives
    # real contexts the rare categories their pseudo-labels never hold.
    paste: tuple[str, ...] = ()
    paste_p: float = 0.5


@dataclass(frozen=True)
class ModelConfig:
    name: str = "unet_mini"  # a name from cityseg.models.registry.list_models()
    encoder_weights: str | None = None  # "imagenet", None, or a path to a weights file
    freeze_epochs: int = 0  # keep the encoder frozen for this many first epochs
    # A run folder (its model.keras) or a .keras file of the same model whose weights start
    # this run, at any input size: fine-tuning on real photos after the synthetic cities.
    init_from: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra model arguments


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "ce"  # ce | weighted_ce | dice | focal | ce_dice | lovasz
    optimizer: str = "adamw"  # adam | adamw | sgd
    learning_rate: float = 2e-3  # peak learning rate
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    encoder_lr_scale: float = 1.0  # encoder learning rate = this x the schedule's (fine-tuning)
    schedule: str = "cosine"  # cosine | constant | plateau
    warmup_epochs: int = 1  # linear warm-up before the schedule
    epochs: int = 30  # upper bound; early stopping may end sooner
    steps_per_epoch: int = 0  # 0 = one pass over the training set
    early_stopping: int = 8  # patience in epochs on validation mIoU; 0 = off
    time_limit_min: float = 0.0  # stop before an epoch would end past this much training; 0 = off
    seed: int = 0  # seeds data order, augmentation and weight init
    mixed_precision: bool = False  # float16 compute (GPU only)
    strategy: str = "auto"  # auto | mirrored | multiworker | default


@dataclass(frozen=True)
class TrackingConfig:
    mlflow: bool = True  # log params, metrics and artifacts to MLflow
    tracking_uri: str = "sqlite:///mlflow.db"  # local SQLite store by default
    experiment: str = "cityseg"  # MLflow experiment name


@dataclass(frozen=True)
class Config:
    name: str = "unet_mini_256x128_ce"  # run name (the run folder by default)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input as `(width, height)`."""
        return parse_size(self.data.size)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to `config.yaml`."""
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | Path) -> None:
        """Write the resolved config as YAML."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise KeyError(f"unknown config field {where}{key!r}; known: {sorted(fields)}")
        ftype = fields[key].type
        sub = _SECTIONS.get(key) if cls is Config else None
        if sub is not None:
            kwargs[key] = _build(sub, value or {}, f"{where}{key}.")
        elif "tuple" in str(ftype) and isinstance(value, list | tuple):
            kwargs[key] = tuple(value)
        elif "tuple" in str(ftype) and isinstance(value, str):
            kwargs[key] = tuple(v for v in (s.strip() for s in value.split(",")) if v)
        else:
            kwargs[key] = value
    return cls(**kwargs)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "tracking": TrackingConfig,
}


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree["a"]["b"] = value` for `dotted` "a.b", making sections as needed (in place).

    The value is deep-copied, so later changes to `tree` never reach the caller's objects.
    Raises KeyError when a key on the way holds a value, not a section.
    """
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise KeyError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = copy.deepcopy(value)


def from_dict(values: dict[str, Any]) -> Config:
    """Build and validate a Config from a nested dict (unknown keys are errors)."""
    config = _build(Config, values, "")
    parse_size(config.data.size)
    return config


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults) and apply `section.key=value` overrides.

    Override values are parsed as YAML, so `train.epochs=5`, `model.encoder_weights=null`
    and `data.augment=[hflip,color]` all do what they say.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        tree = yaml.safe_load(path.read_text()) or {}
        if not isinstance(tree, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return from_dict(tree)
