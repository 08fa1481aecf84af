"""The technical note, generated from the recorded runs (never typed by hand).

`write_report(out)` reads every run folder under the suites' runs directory (`config.yaml`,
`history.csv`, `metrics.json`, `plots/`), the suite records (`suite.json`: commands and wall
times), the split manifest and the benchmark JSON files, and writes Markdown with figures
under `<out dir>/figures/` plus an HTML rendering. Every sentence that depends on a number is
chosen by comparing the numbers, e.g. whether an augmentation gain exceeds the seed spread.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cityseg.report.note import Note, minimal_html, to_html
from cityseg.report.real import section_real
from cityseg.report.runs import (
    RunInfo,
    augmentation_summary,
    best,
    collect_runs,
    compare_arms,
    flat_validation,
    latency_budget,
    within_budget,
)
from cityseg.report.sections import (
    section_data,
    section_intro,
    section_limits,
    section_metric,
    section_pipeline,
)
from cityseg.report.suites import (
    section_augmentation,
    section_losses,
    section_models,
    section_retained,
)

__all__ = [
    "RunInfo",
    "augmentation_summary",
    "best",
    "collect_runs",
    "compare_arms",
    "flat_validation",
    "latency_budget",
    "minimal_html",
    "to_html",
    "write_report",
]

log = logging.getLogger(__name__)

BASELINE_MODEL = "unet_mini"  # the simple model every other one must beat

# --------------------------------------------------------------------------- entry point


def write_report(
    out: str | Path = "docs/technical-note.md",
    *,
    runs_dir: str | Path = "runs/experiments",
    bench_dir: str | Path = "bench",
    html: bool = True,
    real_runs_dir: str | Path = "runs/camvid",
) -> Path:
    """Write the technical note (Markdown, figures under `<out dir>/figures/`, HTML); return it."""
    out, runs_dir, bench_dir = Path(out), Path(runs_dir), Path(bench_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs, records = collect_runs(runs_dir)
    if not runs:
        log.warning("no finished run under %s: the note will be mostly empty", runs_dir)
    note = Note(out)
    everything = [r for v in runs.values() for r in v]
    budget = latency_budget(records)
    # Deployed on the embedded camera: the best validation run within the real-time budget.
    retained = best(within_budget(everything, budget)) or best(everything)
    profiles = {r.get("profile") for r in records.values()}
    root = str(retained.cfg("data.root")) if retained else ""
    synthetic = "cityscapes" not in profiles or "synth" in root
    section_intro(note, runs, records)
    freqs = section_data(note, retained)
    section_metric(note, freqs)
    section_models(note, runs.get("models", []), budget)
    section_losses(note, runs.get("loss", []), records.get("loss", {}))
    aug_summary = section_augmentation(
        note, runs.get("augmentation", []), records.get("augmentation", {}), synthetic
    )
    baseline = next(
        (r for r in runs.get("models", []) if r.cfg("model.name") == BASELINE_MODEL), None
    )
    section_retained(note, retained, budget, baseline)
    section_real(note, Path(real_runs_dir))
    section_pipeline(note, bench_dir)
    section_limits(note, runs, records, synthetic, aug_summary)
    text = note.text()
    out.write_text(text)
    if html:
        out.with_suffix(".html").write_text(to_html(text))
    log.info("technical note written to %s (%d runs)", out, len(everything))
    return out
