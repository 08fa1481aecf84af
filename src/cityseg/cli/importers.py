"""`cityseg import camvid`: other datasets into the official Cityscapes layout."""

from __future__ import annotations

from pathlib import Path

import typer

from cityseg.cli.data import _fail, console

import_app = typer.Typer(help="Convert other datasets into the official Cityscapes layout.")


@import_app.command("camvid")
def camvid(
    src: Path = typer.Option(
        ...,
        help="CamVid folder: SegNet's 11-class layout (train/, trainannot/, val/, valannot/) or "
        "the original 32-class release (label_colors.txt, LabeledApproved_full/, "
        "701_StillsRaw_full/).",
    ),
    out: Path = typer.Option(..., help="Root to write (leftImg8bit/ + gtFine/)."),
    workers: int = typer.Option(2, min=1, help="Processes converting the frames."),
) -> None:
    """CamVid -> Cityscapes layout; classes mapped by name, each drive becomes a city."""
    from cityseg.data.camvid import drives, import_camvid
    from cityseg.data.cityscapes import DataError

    try:
        result = import_camvid(src, out, workers=workers)
    except DataError as err:
        raise _fail(err) from err
    for split, per_city in sorted(result.counts.items()):
        listing = ", ".join(f"{city} {n}" for city, n in sorted(per_city.items()))
        console.print(f"{split}: {sum(per_city.values())} frames ({listing})")
    names = drives(result.counts)
    console.print(
        f"CamVid ({result.layout}) written to {result.root}; drives (cities): {', '.join(names)}. "
        "Split whole drives by name, e.g. `cityseg split --data "
        f"{result.root} --test-cities {names[0]} --val-cities {names[-1]}`"
    )


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `import camvid`."""
    app.add_typer(import_app, name="import")
