"""Shared fixtures: a tiny synthetic Cityscapes tree, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

# The tiny tree every data, training and service test reads: 256x128 frames, 5 cities
# (3 train, 1 val, 1 test), 4 frames each.
SYNTH_SIZE = (256, 128)
SYNTH_CITIES = 5
SYNTH_FRAMES = 4
SYNTH_SEED = 0


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a tiny synthetic Cityscapes tree (leftImg8bit/ + gtFine/), built once."""
    from cityseg.data.synth import generate

    root = tmp_path_factory.mktemp("synth") / "cityscapes"
    return generate(
        root,
        cities=SYNTH_CITIES,
        frames_per_city=SYNTH_FRAMES,
        size=SYNTH_SIZE,
        seed=SYNTH_SEED,
        workers=1,
    )
