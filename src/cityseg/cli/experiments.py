"""`cityseg experiments run|list` and `cityseg report`: the suites and the technical note."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)


def _console() -> Console:
    # Built per command so that the terminal width (or $COLUMNS) of this call is honoured.
    return Console()


SUITE_ORDER = ("models", "loss", "augmentation")  # `all` runs them in this order


def run(
    suite: str = typer.Argument(..., help="Suite name in configs/experiments/ (or 'all')."),
    profile: str = typer.Option(
        "cpu", help="ci (tiny, tests) | cpu (synthetic) | cityscapes | camvid (real photos)."
    ),
    runs_dir: Path | None = typer.Option(
        None,
        help="Where the run folders go (default runs/experiments; runs/camvid for the camvid "
        "profile, so that real-photo runs never mix with the synthetic ones of the same name).",
    ),
    suites_dir: Path = typer.Option(Path("configs/experiments"), help="Folder of suite YAMLs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and their status only."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Config override applied to every run, e.g. data.root=data/x."
    ),
    arms: str = typer.Option(
        "",
        help="Only these arms of the profile, comma-separated (e.g. lraspp_lite0,"
        "lraspp_lite0-imagenet); the suite is then recorded as partial.",
    ),
) -> None:
    """Run a suite's grid (skipping complete runs, resuming checkpointed ones)."""
    from cityseg import experiments

    names = list(SUITE_ORDER) if suite == "all" else [suite]
    if runs_dir is None:
        runs_dir = Path("runs/camvid" if profile == "camvid" else "runs/experiments")
    try:
        if suite == "all":  # e.g. the camvid profile declares models and loss only
            names = [n for n in names if profile in experiments.load_suite(n, suites_dir).profiles]
            _console().print(f"suites with a {profile!r} profile: {', '.join(names)}")
        for name in names:
            record = experiments.run_suite(
                name,
                profile,
                runs_dir=runs_dir,
                suites_dir=suites_dir,
                overrides=overrides,
                dry_run=dry_run,
                arms=[a.strip() for a in arms.split(",") if a.strip()],
            )
            if dry_run:
                _print_plan(record)
            else:
                _print_record(record)
    except experiments.SuiteError as err:
        _console().print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def _print_plan(record: dict) -> None:
    table = Table(title=f"suite {record['suite']} ({record['profile']}): planned runs")
    for column in ("run", "status", "model", "loss", "lr", "augment", "seed", "size", "epochs"):
        table.add_column(column, overflow="fold")
    for run in record["runs"]:
        table.add_row(
            run["name"],
            run["status"],
            run["model"],
            run["loss"],
            f"{run['learning_rate']:g}",
            "+".join(run["augment"]) or "none",
            str(run["seed"]),
            run["size"],
            str(run["epochs"]),
        )
    _console().print(table)
    for note in record["choices"]:
        _console().print(f"chosen: {note}")
    if record["optuna_trials"]:
        _console().print(f"then {record['optuna_trials']} Optuna learning-rate trials")


def _print_record(record: dict) -> None:
    table = Table(title=f"suite {record['suite']} ({record['profile']})")
    for column in ("run", "action", "val mIoU"):
        table.add_column(column, overflow="fold")
    for run in record["runs"].values():
        score = run.get("val_miou")
        shown = "-" if score is None or math.isnan(score) else f"{score:.4f}"
        table.add_row(run["name"], run["action"], shown)
    _console().print(table)
    _console().print(
        f"wall time of this invocation: {record['invocations'][-1]['wall_time_s']:.0f} s"
    )


def list_suites(
    suites_dir: Path = typer.Option(Path("configs/experiments"), help="Folder of suite YAMLs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the suites, their arms and profiles."""
    from cityseg import experiments

    rows: list[dict[str, Any]] = []
    for name in experiments.list_suites(suites_dir):
        suite = experiments.load_suite(name, suites_dir)
        rows.append(
            {
                "name": suite.name,
                "arms": [a.name for a in suite.grid],
                "seeds": list(suite.seeds),
                "profiles": sorted(suite.profiles),
                "optuna_trials": int(suite.optuna.get("trials", 0)),
                "description": suite.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"suites in {suites_dir}")
    for column in ("suite", "arms", "seeds", "profiles", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["arms"]),
            ", ".join(map(str, row["seeds"])) or "-",
            ", ".join(row["profiles"]),
            row["description"],
        )
    _console().print(table)


def report(
    runs_dir: Path = typer.Option(Path("runs/experiments"), help="Runs written by the suites."),
    out: Path = typer.Option(Path("docs/technical-note.md"), help="Markdown file to write."),
    bench_dir: Path = typer.Option(Path("bench"), help="Folder of benchmark JSON files."),
    real_runs_dir: Path = typer.Option(
        Path("runs/camvid"), help="Runs of the camvid profile (the Real photographs section)."
    ),
    only_real: bool = typer.Option(
        False, "--only-real", help="Write the Real photographs section alone (to --out)."
    ),
    html: bool = typer.Option(True, help="Also render the note to HTML next to it."),
    pdf: bool = typer.Option(
        False, help="Also print the HTML to PDF (needs Playwright and a system Chromium)."
    ),
) -> None:
    """Write the technical note (Markdown + figures + HTML [+ PDF]) from the recorded runs."""
    from cityseg.report import write_report
    from cityseg.report.pdf import PdfError, write_pdf

    path = write_report(
        out,
        runs_dir=runs_dir,
        bench_dir=bench_dir,
        html=html or pdf,
        real_runs_dir=real_runs_dir,
        only_real=only_real,
    )
    _console().print(f"technical note written to {path}")
    if pdf:
        try:
            printed = write_pdf(path.with_suffix(".html"))
        except PdfError as err:
            _console().print(f"[red]cityseg report: {err}[/red]")
            raise typer.Exit(1) from err
        _console().print(f"PDF written to {printed}")


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg experiments run|list` and `cityseg report`."""
    experiments_app.command("run")(run)
    experiments_app.command("list")(list_suites)
    app.command("report")(report)
