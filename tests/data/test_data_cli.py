"""`cityseg check | split | augment-grid | bench loader` on hand-made trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_trees import make_tree
from PIL import Image
from typer.testing import CliRunner

from cityseg.cli import app
from cityseg.data.split import load_manifest

runner = CliRunner()


def test_split_writes_manifest_and_prints_table(tmp_path: Path) -> None:
    make_tree(tmp_path)
    result = runner.invoke(
        app, ["split", "--data", str(tmp_path), "--val-cities", "1", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "split.json")
    assert len(manifest.cities("val")) == 1 and manifest.seed == 4
    for city in manifest.cities("train") + manifest.cities("val") + ["frankfurt"]:
        assert city in result.output


def test_split_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["split", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "expected the official Cityscapes layout" in result.output


def test_check_lists_each_bad_file(tmp_path: Path) -> None:
    make_tree(tmp_path)
    ok = runner.invoke(app, ["check", "--data", str(tmp_path), "--workers", "1"])
    assert ok.exit_code == 0 and "0 bad" in ok.output
    label = sorted((tmp_path / "gtFine" / "val").rglob("*_labelIds.png"))[0]
    Image.new("L", (32, 16), 99).save(label)
    bad = runner.invoke(app, ["check", "--data", str(tmp_path), "--workers", "1"])
    assert bad.exit_code == 1
    assert label.name in bad.output.replace("\n", "") and "[99]" in bad.output


def test_augment_grid_writes_png(tmp_path: Path) -> None:
    make_tree(tmp_path / "data", size=(64, 32))
    out = tmp_path / "grid.png"
    result = runner.invoke(
        app,
        ["augment-grid", "--data", str(tmp_path / "data"), "--out", str(out), "--size", "64x32"],
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size[1] > image.size[0]  # one row per technique


@pytest.mark.slow
def test_bench_loader_json(tmp_path: Path) -> None:
    make_tree(tmp_path / "data", {"train": ["aachen", "bochum"]}, frames=4, size=(64, 32))
    out = tmp_path / "bench.json"
    args = ["bench", "loader", "--data", str(tmp_path / "data"), "--size", "32x16"]
    result = runner.invoke(
        app, [*args, "--batches", "3", "--batch-size", "2", "--repeats", "2", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["cores"] >= 1 and data["plain_loop"]["images_per_s"] > 0
    assert {(r["workers"], r["mode"]) for r in data["runs"]} == {
        (1, "inline"), (2, "threads"), (2, "processes"),
    }  # fmt: skip
    assert all(r["images"] == 6 for r in data["runs"])  # 3 timed batches of 2
    assert "speedup_2w_processes_vs_1w_decode_noaug" in data["summary"]
    assert data["repeats"] == 2
    assert all(r["images_per_s"] >= r["median_images_per_s"] for r in data["runs"])
