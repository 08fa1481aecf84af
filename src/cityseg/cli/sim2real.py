"""`cityseg experiments sim2real`: train on synthetic cities only, score on real photographs."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def sim2real(
    config: Path = typer.Option(
        ..., "--config", help="Run config YAML (data.root: the synth root)."
    ),
    real: Path = typer.Option(
        ...,
        "--real",
        help="Real dataset root in the official layout with a split.json (test set scored).",
    ),
    runs_dir: Path = typer.Option(Path("runs/sim2real"), help="Where the run folder goes."),
    cities: int = typer.Option(10, help="Synthetic cities rendered when data.root has none."),
    frames_per_city: int = typer.Option(40, min=1, help="Frames per synthetic city."),
    synth_size: str = typer.Option("480x360", help="Synthetic frame size WIDTHxHEIGHT."),
    synth_seed: int = typer.Option(0, help="Seed of the synthetic cities."),
    workers: int = typer.Option(2, min=1, help="Rendering processes."),
    val_cities: int = typer.Option(
        2, min=1, help="Synthetic train cities held out for validation."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Config override, e.g. train.epochs=5."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
    score_only: bool = typer.Option(
        False, "--score-only", help="Train nothing: score the run's best model so far (partial)."
    ),
) -> None:
    """Render (if needed) and train on synthetic cities, then score on the real test drive."""
    from cityseg.common.sizes import parse_size
    from cityseg.experiments.sim2real import run_sim2real
    from cityseg.experiments.suites import SuiteError
    from cityseg.training import config as config_mod

    try:
        cfg = config_mod.load(config, overrides)
        record = run_sim2real(
            cfg,
            real,
            runs_dir=runs_dir,
            synth={
                "cities": cities,
                "frames_per_city": frames_per_city,
                "size": parse_size(synth_size),
                "seed": synth_seed,
                "workers": workers,
            },
            split={"val_cities": val_cities, "seed": 0},
            score_only=score_only,
        )
    except (SuiteError, ValueError, FileNotFoundError, KeyError) as err:
        typer.echo(f"cityseg experiments sim2real: {err}", err=True)
        raise typer.Exit(2) from err
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    real_scores = record["real"]
    typer.echo(
        f"{record['name']}: real-photo category IoU {real_scores['category_iou']:.3f} "
        f"on {real_scores['num_images']} frames of {', '.join(real_scores['cities'])}"
    )
    for name, value in (real_scores["per_category_iou_official"] or {}).items():
        typer.echo(f"  {name:13s} {'-' if value is None else f'{value:.3f}'}")
    shares = record["synth"]["category_shares"]
    typer.echo("synthetic train shares %: " + ", ".join(f"{k} {v:.1f}" for k, v in shares.items()))


def sim2real_report(
    runs_dir: Path = typer.Option(Path("runs/sim2real"), help="Runs written by sim2real."),
    out: Path = typer.Option(Path("docs/sim2real.md"), help="Markdown file to write."),
    bench_dir: Path = typer.Option(Path("bench"), help="Folder of benchmark JSON files."),
    ensembles_dir: Path | None = typer.Option(
        None,
        help="Folders of `cityseg evaluate --run A --run B ... --out` on the real drive "
        "[default: sim2real_ensembles beside --runs-dir].",
    ),
) -> None:
    """Write the note's sim-to-real section alone (`cityseg report` includes it too)."""
    from cityseg.report.sim2real import write_sim2real

    try:
        path = write_sim2real(
            out, runs_dir=runs_dir, bench_dir=bench_dir, ensembles_dir=ensembles_dir
        )
    except FileNotFoundError as err:
        typer.echo(f"cityseg experiments sim2real-report: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(f"sim-to-real section written to {path}")


def pseudo_label(
    runs: list[Path] = typer.Option(
        ...,
        "--run",
        metavar="PATH",
        help="Run folder (or model file) that labels; repeat it to label with an ensemble "
        "(the mean softmax of the models).",
    ),
    data: Path = typer.Option(
        ..., "--data", help="Dataset root with a split.json whose frames get labelled."
    ),
    frames: str = typer.Option(
        "train", "--from", help="Set of --data to label: train or val (never test)."
    ),
    labelled: Path = typer.Option(
        ..., "--with", help="Labelled root with a split.json trained beside (the synth cities)."
    ),
    out: Path = typer.Option(..., "--out", help="New dataset root to write."),
    keep: float = typer.Option(0.5, help="Share of each predicted category's pixels kept."),
    cap: float = typer.Option(0.9, help="Pixels at least this confident are always kept."),
    tta: str = typer.Option(
        "none",
        "--tta",
        help="none | hflip | scales | hflip_scales: label with the mean softmax of those views "
        "of each frame (see `cityseg evaluate --tta`).",
    ),
) -> None:
    """Pseudo-label unlabelled frames with a model, for self-training (labels never read)."""
    from cityseg.cli.train import DEFAULT_TTA_SCALES, load_predictor
    from cityseg.data import split as split_mod
    from cityseg.data.cityscapes import DataError
    from cityseg.data.pseudo import pseudo_label as run_pseudo_label
    from cityseg.experiments.records import current_command
    from cityseg.inference.runtime import RuntimeLoadError

    if frames not in ("train", "val"):
        typer.echo(
            f"cityseg pseudo-label: --from {frames}: choose train or val; adapting on the "
            "test frames would tune the model to the frames it is scored on",
            err=True,
        )
        raise typer.Exit(2)
    try:
        manifest = split_mod.load_manifest(split_mod.default_manifest_path(data))
        predictor = load_predictor(runs, "keras", tta, DEFAULT_TTA_SCALES)
        result = run_pseudo_label(
            predictor,
            manifest.samples(frames),
            out,
            labelled=labelled,
            keep=keep,
            cap=cap,
            command=current_command(),
        )
    except (DataError, RuntimeLoadError, ValueError) as err:
        typer.echo(f"cityseg pseudo-label: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(
        f"{result.frames} frames of {data} ({frames}) pseudo-labelled by {' + '.join(map(str, runs))}: "
        f"{result.coverage:.1f} % of pixels labelled -> {result.root} (manifest {result.manifest})"
    )
    typer.echo("kept % of pixels: " + ", ".join(f"{k} {v:.1f}" for k, v in result.kept.items()))


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg experiments sim2real`, `... sim2real-report` and `cityseg pseudo-label`."""
    experiments_app.command("sim2real")(sim2real)
    experiments_app.command("sim2real-report")(sim2real_report)
    app.command("pseudo-label")(pseudo_label)
