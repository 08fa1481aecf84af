"""`cityseg train | evaluate | predict`: fit a model, score it, write its predictions."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NoReturn

import typer

log = logging.getLogger(__name__)

FORMATS = ("labelIds", "categories", "color", "overlay")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The zoom factors of `--tta scales`: `cityseg.inference.runtime.TTA_SCALES`, kept as text here so
# that `cityseg --help` does not import the runtime (a test holds the two equal).
DEFAULT_TTA_SCALES = "1.0,1.5"
# Shared by `evaluate` and `predict`, which must segment alike.
TTA_OPTION = typer.Option(
    "none",
    "--tta",
    help="Test-time augmentation: none | hflip (mean of the frame and its mirror) | scales "
    "(the frame zoomed by each of --tta-scales, tiled) | hflip_scales (both).",
)
TTA_SCALES_OPTION = typer.Option(
    DEFAULT_TTA_SCALES,
    "--tta-scales",
    help="Zoom factors of the scales modes, comma-separated (chosen on validation).",
)
SPLITS = ("train", "val", "test")
# Shared by the commands that score or choose on a dataset: evaluate, select-ensemble, select-tta.
DATA_OPTION = typer.Option(
    None, "--data", help="Dataset root (its split.json names the sets); default: the run's."
)
MANIFEST_OPTION = typer.Option(
    None, "--manifest", help="Split manifest (default <data>/split.json)."
)
RUNTIME_OPTION = typer.Option("auto", "--runtime", help="auto | keras | onnx | litert.")
CHOOSE_ON_OPTION = typer.Option("val", "--split", help="The set to choose on: val (never test).")
LINES_JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of lines.")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def train(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config (configs/NAME.yaml)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a field: section.key=value (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<config name>)."),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue this run folder from its last completed epoch, with its saved config.",
    ),
    strategy: str | None = typer.Option(
        None,
        "--strategy",
        help="auto | default | mirrored | multiworker (overrides train.strategy).",
    ),
) -> None:
    """Train a model; the run folder gets config, history, checkpoint, model, metrics and plots."""
    from cityseg.training import config as config_mod

    sets = list(overrides) + ([f"train.strategy={strategy}"] if strategy else [])
    try:
        if resume is not None:
            saved = resume / "config.yaml"
            if not saved.is_file():
                _fail(f"{resume}: no config.yaml, not a run folder")
            if config is not None:
                log.warning("--resume uses the run's saved config; ignoring --config %s", config)
            if sets:
                log.warning("--resume with overrides %s: the saved config changes", sets)
            cfg = config_mod.load(saved, sets)
            run_dir = resume
        else:
            if config is None:
                _fail("give --config configs/NAME.yaml (or --resume runs/NAME)")
            cfg = config_mod.load(config, sets)
            run_dir = out or Path("runs") / cfg.name
    except (KeyError, ValueError, FileNotFoundError) as err:
        _fail(str(err).strip('"'))
    from cityseg.training.train import TrainingError
    from cityseg.training.train import train as run_training

    try:
        path = run_training(cfg, run_dir, resume=resume is not None)
    except TrainingError as err:
        _fail(str(err))
    metrics = json.loads((path / "metrics.json").read_text())
    from cityseg.training.train import score_text

    kept = "last epoch (refit)" if metrics.get("trained_on") else "best epoch"
    typer.echo(
        f"{path}: val mIoU {score_text(metrics, 'val')}, "
        f"test mIoU {score_text(metrics, 'test')}, {kept} {metrics.get('best_epoch')}"
    )


def _samples(
    data: Path | None,
    manifest: Path | None,
    split: str,
    run: Path | None,
    predictions: Path | None = None,
) -> tuple[str, list[Any]]:
    """(set name, labelled samples) of `split` from the manifest of `data` (or of the run's).

    `split` auto: `val` for a model; for a folder of predictions, the set their names
    belong to. Without a manifest, the official splits are fixed and need none: `test` is
    the official val split (Cityscapes' test labels are dummies).
    """
    from cityseg.data import split as split_mod
    from cityseg.data.cityscapes import DataError, list_samples

    if split not in (*SPLITS, "auto"):
        _fail(f"--split {split!r} is not one of auto, {', '.join(SPLITS)}")
    if manifest is None and data is None and run is not None:
        cfg_file = (run if run.is_dir() else run.parent) / "config.yaml"
        if cfg_file.is_file():
            from cityseg.training import config as config_mod

            cfg = config_mod.load(cfg_file)
            data = Path(cfg.data.root)
            manifest = Path(cfg.data.manifest) if cfg.data.manifest else None
    if manifest is None and data is None:
        _fail("give --data ROOT (or --manifest FILE)")
    path = manifest or split_mod.default_manifest_path(data)  # type: ignore[arg-type]
    sets: dict[str, list[Any]] = {}
    if path.is_file():
        loaded = split_mod.load_manifest(path)
        sets = {name: loaded.samples(name) for name in SPLITS}
    elif manifest is not None:
        _fail(f"split manifest {manifest} not found")
    elif split in ("val", "train") or (split == "auto" and predictions is None):
        _fail(f"no split manifest {path}; write one with `cityseg split --data {data}`")
    else:  # the official splits are fixed: scoring them needs no manifest
        try:
            sets["test"] = list_samples(data, "val")
            if split == "auto":
                sets["official train"] = list_samples(data, "train")
        except DataError as err:
            _fail(str(err))
    if split == "auto":
        if predictions is None:
            split = "val"
        else:
            from cityseg.evaluation.evaluate import EvaluationError, infer_set

            try:
                split = infer_set(predictions, sets)
            except EvaluationError as err:
                _fail(str(err))
            log.info("the predictions are of the %s set", split)
    samples = [s for s in sets.get(split, []) if s.label is not None]
    if not samples:
        _fail(f"{path}: no labelled samples in the {split} set")
    return split, samples


def evaluate(
    runs: list[Path] | None = typer.Option(
        None,
        "--run",
        metavar="PATH",
        help="Run folder or exported .onnx/.tflite to score; repeat it to score an ensemble "
        "(the mean softmax of the models).",
    ),
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        help="Folder of labelIds PNGs (<city>_<seq>_<frame>_leftImg8bit.png) to score instead.",
    ),
    data: Path | None = DATA_OPTION,
    manifest: Path | None = MANIFEST_OPTION,
    split: str = typer.Option(
        "auto",
        "--split",
        help="Set to score: val (model selection) or test (report once); auto = val for a "
        "model, the set the names of --predictions belong to (official val needs no manifest).",
    ),
    runtime: str = RUNTIME_OPTION,
    tta: str = TTA_OPTION,
    tta_scales: str = TTA_SCALES_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Where eval_<split>.json and figures go (default: the run folder)."
    ),
    allow_extra: bool = typer.Option(
        False, "--allow-extra", help="With --predictions: ignore PNGs that match no sample."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Score a model (or a folder of predictions) on a whole split at the original resolution."""
    from cityseg.evaluation import evaluate as ev

    runs = runs or []
    if bool(runs) == (predictions is not None):
        _fail("give exactly one of --run or --predictions")
    if tta != "none" and not runs:
        _fail("--tta needs --run: a folder of predictions is scored as it is")
    if len(runs) > 1 and out is None:
        _fail("an ensemble of runs has no run folder of its own: give --out")
    run = runs[0] if runs else None
    split, samples = _samples(data, manifest, split, run, predictions)
    split = split.replace(" ", "_")
    try:
        if run is not None:
            predictor = load_predictor(runs, runtime, tta, tta_scales)
            result = ev.evaluate(predictor, samples, progress=not as_json)
            result["tta"] = tta
            if "scales" in tta:
                result["tta_scales"] = list(predictor.scales)
            if len(runs) > 1:
                result["ensemble"] = predictor.meta["members"]
            out = out or (run if run.is_dir() else run.parent)
            split = ev.scores_name(split, tta)  # eval_<split>.json stays the plain model's
        elif predictions is not None:
            result = ev.evaluate_predictions(
                predictions, samples, allow_extra=allow_extra, progress=not as_json
            )
    except (ev.EvaluationError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    if out is not None:
        for path in ev.write_outputs(result, out, split):
            log.info("wrote %s", path)
    clean = ev.jsonable(result)
    if as_json:
        typer.echo(json.dumps(clean))
        return
    _print_table(clean, split)


def select_ensemble(
    runs: list[Path] = typer.Option(
        ..., "--run", metavar="PATH", help="A candidate run folder or export; repeat it."
    ),
    data: Path | None = DATA_OPTION,
    manifest: Path | None = MANIFEST_OPTION,
    split: str = CHOOSE_ON_OPTION,
    runtime: str = RUNTIME_OPTION,
    max_members: int | None = typer.Option(None, "--max-members", min=1, help="At most this many."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for selection.json (each step's members and score)."
    ),
    as_json: bool = LINES_JSON_OPTION,
) -> None:
    """Choose an ensemble's members on validation: greedy forward selection (Caruana, 2004)."""
    from cityseg.inference.ensemble import select_ensemble as select

    if split == "test":
        _fail("choose an ensemble on val: a mixture chosen on test reports a score chosen for it")
    split, samples = _samples(data, manifest, split, runs[0])
    try:
        candidates = [load_predictor([run], runtime, "none", DEFAULT_TTA_SCALES) for run in runs]
        result = select(candidates, samples, max_members=max_members, progress=not as_json)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    result["split"] = split
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "selection.json").write_text(json.dumps(result, indent=2) + "\n")
        log.info("wrote %s", out / "selection.json")
    if as_json:
        typer.echo(json.dumps(result))
        return
    for candidate in result["candidates"]:
        typer.echo(f"candidate {candidate['name']}: {candidate['category_iou']:.4f}")
    for step in result["steps"]:
        typer.echo(f"+ {step['added']}: {step['category_iou']:.4f} ({len(step['members'])} models)")
    runs_text = " ".join(f"--run {m}" for m in result["members"])
    typer.echo(f"score it: cityseg evaluate {runs_text} --split test --out DIR")


DEFAULT_TTA_CANDIDATES = "1;1,1.25;1,1.5;1,2;0.75,1,1.25"


def select_tta(
    runs: list[Path] = typer.Option(
        ...,
        "--run",
        metavar="PATH",
        help="Run folder or export; repeat it for an ensemble (the mean softmax).",
    ),
    data: Path | None = DATA_OPTION,
    manifest: Path | None = MANIFEST_OPTION,
    split: str = CHOOSE_ON_OPTION,
    runtime: str = RUNTIME_OPTION,
    candidates: str = typer.Option(
        DEFAULT_TTA_CANDIDATES,
        "--candidates",
        help="Sets of zoom factors to try, ';' between sets, ',' within one.",
    ),
    flip: bool = typer.Option(
        True, "--flip/--no-flip", help="Mirror each view too (--tta hflip_scales) or not (scales)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for tta_selection.json (default: the run folder; an ensemble needs one).",
    ),
    as_json: bool = LINES_JSON_OPTION,
) -> None:
    """Choose the zoom factors of test-time augmentation on validation, for a model or ensemble."""
    from cityseg.inference.tta import parse_candidates, select_scales

    if split == "test":
        _fail("choose zoom factors on val: factors chosen on test report a score chosen for it")
    if len(runs) > 1 and out is None:
        _fail("an ensemble of runs has no run folder of its own: give --out")
    try:
        sets = parse_candidates(candidates)
    except ValueError as err:
        _fail(str(err))
    split, samples = _samples(data, manifest, split, runs[0])
    try:
        predictor = load_predictor(runs, runtime, "none", DEFAULT_TTA_SCALES)
        result = select_scales(predictor, samples, sets, flip=flip, progress=not as_json)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    result["split"] = split
    result["runs"] = [str(r) for r in runs]
    folder = out or (runs[0] if runs[0].is_dir() else runs[0].parent)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tta_selection.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", folder / "tta_selection.json")
    if as_json:
        typer.echo(json.dumps(result))
        return
    for row in result["candidates"]:
        typer.echo(
            f"zoom {','.join(f'{v:g}' for v in row['scales'])}: {row['category_iou']:.4f} "
            f"({row['passes_per_frame']} passes per frame)"
        )
    runs_text = " ".join(f"--run {r}" for r in runs)
    chosen = ",".join(f"{v:g}" for v in result["scales"])
    typer.echo(
        f"score it: cityseg evaluate {runs_text} --split test --tta {result['mode']} "
        f"--tta-scales {chosen}" + (f" --out {out}" if len(runs) > 1 else "")
    )


def load_predictor(runs: list[Path], runtime: str, tta: str, tta_scales: str) -> Any:
    """The `Predictor` of `evaluate` and `predict`: one run, or the ensemble of several."""
    from cityseg.inference.runtime import Predictor

    members = [Predictor.load(run, runtime) for run in runs]
    predictor = members[0] if len(members) == 1 else Predictor.ensemble(members)
    predictor.tta = tta
    predictor.scales = _scales(tta_scales)
    return predictor


def _scales(text: str) -> tuple[float, ...]:
    """`--tta-scales "1,1.5"` as numbers; the predictor checks that they are positive."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"--tta-scales {text!r}: give comma-separated numbers, e.g. 1,1.5"
        ) from None


def _print_table(result: dict[str, Any], split: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{split}: {result['num_images']} images at the original resolution")
    table.add_column("category")
    table.add_column("IoU", justify="right")
    table.add_column("Dice", justify="right")
    for name, iou in result["per_category_iou"].items():
        dice = result.get("per_category_dice", {}).get(name)
        table.add_row(
            name, "n/a" if iou is None else f"{iou:.3f}", "n/a" if dice is None else f"{dice:.3f}"
        )
    table.add_row("mIoU (8)", f"{result['miou']:.3f}", f"{result['dice']:.3f}")
    table.add_row("official category IoU (7)", f"{result['category_iou']:.3f}", "")
    table.add_row("pixel accuracy", f"{result['pixel_accuracy']:.3f}", "")
    Console().print(table)


def _inputs(path: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to the input root) of every image under `path`, sorted."""
    if path.is_file():
        return [(path, Path(path.name))]
    if not path.is_dir():
        _fail(f"--input {path} not found")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        _fail(f"--input {path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(p, p.relative_to(path)) for p in files]


def output_name(relative: Path) -> Path:
    """`.../<city>_<seq>_<frame>_leftImg8bit.png` keeps its name; others become `<stem>.png`."""
    return relative.with_suffix(".png")


def render(image: Any, categories: Any, fmt: str) -> Any:
    """The array written for one prediction in format `fmt` (uint8, at the image's size)."""
    import numpy as np

    from cityseg.data import labels

    if fmt == "labelIds":
        return labels.categories_to_label_ids(categories)
    if fmt == "categories":
        return np.asarray(categories, dtype=np.uint8)
    color = labels.colorize(categories)
    if fmt == "color":
        return color
    if fmt == "overlay":
        return (0.5 * image + 0.5 * color).astype(np.uint8)
    raise ValueError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")


def predict(
    runs: list[Path] = typer.Option(
        ...,
        "--run",
        metavar="PATH",
        help="Run folder or exported .onnx/.tflite model; repeat it for an ensemble.",
    ),
    input_path: Path = typer.Option(
        ..., "--input", help="An image file or a folder of images (searched recursively)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (the input's sub-folders are kept)."
    ),
    fmt: str = typer.Option(
        "labelIds", "--format", help="labelIds (official evaluator) | categories | color | overlay."
    ),
    runtime: str = RUNTIME_OPTION,
    batch_size: int = typer.Option(8, "--batch-size", help="Images per forward pass."),
    tta: str = TTA_OPTION,
    tta_scales: str = TTA_SCALES_OPTION,
) -> None:
    """Write predictions at each image's original size; a bad image is named and skipped."""
    from PIL import Image

    from cityseg.data.cityscapes import read_image

    if fmt not in FORMATS:
        _fail(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    items = _inputs(input_path)
    try:
        predictor = load_predictor(runs, runtime, tta, tta_scales)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    failed: list[str] = []
    written = 0
    for start in range(0, len(items), batch_size):
        batch = []
        for path, relative in items[start : start + batch_size]:
            try:
                batch.append((read_image(path), relative))
            except Exception as err:  # any decode error: name the file, keep going
                failed.append(f"{path}: {err}")
        if not batch:
            continue
        predictions = predictor.predict_many([image for image, _ in batch], batch_size=batch_size)
        for (image, relative), categories in zip(batch, predictions, strict=True):
            target = out / output_name(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(image, categories, fmt)).save(target)
            written += 1
    typer.echo(f"wrote {written} {fmt} prediction(s) to {out}")
    if failed:
        for message in failed:
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        typer.secho(f"{len(failed)} input(s) could not be read", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg train`, `cityseg evaluate` and `cityseg predict`."""
    app.command()(train)
    app.command()(evaluate)
    app.command()(predict)
    app.command("select-ensemble")(select_ensemble)
    app.command("select-tta")(select_tta)
