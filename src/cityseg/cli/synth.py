"""`cityseg synth` (render synthetic cities) and `cityseg bench synth` (its throughput)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cityseg.cli.output import echo_json


def synth(
    out: Path = typer.Option(
        Path("data/synth"), help="Dataset root to write (official Cityscapes layout)."
    ),
    cities: int = typer.Option(
        8,
        help="Cities in total, split over train/val/test (at least 5: train>=3, val>=1, test>=1).",
    ),
    frames_per_city: int = typer.Option(20, min=1, help="Frames rendered per city."),
    size: str = typer.Option("1024x512", help="Frame size WIDTHxHEIGHT."),
    seed: int = typer.Option(0, help="Generator seed: the same seed gives byte-identical files."),
    workers: int = typer.Option(
        1, min=1, help="Rendering processes (output does not depend on it)."
    ),
    overwrite: bool = typer.Option(
        False, help="Replace an existing leftImg8bit/ and gtFine/ under OUT."
    ),
) -> None:
    """Render synthetic street scenes as leftImg8bit/ + gtFine/ (labelIds, color, instanceIds, polygons)."""
    from cityseg.common.sizes import parse_size
    from cityseg.data.synth import generate, split_counts

    try:
        frame_size = parse_size(size)
        counts = split_counts(cities)
        root = generate(
            out,
            cities=cities,
            frames_per_city=frames_per_city,
            size=frame_size,
            seed=seed,
            workers=workers,
            progress=True,
            overwrite=overwrite,
        )
    except (ValueError, FileExistsError) as err:
        typer.echo(f"cityseg synth: {err}", err=True)
        raise typer.Exit(2) from err
    meta = json.loads((root / "synth.json").read_text())
    typer.echo(
        f"wrote {cities * frames_per_city} frames of {cities} cities into {root} "
        f"(train {counts['train']}, val {counts['val']}, test {counts['test']})"
    )
    for split, names in meta["cities"].items():
        typer.echo(f"  {split:5s}: {', '.join(names)}")


def bench_synth(
    size: str = typer.Option("1024x512", help="Frame size WIDTHxHEIGHT."),
    frames: int = typer.Option(40, min=1, help="Frames rendered and written per worker count."),
    seed: int = typer.Option(0, help="Generator seed."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the results to this JSON file."
    ),
) -> None:
    """Frames/s of the generator with 1 and 2 worker processes, and their ratio."""
    from cityseg.bench.synth import bench_synth as run_bench
    from cityseg.common.sizes import parse_size

    result = run_bench(parse_size(size), frames, seed=seed)
    echo_json(result, json_out)


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg synth` and `cityseg bench synth`."""
    app.command("synth")(synth)
    bench_app.command("synth")(bench_synth)
