"""Sim-to-real: train on synthetic cities, score the real set's test frames, record, report."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from cityseg.experiments.sim2real import RECORD, read_records, run_sim2real
from cityseg.experiments.suites import SuiteError
from cityseg.training import config as config_mod
from cityseg.training.config import Config


def _config(root: Path, tmp_path: Path) -> Config:
    return config_mod.from_dict(
        {
            "name": "s2r_probe",
            "data": {
                "root": str(root),
                "manifest": str(tmp_path / "synth_split.json"),
                "size": "64x48",
                "batch_size": 4,
                "workers": 1,
                "cache": False,
                "augment": ["hflip"],
            },
            "model": {"name": "unet_mini"},
            "train": {"epochs": 1, "warmup_epochs": 0, "early_stopping": 0},
            "tracking": {"mlflow": False},
        }
    )


@pytest.fixture
def real_root(tmp_path: Path) -> Path:
    """A stand-in for the real photographs: other rendered cities (4:3), with a split."""
    from cityseg.data.split import make_split
    from cityseg.data.synth import generate

    root = generate(tmp_path / "real", cities=5, frames_per_city=2, size=(96, 72), seed=9)
    make_split(root, val_cities=1).save(root / "split.json")
    return root


def test_trains_on_synth_scores_the_real_test_set_and_skips_when_done(
    synth_root: Path, real_root: Path, tmp_path: Path
) -> None:
    pytest.importorskip("cityseg.training.losses")
    from cityseg.data.split import load_manifest
    from cityseg.evaluation.evaluate import evaluate
    from cityseg.inference.runtime import Predictor
    from cityseg.training.train import train

    calls: list[str] = []

    def counting_train(config: Config, out_dir: Path, **kwargs: Any) -> Path:
        calls.append(config.name)
        return train(config, out_dir, **kwargs)

    runs = tmp_path / "runs"
    cfg = _config(synth_root, tmp_path)
    record = run_sim2real(cfg, real_root, runs_dir=runs, train_fn=counting_train, command="probe")
    assert calls == ["s2r_probe"]
    run_dir = runs / "s2r_probe"
    saved = json.loads((run_dir / RECORD).read_text())
    assert saved["real"]["category_iou"] == pytest.approx(record["real"]["category_iou"])
    # the recorded score is that of the real *test* frames, recomputed independently here
    test = [s for s in load_manifest(real_root / "split.json").test if s.label is not None]
    again = evaluate(Predictor.load(run_dir, "keras"), test)
    assert saved["real"]["num_images"] == len(test)
    assert saved["real"]["category_iou"] == pytest.approx(again["category_iou"])
    assert saved["real"]["cities"] == sorted({s.city for s in test})
    assert (run_dir / "eval_real_test.json").is_file()
    shares = saved["synth"]["category_shares"]
    assert sum(shares.values()) == pytest.approx(100.0)
    assert math.isfinite(saved["synth"]["share_distance"])
    # a second call with the same config trains nothing and scores again
    run_sim2real(cfg, real_root, runs_dir=runs, train_fn=counting_train, command="probe")
    assert calls == ["s2r_probe"]
    assert [r["name"] for r in read_records(runs)] == ["s2r_probe"]

    from cityseg.report.note import Note
    from cityseg.report.sim2real import section_sim2real

    note = Note(tmp_path / "note" / "note.md")
    section_sim2real(note, runs, tmp_path / "no-bench")
    text = note.text()
    assert "## Sim-to-real" in text
    assert f"**{saved['real']['category_iou']:.3f}**" in text
    assert "Cityscapes" in text
    from cityseg.report.sim2real import write_sim2real

    alone = write_sim2real(tmp_path / "docs" / "s2r.md", runs_dir=runs, bench_dir=tmp_path)
    assert alone.read_text() == text
    with pytest.raises(FileNotFoundError, match=r"sim2real\.json"):
        write_sim2real(tmp_path / "x.md", runs_dir=tmp_path / "empty")
    assert ("**not met**" in text) != ("the 0.55 target is **met**" in text)


def test_missing_real_manifest_names_it(synth_root: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    shutil.copytree(synth_root, real)
    (real / "split.json").unlink(missing_ok=True)
    with pytest.raises(SuiteError, match=r"split\.json"):
        run_sim2real(_config(synth_root, tmp_path), real, runs_dir=tmp_path / "runs")


def test_category_shares_sum_the_whole_set(synth_root: Path) -> None:
    import numpy as np

    from cityseg.data import labels
    from cityseg.data.cityscapes import list_samples, read_label
    from cityseg.data.synth_stats import category_shares, share_distance

    samples = list_samples(synth_root, "train")
    shares = category_shares(samples)
    counts = sum(
        np.bincount(labels.to_categories(read_label(s.label)).ravel(), minlength=256)[:8]
        for s in samples
    )
    expected = 100 * counts / counts.sum()
    assert [shares[c] for c in labels.CATEGORIES] == pytest.approx(expected.tolist())
    # the reference shares sum to 100.5 %: half of |100 - 38| + the 62.5 of the others
    assert share_distance({"flat": 100.0}) == pytest.approx(0.5 * (62.0 + 62.5))


def _record(runs: Path, name: str, augment: list[str], iou: float, **config: object) -> dict:
    import yaml

    run = runs / name
    run.mkdir(parents=True)
    saved = {"name": name, "data": {"augment": augment, "size": "192x160"}, "model": config}
    if name == "full":  # saved before a field existed: its default still pairs it
        saved["data"]["train_on"] = ["train"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    per = {"flat": iou + 0.1, "nature": iou - 0.1}
    return {"name": name, "augment": augment, "real": {"category_iou": iou,
            "per_category_iou_official": per}}  # fmt: skip


def test_ablation_pairs_only_runs_that_differ_in_one_technique(tmp_path: Path) -> None:
    from cityseg.report.sim2real import ablation

    records = [
        _record(tmp_path, "full", ["hflip", "camera", "domain_rand"], 0.42, freeze_epochs=5),
        _record(tmp_path, "no_dr", ["hflip", "camera"], 0.40, freeze_epochs=5),
        _record(tmp_path, "no_cam", ["hflip", "domain_rand"], 0.45, freeze_epochs=5),
        # same augmentation as no_dr but another config: never paired with "full"
        _record(tmp_path, "tuned_no_dr", ["hflip", "camera"], 0.30, freeze_epochs=1),
        # another technique in place of two: not a one-technique ablation of any run
        _record(tmp_path, "other", ["hflip", "scale_crop"], 0.10, freeze_epochs=5),
    ]
    lines = ablation(records, tmp_path)
    assert lines == [
        "- `domain_rand` helps transfer: 0.420 with it (`full`), 0.400 without (`no_dr`), "
        "+0.020; most moved: flat +0.020, nature +0.020",
        "- `camera` hurts transfer: 0.420 with it (`full`), 0.450 without (`no_cam`), "
        "-0.030; most moved: flat -0.030, nature -0.030",
    ]
    assert ablation(records[:1], tmp_path) == []
    records[1]["real"]["category_iou"] = 0.415  # 0.005 below "full": within one seed's noise
    assert ablation(records, tmp_path)[0].startswith("- `domain_rand` has no measurable effect")


def test_self_trained_runs_are_reported_apart_with_what_labelled_them(tmp_path: Path) -> None:
    from cityseg.report.note import Note
    from cityseg.report.sim2real import section_sim2real, uses_real_photos

    def write(name: str, iou: float, **extra: object) -> dict:
        per = {c: iou for c in ("flat", "construction", "object", "nature", "sky", "human")}
        record = {
            "name": name, "model": "lraspp_lite0", "augment": ["hflip"], "style_images": "",
            "epochs_run": 5, "input_size": "192x160", "train_time_s": 60.0,
            "real": {"cities": ["0001TP"], "num_images": 62, "manifest": "real/split.json",
                     "category_iou": iou, "per_category_iou_official": per | {"vehicle": iou}},
            "synth": {"train_frames": 160, "category_shares": {}}, "command": f"probe {name}",
            **extra,
        }  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / RECORD).write_text(json.dumps(record))
        return record

    plain = write("s2r_00_baseline", 0.42)
    pseudo = {"cities": ["pseudo0016E5"], "frames": 305, "keep": 0.5, "cap": 0.9,
              "coverage": 52.4, "model": "runs/sim2real/s2r_04"}  # fmt: skip
    adapted = write("s2r_14_pseudo", 0.47, pseudo_labels=pseudo)
    assert not uses_real_photos(plain) and uses_real_photos(adapted)
    note = Note(tmp_path / "note.md")
    section_sim2real(note, tmp_path, tmp_path / "no-bench")
    text = note.text()
    synthetic, apart = text.split("### With unlabelled real photos")
    assert "s2r_00_baseline" in synthetic and "s2r_14_pseudo" not in synthetic
    assert "compares each run with `s2r_00_baseline` (the run named baseline)" in text
    assert "Budgets: 5 epochs at 192x160 on 160 synthetic frames (1.0 min of training" in text
    assert (
        "`s2r_14_pseudo`: 305 frames of pseudo0016E5 labelled by `runs/sim2real/s2r_04` "
        "(`cityseg pseudo-label --keep 0.5 --cap 0.9`: keep 0.5 of each predicted category's "
        "pixels, the most confident, and all above 0.9; 52.4 % of their pixels labelled)" in apart
    )
    # the command that wrote the pseudo-labels, when recorded, is quoted whole
    pseudo["command"] = "cityseg pseudo-label --run R --data D --with S --out O"
    write("s2r_15_pseudo", 0.48, pseudo_labels=pseudo)
    note = Note(tmp_path / "note2.md")
    section_sim2real(note, tmp_path, tmp_path / "no-bench")
    assert "(`cityseg pseudo-label --run R --data D --with S --out O`: keep 0.5" in note.text()
    assert "With test-time augmentation" not in note.text()  # none scored so
    # a run scored with test-time augmentation gets one line, beside its plain score
    (tmp_path / "s2r_14_pseudo" / "real_tta").mkdir()
    for mode, iou in (("hflip", 0.4721), ("hflip_scales", 0.4759)):
        path = tmp_path / "s2r_14_pseudo" / "real_tta" / f"eval_test_tta_{mode}.json"
        path.write_text(json.dumps({"category_iou": iou}))
    note = Note(tmp_path / "note3.md")
    section_sim2real(note, tmp_path, tmp_path / "no-bench")
    assert "`s2r_14_pseudo` 0.470 -> hflip 0.472, hflip_scales 0.476." in note.text()
    # without a run named baseline the first one is the reference, and budgets that differ
    # are given as spans
    (tmp_path / "s2r_00_baseline" / RECORD).unlink()
    write("s2r_30_big", 0.45, epochs_run=8, input_size="384x288", train_time_s=300.0)
    note = Note(tmp_path / "note4.md")
    section_sim2real(note, tmp_path, tmp_path / "no-bench")
    assert "with `s2r_14_pseudo` (the first by name, as no run is named baseline)" in note.text()
    assert "Budgets: 5 to 8 epochs at 192x160, 384x288 on 160 synthetic frames (1.0 to 5.0 min" in (
        note.text()
    )


def test_the_augmentation_column_names_pasted_categories() -> None:
    from cityseg.report.sim2real import _augmentation

    assert _augmentation({"augment": ["hflip", "exposure"]}) == "hflip+exposure"
    pasted = {"augment": ["hflip"], "paste": ["human", "object"]}
    assert _augmentation(pasted) == "hflip+paste(human,object)"
    assert _augmentation({"augment": []}) == "none"


def test_ensembles_on_the_real_drive_are_reported_synthetic_only_if_every_member_is(
    tmp_path: Path,
) -> None:
    from cityseg.report.note import Note
    from cityseg.report.sim2real import section_sim2real

    runs = tmp_path / "runs" / "sim2real"
    per = {c: 0.5 for c in ("flat", "construction", "object", "nature", "sky", "human")}
    for name, extra in (("s2r_a", {}), ("s2r_b", {}), ("s2r_p", {"pseudo_labels": {"frames": 3}})):
        record = {
            "name": name, "model": "lraspp_lite0", "augment": ["hflip"], "input_size": "64x48",
            "real": {"cities": ["0001TP"], "num_images": 62, "manifest": "real/split.json",
                     "category_iou": 0.45, "per_category_iou_official": per | {"vehicle": 0.3}},
            **extra,
        }  # fmt: skip
        (runs / name).mkdir(parents=True)
        (runs / name / RECORD).write_text(json.dumps(record))

    def scored(name: str, members: list[str], iou: float, tta: float | None = None) -> None:
        folder = tmp_path / "runs" / "sim2real_ensembles" / name
        folder.mkdir(parents=True)
        scores = {"ensemble": members, "category_iou": iou,
                  "per_category_iou_official": per | {"vehicle": iou}}  # fmt: skip
        (folder / "eval_test.json").write_text(json.dumps(scores))
        if tta is not None:
            path = folder / "eval_test_tta_hflip_scales.json"
            path.write_text(json.dumps(scores | {"category_iou": tta}))

    # members named by the path they were given (relative to nowhere here): found by name
    scored("synth_pair", ["elsewhere/s2r_a", "elsewhere/s2r_b"], 0.4712, tta=0.4866)
    scored("with_pseudo", [str(runs / "s2r_a"), str(runs / "s2r_p")], 0.561)
    scored("with_unknown", [str(runs / "s2r_a"), "runs/camvid/other"], 0.6)
    note = Note(tmp_path / "note.md")
    section_sim2real(note, runs, tmp_path / "no-bench")
    text = note.text().split("### Ensembles on the real drive")[1]
    assert "| `synth_pair` | `s2r_a`, `s2r_b` | synthetic frames only | **0.471** | 0.487 |" in text
    assert (
        "| `with_pseudo` | `s2r_a`, `s2r_p` | with unlabelled real photos | **0.561** | - |" in text
    )
    assert "| `with_unknown` | `s2r_a`, `other` | not only sim-to-real runs |" in text
    # the verdict looks at purely synthetic ensembles only: 0.561 and 0.6 do not count
    assert "The best purely synthetic ensemble, `synth_pair` (2 models), reaches 0.471" in text
    assert "target is **not met** by an ensemble either" in text
    # a corrupt score file or member record is named, not a bare JSON error
    broken = tmp_path / "runs" / "sim2real_ensembles" / "synth_pair" / "eval_test.json"
    kept = broken.read_text()
    broken.write_text(kept[:20])
    with pytest.raises(ValueError, match=r"synth_pair/eval_test\.json: not valid JSON"):
        section_sim2real(Note(tmp_path / "n.md"), runs, tmp_path / "no-bench")
    broken.write_text(kept)
    elsewhere = tmp_path / "other" / "s2r_x"
    elsewhere.mkdir(parents=True)
    (elsewhere / RECORD).write_text("{")
    scored("with_broken_member", [str(elsewhere)], 0.4)
    with pytest.raises(ValueError, match=r"s2r_x/sim2real\.json: not valid JSON"):
        section_sim2real(Note(tmp_path / "n.md"), runs, tmp_path / "no-bench")
    # no ensembles folder, no such section
    note = Note(tmp_path / "note2.md")
    section_sim2real(note, runs, tmp_path / "no-bench", ensembles_dir=tmp_path / "none")
    assert "Ensembles on the real drive" not in note.text()


def test_drive_light_measures_the_grey_of_road_and_sky(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from cityseg.data.cityscapes import Sample
    from cityseg.data.synth_stats import drive_light

    road, sky = 7, 23  # Cityscapes label ids: flat and sky
    samples = []
    for k, (dark, bright) in enumerate([(20, 200), (40, 240)]):
        image = np.zeros((2, 4, 3), np.uint8)
        image[:, :2] = dark  # left half: road
        image[:, 2:] = (bright - 30, bright, bright + 10)  # right half: sky, grey = bright - 20/3
        ids = np.full((2, 4), road, np.uint8)
        ids[:, 2:] = sky
        Image.fromarray(image).save(tmp_path / f"{k}.png")
        Image.fromarray(ids).save(tmp_path / f"{k}_ids.png")
        samples.append(
            Sample(tmp_path / f"{k}.png", tmp_path / f"{k}_ids.png", "c", "train", f"{k}")
        )
    light = drive_light(samples)
    assert light["frames"] == 2
    assert light["flat"] == pytest.approx(30.0)
    assert light["sky"] == pytest.approx(220.0 - 20 / 3, abs=0.01)
    assert light["mean"] == pytest.approx((30.0 + 220.0 - 20 / 3) / 2, abs=0.01)
    unlabelled = [Sample(s.image, None, s.city, s.split, s.stem) for s in samples]
    assert drive_light(unlabelled)["flat"] is None  # no labels: no per-category light
    with pytest.raises(ValueError, match="at least one frame"):
        drive_light([])
