"""`cityseg export` (LiteRT / ONNX with a parity-checked sidecar) and `cityseg bench latency`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

log = logging.getLogger(__name__)


def export_command(
    run: Path = typer.Option(..., help="Run folder (runs/NAME) holding model.keras."),
    format: str = typer.Option("litert", "--format", "-f", help="litert (.tflite) or onnx."),
    quantize: str = typer.Option(
        "none", help="none, fp16 or int8 (LiteRT only; int8 calibrated on training images)."
    ),
    int8_io: bool = typer.Option(
        False, "--int8-io", help="With --quantize int8: int8 input and output tensors too."
    ),
    size: str | None = typer.Option(
        None, help="Input WIDTHxHEIGHT of the exported graph (default: the run's size)."
    ),
    out: Path | None = typer.Option(
        None, help="Output file (default runs/NAME/export/NAME_WxH_PRECISION.ext)."
    ),
    data: Path | None = typer.Option(
        None, help="Dataset root for calibration and parity (default: the run's config)."
    ),
    calibration_images: int = typer.Option(
        100, min=1, help="Training images (spread over the training set) for int8 calibration."
    ),
    parity_images: int = typer.Option(
        50, min=1, help="Test images (spread over the test set) for the parity check."
    ),
) -> None:
    """Export a run to LiteRT or ONNX; writes FILE and FILE.json with measured parity."""
    from cityseg.inference.export import ExportError, export
    from cityseg.inference.runtime import RuntimeLoadError, read_sidecar

    try:
        path = export(
            run,
            format,
            quantize,
            size,
            out=out,
            int8_io=int8_io,
            data_root=data,
            num_calibration=calibration_images,
            num_parity=parity_images,
        )
    except (ExportError, RuntimeLoadError, FileNotFoundError) as err:
        typer.echo(f"cityseg export: {err}", err=True)
        raise typer.Exit(1) from err
    meta = read_sidecar(path)
    parity = meta["parity"]
    typer.echo(f"wrote {path} ({meta['file_size_mb']:.2f} MB) and {path.name}.json")
    line = f"parity on {parity['images']} images: pixel agreement {parity['pixel_agreement']:.5f}"
    if "miou_delta" in parity:
        line += f", mIoU {parity['miou_keras']:.4f} -> {parity['miou_export']:.4f}"
        line += f" ({100 * parity['miou_delta']:+.2f} points lost vs Keras)"
    typer.echo(line)
    typer.echo(
        f"latency {meta['latency_ms']:.1f} ms/image (batch 1, {meta['latency_threads']} threads)"
    )


def bench_latency_command(
    run: list[Path] = typer.Option(
        None, "--run", help="Run folder(s); repeat the option. Default: every run in runs/."
    ),
    sizes: str | None = typer.Option(
        None, help="Comma-separated WIDTHxHEIGHT list, e.g. 512x256,1024x512 (default: run size)."
    ),
    json_out: Path = typer.Option(
        Path("reports/bench_latency.json"), "--json", help="Where to write the JSON report."
    ),
    runs_dir: Path = typer.Option(Path("runs"), help="Where runs are found when --run is absent."),
    repeats: int = typer.Option(30, min=3, help="Timed batch-1 calls per measurement."),
    warmup: int = typer.Option(5, min=0, help="Untimed calls first."),
    export_missing: bool = typer.Option(
        True, help="Export (with parity) the LiteRT / ONNX files a measurement needs."
    ),
    data: Path | None = typer.Option(None, help="Dataset root for exports (default: run config)."),
    variants: str | None = typer.Option(
        None,
        help="Comma-separated RUNTIME/PRECISION subset, e.g. keras_predict/fp32,litert/int8 "
        "(default: keras_predict, keras, onnx fp32 and litert fp32/fp16/int8).",
    ),
    tta: str = typer.Option(
        "none",
        help="Comma-separated test-time augmentation modes to time, e.g. none,hflip_scales "
        "(every view and their mean; Keras predict is timed without).",
    ),
) -> None:
    """Median / p90 ms, images/s, memory, size and speed-up over Keras predict, per runtime."""
    from cityseg.bench.latency import VARIANTS, bench_latency, write_json
    from cityseg.common.sizes import parse_size

    runs = list(run or [])
    if not runs:
        runs = sorted(p for p in runs_dir.glob("*") if (p / "model.keras").is_file())
    if not runs:
        typer.echo(f"cityseg bench latency: no runs with model.keras in {runs_dir}", err=True)
        raise typer.Exit(1)
    size_list = [parse_size(s) for s in sizes.split(",")] if sizes else None
    chosen = VARIANTS
    if variants:
        chosen = tuple(tuple(v.strip().split("/", 1)) for v in variants.split(","))  # type: ignore[misc]
        unknown = [v for v in chosen if v not in VARIANTS]
        if unknown:
            known = ", ".join("/".join(v) for v in VARIANTS)
            typer.echo(
                f"cityseg bench latency: unknown --variants {unknown}; known: {known}", err=True
            )
            raise typer.Exit(1)
    from cityseg.inference.runtime import TTA_MODES

    modes = tuple(m.strip() for m in tta.split(","))
    if not modes or any(m not in TTA_MODES for m in modes):
        typer.echo(
            f"cityseg bench latency: --tta {tta!r}: choose from {', '.join(TTA_MODES)}", err=True
        )
        raise typer.Exit(1)
    report = bench_latency(
        runs,
        size_list,
        variants=chosen,
        tta=modes,
        warmup=warmup,
        repeats=repeats,
        export_missing=export_missing,
        export_kwargs={"data_root": data} if data else None,
    )
    write_json(report, json_out)
    typer.echo(f"matmul peak {report['machine']['matmul_peak_gflops']:.0f} GFLOP/s")
    for row in report["results"]:
        speedup = row["speedup_vs_keras_predict"]  # None where Keras predict was not timed
        # runs trained from one config with --set share its name: the folder tells them apart
        name = Path(row["run"]).name if row.get("run") else row["name"]
        typer.echo(
            f"{name:<28} {row['size']:>9} {row['runtime']:>13}/{row['precision']:<4} "
            f"{'' if row['tta'] == 'none' else 'tta=' + row['tta']:<17}"
            f"{row['median_ms']:8.1f} ms  p90 {row['p90_ms']:8.1f}  {row['images_per_s']:6.1f} img/s  "
            f"{'x' + format(speedup, '4.1f') if speedup else '    -'}  "
            f"{100 * row['fraction_of_peak']:5.1f}% peak  "
            f"{row['peak_rss_mb']:6.0f} MB"
        )
    for check in report["targets"]:
        typer.echo(json.dumps(check))
    typer.echo(f"wrote {json_out}")


def register(app: typer.Typer, bench_app: typer.Typer, experiments_app: typer.Typer) -> None:
    """Add `export` and `bench latency` to the CLI."""
    app.command("export")(export_command)
    bench_app.command("latency")(bench_latency_command)
