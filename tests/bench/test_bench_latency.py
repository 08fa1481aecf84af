"""`bench_latency`: one fresh process per variant, honest fields, speed-ups against Keras predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cityseg.bench.latency import bench_latency, count_flops, matmul_peak_gflops, write_json
from cityseg.data.labels import NUM_CLASSES
from cityseg.inference.export import ParityImage

SIZE = (32, 16)


def _model():
    import keras

    inputs = keras.Input((SIZE[1], SIZE[0], 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(x)
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1, use_bias=False)(x)
    return keras.Model(inputs, outputs)


def test_count_flops_matches_hand_count() -> None:
    # 3x3 conv 3->4 and 1x1 conv 4->8 without bias: multiply-adds x 2 per output pixel.
    pixels = SIZE[0] * SIZE[1]
    expected = 2 * pixels * (3 * 3 * 3 * 4 + 4 * NUM_CLASSES)
    flops = count_flops(_model(), SIZE)
    assert expected <= flops <= expected + 2 * pixels * 3  # + the Rescaling multiply (and add)


def test_matmul_peak_is_two_n_cubed_over_the_best_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock whose matmuls take 0.5 s, 0.25 s and 0.4 s: the peak is 2 n^3 over the best.
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.4])
    monkeypatch.setattr("cityseg.bench.latency.time.perf_counter", lambda: next(ticks))
    assert matmul_peak_gflops(n=64, repeats=3) == pytest.approx(2 * 64**3 / 0.25 / 1e9)
    monkeypatch.undo()
    # Measured for real: a positive, finite rate.
    peak = matmul_peak_gflops(n=128, repeats=2)
    assert np.isfinite(peak) and peak > 0


@pytest.mark.slow
def test_bench_latency_rows(tmp_path: Path) -> None:
    run = tmp_path / "bench_run"
    run.mkdir()
    _model().save(run / "model.keras")
    rng = np.random.default_rng(0)
    parity = [ParityImage(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8))]
    report = bench_latency(
        [run],
        variants=[
            ("keras_predict", "fp32"),
            ("keras", "fp32"),
            ("onnx", "fp32"),
            ("litert", "fp32"),
        ],
        warmup=1,
        repeats=3,
        export_kwargs={"parity": parity, "latency_runs": 0},
        tta=("none", "hflip_scales"),
    )
    augmented = {r["runtime"]: r for r in report["results"] if r["tta"] == "hflip_scales"}
    rows = {r["runtime"]: r for r in report["results"] if r["tta"] == "none"}
    assert set(rows) == {"keras_predict", "keras", "onnx", "litert"}
    # TTA is timed through the Predictor on every runtime but bare Keras predict
    assert set(augmented) == {"keras", "onnx", "litert"}
    for runtime, row in augmented.items():
        assert row["model_passes"] == 10 and rows[runtime]["model_passes"] == 1
        assert row["tta_cost"] == pytest.approx(row["median_ms"] / rows[runtime]["median_ms"])
        assert row["fraction_of_peak"] == pytest.approx(
            row["flops"] * 10 * row["images_per_s"] / 1e9 / report["machine"]["matmul_peak_gflops"]
        )
    assert "tta_cost" not in rows["onnx"] and report["settings"]["tta"] == ["none", "hflip_scales"]
    for row in rows.values():
        assert 0 < row["median_ms"] <= row["p90_ms"]
        assert row["images_per_s"] == pytest.approx(1000 / row["median_ms"])
        assert row["peak_rss_mb"] > 0 and row["file_size_mb"] > 0
        assert row["flops"] > 0 and row["fraction_of_peak"] > 0
    assert rows["keras_predict"]["speedup_vs_keras_predict"] == pytest.approx(1.0)
    # The embedded runtimes are measured in processes that never load TensorFlow.
    assert not rows["onnx"]["tensorflow_imported"] and not rows["litert"]["tensorflow_imported"]
    assert rows["keras"]["tensorflow_imported"]
    # ...so their peak memory is their own, far below a process holding TensorFlow.
    assert rows["litert"]["peak_rss_mb"] < rows["keras"]["peak_rss_mb"] / 2
    assert rows["litert"]["parity"]["pixel_agreement"] >= 0.999
    assert report["machine"]["matmul_peak_gflops"] > 0
    out = write_json(report, tmp_path / "out" / "latency.json")
    assert json.loads(out.read_text())["settings"]["batch"] == 1


def test_cli_names_an_unknown_tta_mode_before_measuring(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityseg.cli import app

    run = tmp_path / "bench_run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"never loaded")
    args = ["bench", "latency", "--run", str(run), "--json", str(tmp_path / "b.json")]
    result = CliRunner().invoke(app, [*args, "--tta", "none,vflip"])
    assert result.exit_code == 1
    assert "--tta 'none,vflip': choose from none, hflip, scales, hflip_scales" in result.output
    assert not (tmp_path / "b.json").exists()


def test_cli_table_names_each_run_by_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs trained from one config with --set share its name: the table shows the folders."""
    from typer.testing import CliRunner

    from cityseg.bench import latency
    from cityseg.cli import app

    def row(run: str, speedup: float | None) -> dict:
        return {"run": run, "name": "camvid_same_config", "size": "64x48", "runtime": "onnx",
                "precision": "fp32", "tta": "none", "median_ms": 1.0, "p90_ms": 1.5,
                "images_per_s": 1000.0, "speedup_vs_keras_predict": speedup,
                "fraction_of_peak": 0.5, "peak_rss_mb": 100.0}  # fmt: skip

    report = {"machine": {"matmul_peak_gflops": 100.0}, "targets": [],
              "results": [row("runs/a/lite0_480", None), row("runs/a/lite0_640", 2.5)]}  # fmt: skip
    monkeypatch.setattr(latency, "bench_latency", lambda *a, **k: report)
    runs = []
    for name in ("lite0_480", "lite0_640"):
        (tmp_path / name).mkdir()
        runs += ["--run", str(tmp_path / name)]
    out = tmp_path / "b.json"
    result = CliRunner().invoke(app, ["bench", "latency", *runs, "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "img/s" in line]
    assert lines[0].startswith("lite0_480 ") and lines[1].startswith("lite0_640 ")
    assert "camvid_same_config" not in result.output
    assert "img/s      -" in lines[0] and "img/s  x 2.5" in lines[1]  # no speed-up measured: -
    assert out.is_file()
