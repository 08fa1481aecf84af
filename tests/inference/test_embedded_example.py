"""examples/embedded/segment.py, run in a clean venv (LiteRT + NumPy + Pillow only), matches the Predictor."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import blocky
import numpy as np
import pytest
from PIL import Image

from cityseg.data.labels import NUM_CLASSES, PALETTE, colorize
from cityseg.inference.export import ParityImage, export
from cityseg.inference.runtime import Predictor

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "embedded" / "segment.py"
SIZE = (48, 24)

pytestmark = pytest.mark.slow


def _model():
    """An untrained but non-trivial conv net: the test compares runtimes, not accuracy."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE[1], SIZE[0], 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(interpolation="bilinear")(x)
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A fresh venv holding only ai-edge-litert, numpy and pillow (from uv's cache)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    venv = tmp_path_factory.mktemp("embedded") / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "ai-edge-litert",
            "numpy",
            "pillow",
        ],
        check=True,
    )
    return python


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "embedded_run"
    run.mkdir()
    _model().save(run / "model.keras")
    return run


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    scene = colorize(
        blocky.blocks(rng, 10, 10, block=6)
    )  # 60x60: another size and aspect, so letterboxing is exercised
    wide = rng.integers(0, 256, (37, 101, 3), dtype=np.uint8)
    return [scene, wide]


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_script_mask_equals_predictor(
    clean_python: Path, run_dir: Path, tmp_path: Path, quantize: str
) -> None:
    images = _images()
    out = export(
        run_dir,
        "litert",
        quantize,
        int8_io=quantize == "int8",  # the script must quantise its input itself
        calibration=images * 4,
        parity=[ParityImage(image) for image in images],
        latency_runs=0,
    )
    # Nothing from the project may leak into the script's interpreter.
    probe = subprocess.run(
        [
            str(clean_python),
            "-c",
            "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('cityseg'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["None", "None"]
    predictor = Predictor.load(out)
    for i, image in enumerate(images):
        src, mask, cats = tmp_path / f"in{i}.png", tmp_path / f"mask{i}.png", tmp_path / f"c{i}.npy"
        Image.fromarray(image).save(src)
        subprocess.run(
            [
                str(clean_python),
                str(SCRIPT),
                str(out),
                str(src),
                str(mask),
                "--categories",
                str(cats),
            ],
            check=True,
            cwd=tmp_path,
        )
        expected = predictor.predict(image)
        assert len(np.unique(expected)) > 1  # a one-class mask would prove nothing
        np.testing.assert_array_equal(np.load(cats), expected)
        np.testing.assert_array_equal(np.asarray(Image.open(mask)), PALETTE[expected])
