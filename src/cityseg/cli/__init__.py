"""The `cityseg` command line: one Typer app, each verb registered by the module that owns it.

Every command module imports TensorFlow lazily (inside the command), so `cityseg --help`
answers at once.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="cityseg",
    help="Semantic segmentation of street scenes (Cityscapes, 8 categories).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(help="Benchmarks that write JSON (speed, throughput, latency).")
experiments_app = typer.Typer(help="Experiment suites declared in configs/experiments/.")
app.add_typer(bench_app, name="bench")
app.add_typer(experiments_app, name="experiments")

# Each module defines `register(app, bench_app, experiments_app)`.
_COMMAND_MODULES = (
    "cityseg.cli.data",
    "cityseg.cli.importers",
    "cityseg.cli.synth",
    "cityseg.cli.train",
    "cityseg.cli.serve",
    "cityseg.cli.export",
    "cityseg.cli.experiments",
    "cityseg.cli.sim2real",
    "cityseg.cli.demo",
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a real missing dependency, not a module not written yet
                raise
            continue
        module.register(app, bench_app, experiments_app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
