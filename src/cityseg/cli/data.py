"""Data commands: `cityseg check`, `split`, `cache`, `augment-grid` and `bench loader`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

log = logging.getLogger(__name__)
console = Console()


def _fail(err: Exception) -> typer.Exit:
    # soft_wrap: a path in the message must stay whole (copy-pastable, greppable) on any width;
    # escape: messages quote lists like ['gtFine'] that rich would read as markup.
    console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def check(
    data: Path = typer.Option(..., help="Dataset root in the official Cityscapes layout."),
    splits: str = typer.Option("train,val", help="Comma-separated official splits to check."),
    workers: int = typer.Option(2, min=1, help="Processes decoding the PNGs."),
) -> None:
    """Decode every image and label; list each bad file with its problem (exit 1 if any)."""
    from cityseg.data.cityscapes import DataError, list_samples, validate

    total, bad_total = 0, 0
    try:
        for split in [s.strip() for s in splits.split(",") if s.strip()]:
            samples = list_samples(data, split)
            bad = validate(samples, workers=workers)
            total += len(samples)
            bad_total += len(bad)
            console.print(f"{split}: {len(samples)} samples, {len(bad)} bad")
            for _, message in bad:
                console.print(f"  [red]{message}[/red]", highlight=False)
    except DataError as err:
        raise _fail(err) from err
    console.print(f"checked {total} samples: {bad_total} bad")
    if bad_total:
        raise typer.Exit(code=1)


def split(
    data: Path = typer.Option(..., help="Dataset root in the official Cityscapes layout."),
    val_cities: str | None = typer.Option(
        None,
        help="Validation cities: a number (chosen by seed) or comma-separated names (0006R0).",
    ),
    test_cities: str | None = typer.Option(
        None,
        help="Test cities by name (comma-separated): pools official train and val and tests on "
        "these whole cities, for datasets whose official split shares a city (CamVid).",
    ),
    val_fraction: float | None = typer.Option(
        None, help="Hold out cities until they hold this fraction of train frames (default 0.2)."
    ),
    seed: int = typer.Option(0, help="Seed of the city choice."),
    out: Path | None = typer.Option(None, help="Manifest path (default: DATA/split.json)."),
    skip_bad: bool = typer.Option(
        False, help="Skip bad samples explicitly (each is named in a logged warning)."
    ),
    decode: bool = typer.Option(
        False, help="Decode every PNG first (slow); bad ones fail the split unless --skip-bad."
    ),
    workers: int = typer.Option(2, min=1, help="Processes decoding the PNGs with --decode."),
) -> None:
    """Split by city (test = official val, val = cities of official train) into a JSON manifest."""
    from cityseg.data import split as split_mod
    from cityseg.data.cityscapes import DataError

    try:
        manifest = split_mod.make_split(
            data,
            val_cities=split_mod.parse_cities(val_cities),
            seed=seed,
            test_cities=split_mod.parse_cities_names(test_cities),
            val_fraction=val_fraction,
            skip_bad=skip_bad,
            decode=decode,
            workers=workers,
        )
    except (DataError, ValueError) as err:
        raise _fail(err) from err
    path = manifest.save(out or split_mod.default_manifest_path(data))
    split_mod.print_summary(manifest, console=console)
    console.print(f"manifest written to {path}")


def cache(
    data: Path = typer.Option(..., help="Dataset root in the official Cityscapes layout."),
    size: str = typer.Option("256x128", help="Model input WIDTHxHEIGHT."),
    manifest: Path | None = typer.Option(None, help="Split manifest (default: DATA/split.json)."),
    cache_dir: Path = typer.Option(Path(".cache/cityseg"), help="Where the cache lives."),
    workers: int = typer.Option(2, min=1, help="Processes decoding the PNGs."),
) -> None:
    """Decode and resize every sample of the manifest once into the memory-mapped cache."""
    from cityseg.common.sizes import parse_size
    from cityseg.data.cache import build_cache
    from cityseg.data.cityscapes import DataError
    from cityseg.data.split import SETS, default_manifest_path, load_manifest

    try:
        loaded = load_manifest(manifest or default_manifest_path(data))
        for name in SETS:
            built = build_cache(loaded.samples(name), parse_size(size), cache_dir, workers=workers)
            console.print(f"{name}: {len(built.rows)} samples cached in {built.folder}")
    except (DataError, ValueError) as err:
        raise _fail(err) from err


def augment_grid(
    data: Path = typer.Option(..., help="Dataset root in the official Cityscapes layout."),
    out: Path = typer.Option(Path("docs/figures/augmentations.png"), help="PNG to write."),
    size: str = typer.Option("512x256", help="Input WIDTHxHEIGHT the techniques work at."),
    index: int = typer.Option(0, min=0, help="Which official-train sample to show."),
    seed: int = typer.Option(0, help="Augmentation seed."),
) -> None:
    """One image under each augmentation technique (image | image with mask overlay)."""
    from cityseg.common.sizes import parse_size
    from cityseg.data.augment import build_augmentation, list_techniques
    from cityseg.data.cache import load_resized
    from cityseg.data.cityscapes import DataError, list_samples

    try:
        samples = list_samples(data, "train")
        sample = samples[index % len(samples)]
        image, mask = load_resized(sample, parse_size(size))
    except DataError as err:
        raise _fail(err) from err
    rows = [("original", image, mask)]
    for name in list_techniques():
        result = build_augmentation([name], parse_size(size), seed, always=True)(
            image=image, mask=mask
        )
        rows.append((name, result["image"], result["mask"]))
    write_grid(rows, out, title=sample.stem)
    console.print(f"augmentation grid of {sample.stem} written to {out}")


def write_grid(rows: list, out: Path, title: str) -> None:  # type: ignore[type-arg]
    """Save rows of (name, image, mask) as image | overlay pairs."""
    import numpy as np

    from cityseg.data.labels import colorize
    from cityseg.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    height, width = rows[0][1].shape[:2]
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(2 * 4, len(rows) * 4 * height / width + 0.6), squeeze=False
    )
    for (name, image, mask), (left, right) in zip(rows, axes, strict=True):
        overlay = (0.5 * image + 0.5 * colorize(mask)).astype(np.uint8)
        left.imshow(image)
        right.imshow(overlay)
        left.set_ylabel(name, fontsize=11)
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(f"image ({title})", fontsize=9)
    axes[0, 1].set_title("image + mask (void padding black)", fontsize=9)
    save_figure(fig, out, dpi=100)


def bench_loader_cmd(
    data: Path = typer.Option(..., help="Dataset root in the official Cityscapes layout."),
    size: str = typer.Option("512x256", help="Input WIDTHxHEIGHT."),
    workers: str = typer.Option("1,2", help="Comma-separated worker counts to compare."),
    batches: int = typer.Option(20, min=2, help="Batches timed per configuration."),
    batch_size: int = typer.Option(8, min=1, help="Images per batch."),
    augment: str = typer.Option("hflip,scale_crop,color", help="Techniques of the augmented runs."),
    split_name: str = typer.Option("train", "--split", help="Official split to read."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here as JSON."),
    repeats: int = typer.Option(1, min=1, help="Interleaved rounds; the best round is reported."),
) -> None:
    """Loader images/s for each worker count, with/without cache and augmentation."""
    from rich.table import Table

    from cityseg.bench.loader import bench_loader
    from cityseg.common.sizes import parse_size
    from cityseg.data.cityscapes import DataError, list_samples

    try:
        samples = list_samples(data, split_name)
        result = bench_loader(
            samples,
            size=parse_size(size),
            workers=[int(w) for w in workers.split(",") if w.strip()],
            batches=batches,
            batch_size=batch_size,
            augment=[a.strip() for a in augment.split(",") if a.strip()],
            repeats=repeats,
        )
    except (DataError, ValueError) as err:
        raise _fail(err) from err
    table = Table(title=f"loader at {size}, {result['cores']} cores")
    for column in ("workers", "mode", "cache", "augment", "images/s", "median", "× plain loop"):
        table.add_column(column, justify="right")
    for run in result["runs"]:
        table.add_row(
            str(run["workers"]), run["mode"], str(run["cache"]), str(run["augment"]),
            f"{run['images_per_s']:.1f}", f"{run['median_images_per_s']:.1f}",
            f"{run['ratio_to_plain_loop']:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"plain single-process loop: {result['plain_loop']['images_per_s']:.1f} images/s")
    for key, value in result["summary"].items():
        console.print(f"{key}: {value}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
        console.print(f"written to {json_out}")


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `check`, `split`, `cache`, `augment-grid` and `bench loader`."""
    app.command()(check)
    app.command()(split)
    app.command()(cache)
    app.command("augment-grid")(augment_grid)
    bench_app.command("loader")(bench_loader_cmd)
