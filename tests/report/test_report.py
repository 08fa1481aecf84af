"""The technical note from hand-written run folders: numbers in, the same numbers out."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from cityseg import report
from cityseg.data import labels
from cityseg.report import suites

CATS = list(labels.CATEGORIES)


def _metrics(name: str, model: str, val: float, test: float, **extra: float) -> dict:
    def split(miou: float) -> dict:
        per = {c: round(miou + 0.01 * (i - 4), 4) for i, c in enumerate(CATS)}
        cm = (np.eye(8, dtype=int) * 100 + 3).tolist()
        return {
            "miou": miou,
            "category_iou": miou + 0.05,
            "per_category_iou": per,
            "dice": miou + 0.1,
            "per_category_dice": per,
            "pixel_accuracy": 0.9,
            "confusion_matrix": cm,
        }

    return {
        "name": name,
        "model": model,
        "loss": "ce",
        "input_size": [64, 32],
        "params": 1_234_567,
        "model_size_mb": 4.7,
        "train_time_s": 61.0,
        "time_per_epoch_s": 12.2,
        "epochs_run": 5,
        "best_epoch": 4,
        "inference_ms": 8.5,
        "val": split(val),
        "test": split(test),
        **extra,
    }


def write_run(
    runs_dir: Path,
    suite: str,
    name: str,
    *,
    model: str = "unet_mini",
    loss: str = "ce",
    val: float = 0.5,
    test: float = 0.45,
    seed: int = 0,
    augment: tuple[str, ...] = (),
    data: dict | None = None,
    encoder_weights: str | None = None,
) -> Path:
    """A finished run folder written by hand (what train.py would leave)."""
    run = runs_dir / suite / name
    run.mkdir(parents=True)
    config = {
        "name": f"{suite}-{name}",
        "data": {"root": "data/none", "size": "64x32", "augment": list(augment), **(data or {})},
        "model": {"name": model, "encoder_weights": encoder_weights},
        "train": {"loss": loss, "learning_rate": 0.002, "seed": seed},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps(_metrics(name, model, val, test)))
    with (run / "history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "miou", "val_loss", "val_miou", "lr"])
        for epoch in range(5):
            writer.writerow(
                [epoch + 1, 1.0 - 0.1 * epoch, val + 0.01, 1.0, val - 0.02 * (4 - epoch), 0.002]
            )
    return run


def write_record(runs_dir: Path, suite: str, runs: dict, **extra: object) -> None:
    """A suite.json like experiments.run_suite leaves."""
    record = {
        "suite": suite,
        "profile": "cpu",
        "runs": runs,
        "invocations": [
            {
                "command": f"cityseg experiments run {suite}",
                "wall_time_s": 120.0,
                "trained": len(runs),
            }
        ],
        "wall_time_s": 120.0,
        **extra,
    }
    (runs_dir / suite / "suite.json").write_text(json.dumps(record))


def _aug_suite(runs_dir: Path, values: dict[str, list[float]]) -> None:
    entries = {}
    for arm, seeds in values.items():
        for seed, val in enumerate(seeds):
            name = f"{arm}-s{seed}"
            write_run(runs_dir, "augmentation", name, val=val, seed=seed)
            entries[name] = {"name": name, "arm": arm, "seed": seed}
    write_record(runs_dir, "augmentation", entries)


def _row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] == first_cell:
                return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


@pytest.fixture
def models_runs(tmp_path: Path) -> Path:
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "models", "unet_mini", model="unet_mini", val=0.512, test=0.498)
    write_run(
        runs_dir, "models", "lraspp_mobilenetv3", model="lraspp_mobilenetv3", val=0.634, test=0.601
    )
    write_record(runs_dir, "models", {"unet_mini": {"arm": "unet_mini"}, "lraspp_mobilenetv3": {}})
    return runs_dir


def test_models_table_matches_metrics(models_runs: Path, tmp_path: Path) -> None:
    out = report.write_report(
        tmp_path / "docs" / "note.md", runs_dir=models_runs, bench_dir=tmp_path
    )
    text = out.read_text()
    row = _row(text, "`unet_mini`")
    header = _row(text, "run")
    values = dict(zip(header, row, strict=True))
    assert values["val mIoU"] == "0.512"
    assert values["test mIoU"] == "0.498"
    assert values["val cat. IoU"] == "0.562"
    assert values["params (M)"] == "1.23"
    assert values["ms/image"] == "8.5"
    # The best on validation is bold and retained; its test scores appear in the retained section.
    best = dict(zip(header, _row(text, "**`lraspp_mobilenetv3`**"), strict=True))
    assert best["val mIoU"] == "**0.634**"
    assert "`models/lraspp_mobilenetv3`" in text
    assert _row(text, "test")[1] == "0.601"
    assert (tmp_path / "docs" / "figures" / "models_per_category_iou.png").is_file()
    assert (tmp_path / "docs" / "figures" / "retained_confusion_test.png").is_file()
    html = out.with_suffix(".html").read_text()
    assert "<table>" in html and "figures/models_val_miou.png" in html
    # Wall time and command come from suite.json.
    assert "`cityseg experiments run models`" in text


def test_selection_uses_validation_not_test(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "models", "a", val=0.60, test=0.40)
    write_run(runs_dir, "models", "b", val=0.55, test=0.70)
    runs, _ = report.collect_runs(runs_dir)
    assert report.best(runs["models"]).name == "a"


def test_augmentation_within_noise_says_it_does_not_help(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    _aug_suite(runs_dir, {"none": [0.50, 0.54], "hflip": [0.53, 0.55], "color": [0.49, 0.50]})
    text = report.write_report(
        tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path
    ).read_text()
    assert "Augmentation does not help here" in text
    assert "Augmentation helps" not in text
    row = _row(text, "`hflip`")
    assert row[2] == "0.540 ± 0.014"
    assert row[3] == "+0.020"
    assert row[4] == "0.040"  # the larger seed spread: none 0.50..0.54
    assert row[5] == "within noise"
    assert "Why:" in text


def test_augmentation_that_slows_fitting_is_explained(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    _aug_suite(runs_dir, {"none": [0.60, 0.61], "all": [0.50, 0.51]})
    text = report.write_report(tmp_path / "n.md", runs_dir=runs_dir, bench_dir=tmp_path)
    text = text.read_text()
    assert _row(text, "`all`")[5] == "hurts"
    # write_run puts train mIoU 0.01 above val: 0.515 with all, 0.615 without.
    assert "falls to 0.515 (vs 0.615)" in text


def test_augmentation_gain_beyond_noise_says_it_helps(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    _aug_suite(runs_dir, {"none": [0.50, 0.51], "hflip": [0.60, 0.61], "noise": [0.40, 0.41]})
    text = report.write_report(
        tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path
    ).read_text()
    assert "**Augmentation helps** beyond run-to-run noise for: `hflip`" in text
    assert "does not help" not in text
    assert _row(text, "`hflip`")[5] == "helps"
    assert _row(text, "`noise`")[5] == "hurts"


def test_compare_arms_needs_two_seeds() -> None:
    result = {c.arm: c for c in report.compare_arms({"none": [0.5], "hflip": [0.9]})}
    assert result["hflip"].verdict == "unknown"
    assert math.isnan(result["hflip"].noise)
    assert "Cannot tell" in report.augmentation_summary(list(result.values()))


def test_optuna_study_is_tabulated(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "loss", "ce", val=0.5)
    write_run(runs_dir, "loss", "dice", loss="dice", val=0.55)
    write_run(runs_dir, "loss", "dice-lr-t0", loss="dice", val=0.58)
    trials = [
        {
            "number": 0,
            "state": "complete",
            "value": 0.58,
            "train.learning_rate": 0.0031,
            "run": "dice-lr-t0",
        },
        {
            "number": 1,
            "state": "pruned",
            "value": None,
            "train.learning_rate": 0.0005,
            "run": "dice-lr-t1",
        },
    ]
    optuna = {
        "param": "train.learning_rate",
        "range": [0.0003, 0.01],
        "base_arm": "dice",
        "trials": trials,
        "best": {"value": 0.58, "train.learning_rate": 0.0031},
    }
    write_record(runs_dir, "loss", {"dice-lr-t0": {"trial": 0}}, optuna=optuna)
    text = report.write_report(
        tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path
    ).read_text()
    assert "2 trials, 1 complete, 1 pruned" in text
    assert "Best learning rate: 0.00310 (val mIoU 0.580)" in text
    assert "Best loss on validation: `dice` (0.550)" in text  # trials are not grid arms
    assert _row(text, "0")[1:] == ["0.00310", "complete", "0.580"]


def test_bench_json_is_rendered(models_runs: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "loader.json").write_text(json.dumps({"images_per_s": 123.4, "workers": 2}))
    (bench / "latency.json").write_text(json.dumps([{"runtime": "onnx", "ms": 7.25}]))
    text = report.write_report(
        tmp_path / "note.md", runs_dir=models_runs, bench_dir=bench
    ).read_text()
    assert _row(text, "images_per_s")[1] == "123.4"
    assert _row(text, "onnx")[1] == "7.25"


def test_broken_metrics_json_names_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", "models", "bad")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(run / "metrics.json"))):
        report.collect_runs(tmp_path / "runs")


def test_minimal_html_converter_handles_tables_and_images() -> None:
    html = report.minimal_html("# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![c](figures/x.png)")
    assert "<h1>T</h1>" in html
    assert "<td>1</td><td>2</td>" in html
    assert '<img alt="c" src="figures/x.png">' in html


def test_data_section_comes_from_the_manifest(synth_root: Path, tmp_path: Path) -> None:
    from cityseg.data.split import make_split

    manifest = make_split(synth_root, val_cities=1, seed=0)
    path = manifest.save(tmp_path / "split.json")
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "models", "a", data={"root": str(synth_root), "manifest": str(path)})
    text = report.write_report(
        tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path
    ).read_text()
    for split in ("train", "val", "test"):
        row = _row(text, split)
        assert row[1] == str(len(manifest.cities(split)))
        assert row[2] == str(len(manifest.samples(split)))
    assert "verified, no city is in two splits" in text
    assert "**validation** is 1 city drawn from the official `train` cities with seed 0" in text
    shares = [float(_row(text, c)[1]) for c in CATS]
    assert sum(shares) == pytest.approx(100, abs=0.05)
    assert (tmp_path / "figures" / "class_frequencies.png").is_file()


def test_flat_validation_is_flagged(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run = write_run(runs_dir, "models", "collapsed")
    rows = ["epoch,loss,miou,val_loss,val_miou,lr"]
    rows += [f"{e},1.0,{0.2 + 0.1 * e},2.0,0.0345,0.002" for e in range(1, 5)]
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    write_run(runs_dir, "models", "learning")  # its val mIoU moves: not flagged
    text = report.write_report(
        tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path
    ).read_text()
    assert "1 run(s) kept a flat validation mIoU" in text
    assert (
        "`models/collapsed`" in text and "`models/learning`" not in text.split("flat validation")[1]
    )


def _set_ms(run: Path, ms: float) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["inference_ms"] = ms
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_latency_budget_picks_the_retained_model(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    _set_ms(write_run(runs_dir, "models", "big", model="unet_vgg16", val=0.70, test=0.66), 40.0)
    _set_ms(write_run(runs_dir, "models", "fast", model="lraspp", val=0.60, test=0.58), 9.0)
    write_record(runs_dir, "models", {"big": {}, "fast": {}})
    _set_ms(write_run(runs_dir, "loss", "dice", model="lraspp", loss="dice", val=0.62), 9.0)
    write_record(runs_dir, "loss", {"dice": {"arm": "dice"}}, max_inference_ms=15.0)

    assert report.latency_budget(report.collect_runs(runs_dir)[1]) == 15.0
    text = report.write_report(tmp_path / "note.md", runs_dir=runs_dir, bench_dir=tmp_path)
    text = text.read_text()
    assert "It does not meet the real-time budget of the embedded camera (15 ms/image" in text
    assert "the best on validation is `fast` (val mIoU 0.600, 9.0 ms/image, -0.100" in text
    # Retained: the best validation run within the budget (loss/dice), not models/big.
    assert "within the 15 ms/image real-time budget: `loss/dice`" in text
    assert "Against the `unet_mini` baseline" not in text  # no unet_mini run in this suite
    assert "Setup: input 64x32, " in text and "loss `ce`, augmentation none" in text
    # The last-epoch gain column: history rises by 0.02 per epoch in write_run.
    column = list(suites.MODEL_HEADER).index("last-epoch gain")
    assert _row(text, "`fast`")[column] == "+0.020"


def test_pretrained_against_scratch_table(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "models", "lraspp_lite0", model="lraspp_lite0", val=0.40, test=0.38)
    write_run(
        runs_dir,
        "models",
        "lraspp_lite0-imagenet",
        model="lraspp_lite0",
        val=0.55,
        test=0.50,
        encoder_weights="imagenet",
    )
    write_run(runs_dir, "models", "unet_mini", val=0.45, test=0.44)  # no pretrained twin
    write_record(runs_dir, "models", {"lraspp_lite0": {}, "lraspp_lite0-imagenet": {}})
    text = report.write_report(tmp_path / "n.md", runs_dir=runs_dir, bench_dir=tmp_path)
    text = text.read_text()
    init = list(suites.MODEL_HEADER).index("encoder init")
    winner = _row(text, "**`lraspp_lite0-imagenet`**")  # best on validation: bold name and score
    assert winner[init] == "imagenet" and winner[init + 1] == "**0.550**"
    assert _row(text, "`lraspp_lite0`")[init] == "scratch"
    assert "**Pretrained against scratch.**" in text
    pair = [r for r in text.splitlines() if r.startswith("| `lraspp_lite0` | 0.400")]
    assert len(pair) == 1, text
    cells = [c.strip() for c in pair[0].strip("|").split("|")]
    assert cells[1:7] == ["0.400", "0.550", "+0.150", "0.380", "0.500", "+0.120"]
    assert not [r for r in text.splitlines() if r.startswith("| `unet_mini` | 0.450")]


def test_latency_budget_read_from_the_suite_file(tmp_path: Path) -> None:
    suite = Path("configs/experiments/loss.yaml").resolve()
    records = {"loss": {"profile": "cpu", "suite_file": str(suite)}}
    expected = yaml.safe_load(suite.read_text())["profiles"]["cpu"]["max_inference_ms"]
    assert report.latency_budget(records) == float(expected)
    assert report.latency_budget({"loss": {"profile": "ci", "suite_file": str(suite)}}) is None
    assert report.latency_budget({}) is None


def test_retained_model_compared_with_the_baseline(models_runs: Path, tmp_path: Path) -> None:
    text = report.write_report(tmp_path / "n.md", runs_dir=models_runs, bench_dir=tmp_path)
    text = text.read_text()
    # lraspp (val 0.634) is retained; the unet_mini baseline has test 0.498.
    assert (
        "Against the `unet_mini` baseline of the models suite: test mIoU 0.601 vs 0.498 (+0.103), better"
        in text
    )


def test_pdf_error_names_the_missing_html(tmp_path: Path) -> None:
    from cityseg.report.pdf import PdfError, write_pdf

    with pytest.raises(PdfError, match=r"note\.html"):
        write_pdf(tmp_path / "note.html")


@pytest.mark.browser
def test_note_prints_to_pdf_with_its_figures(models_runs: Path, tmp_path: Path) -> None:
    import shutil

    from cityseg.report.pdf import find_chromium, write_pdf

    if find_chromium() is None:
        pytest.skip("needs a system Chromium")
    pytest.importorskip("playwright")
    note = report.write_report(
        tmp_path / "docs" / "note.md", runs_dir=models_runs, bench_dir=tmp_path
    )
    pdf = write_pdf(note.with_suffix(".html"))
    assert pdf == note.with_suffix(".pdf") and pdf.read_bytes().startswith(b"%PDF")
    # The same HTML with its figures gone prints much smaller: the figures are in the PDF.
    shutil.rmtree(note.parent / "figures")
    bare = write_pdf(note.with_suffix(".html"), tmp_path / "bare.pdf")
    assert pdf.stat().st_size > 2 * bare.stat().st_size, (pdf.stat().st_size, bare.stat().st_size)


def test_benchmarks_become_focused_tables(models_runs: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    run = {"cache": False, "augment": False, "mode": "inline", "workers": 1}
    loader = {
        "size": [512, 256],
        "batch_size": 8,
        "cores": 2,
        "runs": [
            {**run, "images_per_s": 60.0, "median_images_per_s": 59.0},
            {**run, "mode": "threads", "workers": 2, "images_per_s": 108.0},
        ],
    }
    (bench / "loader.json").write_text(json.dumps(loader))
    result = {"model": "unet_mini", "size": "512x256", "runtime": "onnx", "precision": "fp32"}
    latency = {
        "machine": {"matmul_peak_gflops": 200.0, "cores": 2},
        "results": [{**result, "median_ms": 50.0, "images_per_s": 20.0, "fraction_of_peak": 0.9}],
    }
    (bench / "latency.json").write_text(json.dumps(latency))
    text = report.write_report(tmp_path / "n.md", runs_dir=models_runs, bench_dir=bench)
    text = text.read_text()
    # 108 / 60 = 1.80 over one worker; 2 workers on 2 cores: 0.90 of the limit.
    assert _row(text, "decode PNG")[:7] == [
        "decode PNG",
        "no",
        "inline x 1",
        "60.0",
        "59.0",
        "1.00",
        "–",
    ]
    assert "| decode PNG | no | threads x 2 | 108.0 | – | 1.80 | 0.90 |" in text
    assert _row(text, "unet_mini")[:6] == ["unet_mini", "512x256", "onnx", "fp32", "50.0", "20.0"]
    assert "200 GFLOP/s on 2 cores" in text


@pytest.mark.browser
def test_wide_tables_fit_the_printed_page(tmp_path: Path) -> None:
    # The models table has 15 columns; printed on A4 none of them may be cut off.
    from cityseg.report.note import to_html
    from cityseg.report.pdf import CHROMIUM_ARGS, find_chromium
    from cityseg.report.runs import table

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("needs a system Chromium")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    header = ["run", "model", *(f"val metric {i} (unit)" for i in range(13))]
    rows = [
        [
            f"`fpn_efficientnetb0_{i}`",
            "fpn_efficientnetb0",
            *(f"{1000 * i + j:.3f}" for j in range(13)),
        ]
        for i in range(3)
    ]
    html = tmp_path / "note.html"
    html.write_text(to_html("# Models\n\n" + table(header, rows)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            # A4 (210 mm) less the 12 mm side margins of write_pdf, at 96 px per inch.
            page = browser.new_page(viewport={"width": round(186 / 25.4 * 96), "height": 1100})
            page.emulate_media(media="print")
            page.goto(html.as_uri())
            right, width = page.evaluate(
                "() => [Math.max(...[...document.querySelectorAll('td, th')]"
                ".map(c => c.getBoundingClientRect().right)), document.documentElement.clientWidth]"
            )
        finally:
            browser.close()
    assert right <= width, f"the table ends at {right:.0f} px on a {width} px wide page"
