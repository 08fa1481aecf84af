"""`cityseg demo`: the main job end to end on synthetic cities.

synthetic cities -> split by city -> train the baseline -> evaluate on the held-out test
cities -> serve the model and its web page. Each step is skipped when its output already
exists, so a second run goes straight to the service.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer
from rich.console import Console

log = logging.getLogger(__name__)
console = Console()


def demo(
    data: Path = typer.Option(Path("data/synth"), help="Where the synthetic cities are written."),
    runs: Path = typer.Option(Path("runs"), help="Folder of training runs."),
    config: Path = typer.Option(
        Path("configs/demo_unet_mini_256x128_ce.yaml"), help="Training config of the demo model."
    ),
    cities: int = typer.Option(8, help="Number of synthetic cities (train, val and test)."),
    frames_per_city: int = typer.Option(40, help="Frames rendered per city."),
    size: str = typer.Option("1024x512", help="Frame size WIDTHxHEIGHT of the synthetic cities."),
    seed: int = typer.Option(0, help="Seed of the generator, the split and the training."),
    workers: int = typer.Option(2, help="Processes for rendering and loading."),
    serve: bool = typer.Option(True, help="Start the service at the end."),
    host: str = typer.Option("127.0.0.1", help="Service host."),
    port: int = typer.Option(8000, help="Service port."),
) -> None:
    """Synthetic cities -> split -> train -> evaluate -> serve, skipping finished steps."""
    from cityseg.common.sizes import parse_size
    from cityseg.data import split as split_mod
    from cityseg.data import synth
    from cityseg.training import config as config_mod

    started = time.perf_counter()
    if (data / "leftImg8bit").is_dir():
        console.print(f"[1/4] synthetic cities: reusing {data}")
    else:
        console.print(f"[1/4] rendering {cities} synthetic cities into {data}")
        try:
            frame_size = parse_size(size)
            synth.split_counts(cities)  # too few cities to carve validation out of train
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        synth.generate(
            data,
            cities=cities,
            frames_per_city=frames_per_city,
            size=frame_size,
            seed=seed,
            workers=workers,
            progress=True,
        )

    manifest_path = split_mod.default_manifest_path(data)
    if manifest_path.is_file():
        manifest = split_mod.load_manifest(manifest_path)
        console.print(f"[2/4] split: reusing {manifest_path}")
    else:
        manifest = split_mod.make_split(data, seed=seed)
        manifest.save(manifest_path)
        console.print(f"[2/4] split by city written to {manifest_path}")
    split_mod.print_summary(manifest, console=console)

    cfg = config_mod.load(
        config, [f"data.root={data}", f"data.manifest={manifest_path}", f"train.seed={seed}"]
    )
    run_dir = runs / cfg.name
    if (run_dir / "metrics.json").is_file():
        console.print(f"[3/4] training: reusing the finished run {run_dir}")
    else:
        from cityseg.training.train import train

        console.print(f"[3/4] training {cfg.model.name} into {run_dir}")
        train(cfg, run_dir, resume=(run_dir / "checkpoint").is_dir())

    _print_metrics(run_dir)
    console.print(f"demo pipeline done in {time.perf_counter() - started:.0f} s")
    if serve:
        from cityseg.cli.serve import serve as serve_command

        console.print(f"[4/4] serving {run_dir} at http://{host}:{port}/ (Ctrl+C stops)")
        serve_command(run=run_dir, host=host, port=port)


def _print_metrics(run_dir: Path) -> None:
    import json

    from rich.table import Table

    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = Table(title=f"{metrics.get('name', run_dir.name)}: whole-split scores")
    keys = ("miou", "category_iou", "dice", "pixel_accuracy")
    table.add_column("split")
    for key in keys:
        table.add_column(key, justify="right")
    for split in ("val", "test"):
        scores = metrics.get(split) or {}
        table.add_row(split, *(f"{scores.get(k, float('nan')):.3f}" for k in keys))
    console.print(table)


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg demo`."""
    app.command()(demo)
