"""Recorded runs: loading, formatting, and the statistics the note compares."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

SUITES = ("models", "loss", "augmentation")
BASELINE_ARM = "none"  # the augmentation arm every other arm is compared with
SMALL_CATEGORIES = ("human", "object")  # rare in pixels, critical for a driving system
DASH = "–"
RISING = 0.01  # a last-epoch val mIoU gain above this: the curve is still rising


# --------------------------------------------------------------------------- loading


@dataclass
class RunInfo:
    """One finished run folder."""

    name: str
    suite: str
    arm: str
    seed: int | None
    run_dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # the suite record's entry

    def score(self, split: str, key: str) -> float:
        """`metrics[split][key]` as a float (NaN when missing)."""
        return num((self.metrics.get(split) or {}).get(key))

    @property
    def val_miou(self) -> float:
        """Validation mIoU: the only score used to choose."""
        return self.score("val", "miou")

    def per_category(self, split: str) -> dict[str, float]:
        """Per-category IoU of a split."""
        values = (self.metrics.get(split) or {}).get("per_category_iou") or {}
        return {k: num(v) for k, v in values.items()}

    def cfg(self, dotted: str) -> Any:
        """A value of the saved config by dotted key."""
        node: Any = self.config
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node


def num(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of `history.csv` with numeric values (empty if the file is missing)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: num(v) for k, v in row.items() if k} for row in csv.DictReader(handle)]


def read_json(path: Path) -> Any:
    """A JSON file, or None if it does not exist; a clear error naming it if it is broken."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def collect_runs(runs_dir: Path) -> tuple[dict[str, list[RunInfo]], dict[str, dict[str, Any]]]:
    """Finished runs per suite folder, and the suite records (`suite.json`), sorted by name."""
    runs: dict[str, list[RunInfo]] = {}
    records: dict[str, dict[str, Any]] = {}
    if not runs_dir.is_dir():
        return runs, records
    for suite_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        if suite_dir.name.startswith("."):
            continue
        record = read_json(suite_dir / "suite.json") or {}
        if record:
            records[suite_dir.name] = record
        entries = record.get("runs") or {}
        # The suite's own order (grid order) first, then any other folder by name.
        order = {name: i for i, name in enumerate(entries)}
        folders = sorted(
            (p for p in suite_dir.iterdir() if p.is_dir()),
            key=lambda p: (order.get(p.name, len(order)), p.name),
        )
        found = []
        for run_dir in folders:
            metrics = read_json(run_dir / "metrics.json")
            if metrics is None or run_dir.name.startswith("."):
                continue
            config_path = run_dir / "config.yaml"
            config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
            entry = entries.get(run_dir.name, {})
            seed = entry.get("seed", (config.get("train") or {}).get("seed"))
            found.append(
                RunInfo(
                    name=run_dir.name,
                    suite=suite_dir.name,
                    arm=entry.get("arm") or re.sub(r"-s\d+$", "", run_dir.name),
                    seed=None if seed is None else int(seed),
                    run_dir=run_dir,
                    config=config or {},
                    metrics=metrics,
                    history=read_history(run_dir / "history.csv"),
                    extra=entry,
                )
            )
        if found:
            runs[suite_dir.name] = found
    return runs, records


# --------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, a dash when missing."""
    number = num(value)
    if math.isnan(number):
        return DASH
    return f"{number:.{digits}f}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN std for one value)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), std


def best(runs: Sequence[RunInfo]) -> RunInfo | None:
    """The run with the best validation mIoU (never the test score)."""
    scored = [r for r in runs if not math.isnan(r.val_miou)]
    return max(scored, key=lambda r: r.val_miou) if scored else None


def within_budget(runs: Sequence[RunInfo], max_ms: float | None) -> list[RunInfo]:
    """The runs whose measured `inference_ms` fits `max_ms` (all of them without a budget)."""
    if max_ms is None:
        return list(runs)
    return [r for r in runs if num(r.metrics.get("inference_ms")) <= max_ms]


def latency_budget(records: dict[str, dict[str, Any]]) -> float | None:
    """The real-time budget (ms/image) the later suites chose their model under, if any.

    Read from the suite record, else from the recorded suite file's profile (`max_inference_ms`).
    """
    from cityseg import experiments

    for name in ("loss", "augmentation"):
        record = records.get(name) or {}
        if record.get("max_inference_ms") is not None:
            return float(record["max_inference_ms"])
        suite_file, profile = record.get("suite_file"), record.get("profile")
        if not suite_file or not profile or not Path(suite_file).is_file():
            continue
        try:
            spec = experiments.profile_spec(experiments.load_suite(suite_file), profile)
        except (experiments.SuiteError, OSError) as error:
            log.warning("cannot read the latency budget from %s: %s", suite_file, error)
            continue
        if spec.get("max_inference_ms") is not None:
            return float(spec["max_inference_ms"])
    return None


def last_epoch_gain(run: RunInfo) -> float:
    """Validation mIoU gained over the last epoch (NaN with fewer than 2 epochs): a plateau test."""
    values = [r["val_miou"] for r in run.history if not math.isnan(r.get("val_miou", math.nan))]
    return values[-1] - values[-2] if len(values) >= 2 else math.nan


def millions(value: Any) -> str:
    number = num(value)
    return DASH if math.isnan(number) else f"{number / 1e6:.2f}"


# --------------------------------------------------------------------------- augmentation


@dataclass
class ArmComparison:
    """One augmentation arm compared with the no-augmentation arm over seeds."""

    arm: str
    values: list[float]
    mean: float
    std: float
    diff: float  # mean(arm) - mean(none)
    noise: float  # larger seed spread (max - min) of the two arms
    verdict: str  # helps | hurts | within noise | unknown


def compare_arms(arms: dict[str, list[float]], baseline: str = BASELINE_ARM) -> list[ArmComparison]:
    """Each arm against `baseline`: a gain counts only if it exceeds the seed-to-seed spread.

    The noise of a comparison is the larger of the two arms' seed spreads (max - min over
    seeds): a difference smaller than what reseeding alone produces is not evidence.
    """
    base = arms.get(baseline) or []
    base_mean, _ = mean_std(base)
    out = []
    for arm, values in arms.items():
        mean, std = mean_std(values)
        spreads = [max(v) - min(v) for v in (values, base) if len(v) > 1]
        noise = max(spreads) if len(spreads) == 2 else math.nan
        diff = mean - base_mean
        if arm == baseline:
            verdict = "baseline"
        elif math.isnan(noise) or math.isnan(diff):
            verdict = "unknown"
        elif diff > noise:
            verdict = "helps"
        elif diff < -noise:
            verdict = "hurts"
        else:
            verdict = "within noise"
        out.append(ArmComparison(arm, values, mean, std, diff, noise, verdict))
    return out


def augmentation_summary(comparisons: Sequence[ArmComparison]) -> str:
    """The plain-language verdict on augmentation, chosen from the comparisons."""
    helps = [c for c in comparisons if c.verdict == "helps"]
    hurts = [c for c in comparisons if c.verdict == "hurts"]
    unknown = [c for c in comparisons if c.verdict == "unknown"]
    if unknown and not helps:
        return (
            "**Cannot tell whether augmentation helps**: some arms lack a second seed or the "
            "`none` arm, so run-to-run noise is unknown."
        )
    if not helps:
        text = (
            "**Augmentation does not help here.** No technique, alone or all together, beat "
            "training without augmentation by more than the seed-to-seed spread of validation "
            "mIoU"
        )
        if hurts:
            text += "; " + ", ".join(f"`{c.arm}`" for c in hurts) + " made it measurably worse"
        return text + "."
    names = ", ".join(f"`{c.arm}` ({c.diff:+.3f} > noise {c.noise:.3f})" for c in helps)
    text = f"**Augmentation helps** beyond run-to-run noise for: {names}."
    rest = [c for c in comparisons if c.verdict == "within noise"]
    if rest:
        text += " The other gains are within noise: " + ", ".join(f"`{c.arm}`" for c in rest) + "."
    if hurts:
        text += " Worse beyond noise: " + ", ".join(f"`{c.arm}`" for c in hurts) + "."
    return text


def best_epoch_gap(run: RunInfo) -> tuple[float, float] | None:
    """(train mIoU, val mIoU) at the run's best validation epoch, from history.csv."""
    rows = [r for r in run.history if not math.isnan(r.get("val_miou", math.nan))]
    if not rows or "miou" not in rows[0]:
        return None
    row = max(rows, key=lambda r: r["val_miou"])
    return row["miou"], row["val_miou"]


def flat_validation(run: RunInfo, tol: float = 0.002, rise: float = 0.05) -> bool:
    """True when validation mIoU stayed flat after the first epoch while training mIoU rose.

    That pattern means the model in inference mode predicts (almost) one thing whatever it
    learnt, so its scores say nothing about the architecture.
    """
    rows = [r for r in run.history if not math.isnan(r.get("val_miou", math.nan))]
    if len(rows) < 3 or "miou" not in rows[0]:
        return False
    later = [r["val_miou"] for r in rows[1:]]
    return max(later) - min(later) < tol and rows[-1]["miou"] - rows[0]["miou"] > rise
