"""`cityseg serve` (the segmentation service) and `cityseg bench serve` (its load test)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from cityseg.cli.output import echo_json

log = logging.getLogger(__name__)


def serve(
    run: Path | None = typer.Option(
        None,
        help="Run folder (runs/NAME) or exported .tflite/.onnx; default: the best run in runs/.",
    ),
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    runtime: str | None = typer.Option(
        None,
        help="Back end: auto (fastest export that met parity, else Keras), keras, litert, onnx.",
    ),
    runs_dir: Path | None = typer.Option(None, help="Where to look for the best run (runs/)."),
    tta: str | None = typer.Option(
        None,
        help="Test-time augmentation: none (default) | hflip (twice the model time) | scales "
        "(the frame zoomed by 1 and 1.5, tiled; ~5x) | hflip_scales (~10x).",
    ),
) -> None:
    """Serve a model over HTTP with its web page (settings also from CITYSEG_* variables)."""
    import uvicorn
    from pydantic import ValidationError
    from typer.models import OptionInfo

    from cityseg.service.app import NoModelError, create_app, uvicorn_options
    from cityseg.service.settings import Settings

    given: dict[str, Any] = {
        "run": run,
        "host": host,
        "port": port,
        "runtime": runtime,
        "runs_dir": runs_dir,
        "tta": tta,
    }
    # Called from Python (e.g. `cityseg demo`), unset options arrive as typer's OptionInfo.
    try:
        settings = Settings(
            **{k: v for k, v in given.items() if v is not None and not isinstance(v, OptionInfo)}
        )
        app = create_app(settings)
    except ValidationError as err:  # e.g. an empty CITYSEG_API_KEY: refuse to start
        for error in err.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"cityseg serve: setting {field}: {error['msg']}", err=True)
        raise typer.Exit(1) from err
    except NoModelError as err:
        typer.echo(f"cityseg serve: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"serving at http://{settings.host}:{settings.port}/ (docs at /docs)")
    uvicorn.run(app, **uvicorn_options(settings), log_level="info")


def bench_serve(
    run: Path | None = typer.Option(None, help="Run folder or exported model; default: best run."),
    requests: int = typer.Option(200, min=1, help="Requests to send in total."),
    concurrency: int = typer.Option(4, min=1, help="Clients sending at the same time."),
    size: str = typer.Option(
        "1024x512", help="WIDTHxHEIGHT of the test image when the run has no test sample."
    ),
    timeout: float = typer.Option(
        60.0, help="Seconds one request may take before it counts as an error."
    ),
    max_seconds: float = typer.Option(600.0, help="Stop sending after this many seconds."),
    worst_case: int = typer.Option(
        16,
        min=0,
        help="Then send this many worst-case uploads at once (flat PNGs at the pixel limit, "
        "format=overlay) and report peak RSS against idle; 0 skips it.",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the results to this JSON file."
    ),
) -> None:
    """Start the service on a free port, load it with N requests from C clients, report."""
    from cityseg.bench.serve import run_bench
    from cityseg.common.sizes import parse_size

    result = run_bench(
        run=run,
        requests=requests,
        concurrency=concurrency,
        size=parse_size(size),
        timeout_s=timeout,
        max_seconds=max_seconds,
        worst_case_uploads=worst_case,
    )
    echo_json(result, json_out)


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `cityseg serve` and `cityseg bench serve`."""
    app.command()(serve)
    bench_app.command("serve")(bench_serve)
