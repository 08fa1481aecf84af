"""`cityseg evaluate --run RUN --data ROOT` across datasets: a 2:1 synthetic-trained run scored
on real CamVid frames (4:3) and a 4:3 CamVid run scored on synthetic cities."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityseg.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from camvid_trees import SEGNET_FRAMES, make_segnet

runner = CliRunner()


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cityseg.data.camvid import import_camvid
    from cityseg.data.split import make_split

    base = tmp_path_factory.mktemp("camvid")
    root = base / "camvid"
    import_camvid(make_segnet(base / "src"), root)
    make_split(root, test_cities=["0001TP"], val_cities=["0006R0"]).save(root / "split.json")
    return root


def _run(tmp_path: Path, size: tuple[int, int], root: Path) -> Path:
    import yaml

    from cityseg.models.registry import create_model

    run = tmp_path / f"run_{size[0]}x{size[1]}"
    run.mkdir()
    create_model("unet_mini", input_size=size).save(run / "model.keras")
    config = {"name": run.name, "data": {"root": str(root), "size": f"{size[0]}x{size[1]}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _scores(args: list[str]) -> dict:
    result = runner.invoke(app, ["evaluate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_synthetic_run_scored_on_the_real_test_drive(
    synth_root: Path, camvid_root: Path, tmp_path: Path
) -> None:
    run = _run(tmp_path, (64, 32), synth_root)  # trained (here: built) on synthetic 2:1 frames
    out = tmp_path / "sim2real"
    scores = _scores(
        ["--run", str(run), "--data", str(camvid_root), "--split", "test", "--out", str(out)]
    )
    test_frames = [n for n in SEGNET_FRAMES["train"] if n.startswith("0001TP")]
    assert scores["num_images"] == len(test_frames)  # the whole 0001TP drive, nothing else
    assert 0.0 <= scores["category_iou"] <= 1.0
    assert (out / "eval_test.json").is_file()
    # --data decides the dataset, not the run's own config
    val = _scores(["--run", str(run), "--data", str(camvid_root), "--out", str(out)])
    assert val["num_images"] == 1  # validation drive 0006R0


def test_camvid_run_scored_on_synthetic_cities(
    synth_root: Path, camvid_root: Path, tmp_path: Path
) -> None:
    from cityseg.data.cityscapes import list_samples

    run = _run(tmp_path, (64, 48), camvid_root)
    scores = _scores(
        ["--run", str(run), "--data", str(synth_root), "--split", "test", "--out", str(tmp_path)]
    )
    assert scores["num_images"] == len(list_samples(synth_root, "val"))  # official val, no manifest
