"""The technical note, generated from the recorded runs (never typed by hand).

`write_report(out)` reads every run folder under the suites' runs directory (`config.yaml`,
`history.csv`, `metrics.json`, `plots/`), the suite records (`suite.json`: commands and wall
times), the split manifest and the benchmark JSON files, and writes Markdown with figures
under `<out dir>/figures/` plus an HTML rendering. Every sentence that depends on a number is
chosen by comparing the numbers, e.g. whether an augmentation gain exceeds the seed spread.
"""

from __future__ import annotations

import csv
import html as html_mod
import json
import logging
import math
import re
import shutil
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cityseg import report_figures as figs
from cityseg.data import labels

log = logging.getLogger(__name__)

SUITES = ("models", "loss", "augmentation")
BASELINE_ARM = "none"  # the augmentation arm every other arm is compared with
SMALL_CATEGORIES = ("human", "object")  # rare in pixels, critical for a driving system
DASH = "–"


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
        return _num((self.metrics.get(split) or {}).get(key))

    @property
    def val_miou(self) -> float:
        """Validation mIoU: the only score used to choose."""
        return self.score("val", "miou")

    def per_category(self, split: str) -> dict[str, float]:
        """Per-category IoU of a split."""
        values = (self.metrics.get(split) or {}).get("per_category_iou") or {}
        return {k: _num(v) for k, v in values.items()}

    def cfg(self, dotted: str) -> Any:
        """A value of the saved config by dotted key."""
        node: Any = self.config
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of `history.csv` with numeric values (empty if the file is missing)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: _num(v) for k, v in row.items() if k} for row in csv.DictReader(handle)]


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
    number = _num(value)
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


def _millions(value: Any) -> str:
    number = _num(value)
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


def _best_epoch_gap(run: RunInfo) -> tuple[float, float] | None:
    """(train mIoU, val mIoU) at the run's best validation epoch, from history.csv."""
    rows = [r for r in run.history if not math.isnan(r.get("val_miou", math.nan))]
    if not rows or "miou" not in rows[0]:
        return None
    row = max(rows, key=lambda r: r["val_miou"])
    return row["miou"], row["val_miou"]


# --------------------------------------------------------------------------- data


def _sample_attr(sample: Any, *names: str) -> Any:
    for name in names:
        value = getattr(sample, name, None)
        if value is not None:
            return value
    return None


def _city(sample: Any) -> str:
    city = _sample_attr(sample, "city")
    if city:
        return str(city)
    path = Path(str(_sample_attr(sample, "image", "image_path") or ""))
    return path.parent.name or "?"


def load_split(config: dict[str, Any]) -> tuple[Any, Path | None, str]:
    """The split manifest of a run's dataset, its path, and a note when it cannot be read."""
    data = config.get("data") or {}
    root = Path(str(data.get("root") or ""))
    try:
        from cityseg.data import split as split_mod
    except ImportError as err:
        return None, None, f"the split module is unavailable ({err})"
    path = Path(data["manifest"]) if data.get("manifest") else split_mod.default_manifest_path(root)
    if not path.is_file():
        return None, path, f"split manifest {path} not found"
    try:
        return split_mod.load_manifest(path), path, ""
    except Exception as err:  # a broken manifest must not stop the rest of the note
        return None, path, f"split manifest {path} unreadable: {err}"


def _split_rule(manifest: Any, cities: dict[str, list[str]]) -> str:
    """How the three sets were made, from the manifest's own record of it."""
    method = dict(getattr(manifest, "method", {}) or {})
    if "val_cities" in method:
        how = f"{method['val_cities']} {'city' if method['val_cities'] == 1 else 'cities'}"
    elif "val_fraction" in method:
        how = (
            f"cities adding up to at least {100 * float(method['val_fraction']):.0f}% of the frames"
        )
    else:
        how = "cities"
    return (
        "Split rule: the official test labels are not public, so **test** is the official "
        f"`val` split ({len(cities['test'])} cities), and **validation** is {how} drawn from the "
        f"official `train` cities with seed {getattr(manifest, 'seed', '?')}; the remaining "
        f"{len(cities['train'])} cities are **train**."
    )


def pixel_frequencies(samples: Sequence[Any], limit: int = 400) -> tuple[dict[str, float], int]:
    """Share of pixels per category over (up to `limit`, evenly spaced) label images."""
    from PIL import Image

    if not samples:
        return {}, 0
    step = max(1, math.ceil(len(samples) / limit))
    chosen = list(samples)[::step]
    counts = np.zeros(labels.NUM_CLASSES, dtype=np.int64)
    for sample in chosen:
        path = _sample_attr(sample, "label", "label_path", "labels")
        with Image.open(path) as img:
            ids = np.asarray(img)
        cats = labels.to_categories(ids, source=str(path))
        counts += np.bincount(cats.ravel(), minlength=labels.NUM_CLASSES)
    total = max(int(counts.sum()), 1)
    return {labels.CATEGORIES[i]: counts[i] / total for i in range(labels.NUM_CLASSES)}, len(chosen)


# --------------------------------------------------------------------------- the note


class Note:
    """Accumulates Markdown and the figures it links to."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fig_dir = out.parent / "figures"
        self.parts: list[str] = []

    def add(self, *blocks: str) -> None:
        """Append Markdown blocks separated by blank lines."""
        self.parts.extend(b.strip("\n") for b in blocks if b)

    def figure(self, path: Path | None, caption: str) -> None:
        """Link a figure (relative to the note) with its caption."""
        if path is not None and path.is_file():
            rel = path.relative_to(self.out.parent).as_posix()
            self.add(f"![{caption}]({rel})\n\n*{caption}*")

    def copy_figure(self, src: Path, name: str, caption: str) -> None:
        """Copy a figure written by another command into figures/ and link it."""
        if src.is_file():
            self.fig_dir.mkdir(parents=True, exist_ok=True)
            dst = self.fig_dir / name
            shutil.copyfile(src, dst)
            self.figure(dst, caption)

    def text(self) -> str:
        """The whole note."""
        return "\n\n".join(self.parts) + "\n"


def _section_intro(note: Note, runs: dict[str, list[RunInfo]], records: dict[str, Any]) -> None:
    profiles = sorted({r.get("profile", "?") for r in records.values()}) or ["?"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(len(v) for v in runs.values())
    note.add(
        "# cityseg: technical note",
        f"*Generated by `cityseg report` on {stamp} from {total} recorded runs "
        f"(profile: {', '.join(profiles)}). Do not edit by hand: rerun the command.*",
    )


def _section_data(note: Note, retained: RunInfo | None) -> dict[str, float]:
    note.add("## 1. The problem and the data")
    scored = [labels.CATEGORIES[i] for i in labels.EVAL_CATEGORIES]
    unscored = [c for c in labels.CATEGORIES if c not in scored]
    note.add(
        "Every pixel of a street scene seen by an embedded driving camera is assigned one of "
        f"the {labels.NUM_CLASSES} Cityscapes categories, read from the official label table of "
        "`cityscapesscripts`: " + ", ".join(f"`{c}`" for c in labels.CATEGORIES) + ". "
        f"The official category benchmark scores {len(scored)} of them; "
        + ", ".join(f"`{c}`" for c in unscored)
        + " pixels are never scored."
    )
    if retained is None:
        note.add("No finished run: the dataset cannot be described yet.")
        return {}
    manifest, path, problem = load_split(retained.config)
    root = retained.cfg("data.root")
    if manifest is None:
        note.add(f"Dataset root `{root}`: {problem}.")
        return {}
    splits = {s: list(getattr(manifest, s, []) or []) for s in ("train", "val", "test")}
    cities = {s: sorted({_city(x) for x in v}) for s, v in splits.items()}
    rows = []
    for split, samples in splits.items():
        per_city = {c: sum(1 for x in samples if _city(x) == c) for c in cities[split]}
        listed = ", ".join(f"{c} ({n})" for c, n in per_city.items())
        rows.append((split, len(cities[split]), len(samples), listed))
    overlap = (
        set(cities["train"]) & set(cities["val"])
        | set(cities["train"]) & set(cities["test"])
        | set(cities["val"]) & set(cities["test"])
    )
    note.add(
        f"Dataset root `{root}`, split manifest `{path}`. The split is **by city**, so no street "
        "seen in training appears in validation or test: "
        + (
            "verified, no city is in two splits."
            if not overlap
            else f"**violated** for {sorted(overlap)}."
        ),
        table(("split", "cities", "frames", "frames per city"), rows),
        _split_rule(manifest, cities),
        "Validation frames choose the model, the loss, the learning rate and the augmentation; "
        "the test cities are held out and only reported, never used to choose.",
    )
    freqs, counted = pixel_frequencies(splits["train"])
    if freqs:
        fig = figs.class_frequencies(
            freqs,
            labels.CATEGORIES,
            note.fig_dir / "class_frequencies.png",
            f"train split: share of pixels per category ({counted} label images)",
        )
        rare = sorted(freqs, key=freqs.get)[:3]  # type: ignore[arg-type]
        note.add(
            table(
                ("category", "% of train pixels", "scored"),
                [(c, fmt(100 * f, 2), "yes" if c in scored else "no") for c, f in freqs.items()],
            ),
            "The rarest categories are "
            + ", ".join(f"`{c}` ({100 * freqs[c]:.2f}%)" for c in rare)
            + f" of the pixels (counted over {counted} train label images).",
        )
        note.figure(fig, "Class pixel frequencies of the train split")
    return freqs


def _section_metric(note: Note, freqs: dict[str, float]) -> None:
    note.add(
        "## 2. Why this metric",
        "Scores are computed from **one confusion matrix accumulated over the whole split** at "
        "the original resolution (not averaged per image or per batch, and on the arg-max "
        "prediction, never on soft probabilities). From it, per category *c*: "
        "IoU = TP / (TP + FP + FN) and Dice = 2TP / (2TP + FP + FN). **mIoU** is the mean IoU "
        f"over the {labels.NUM_CLASSES} categories the model predicts (`void` included; a "
        "category absent from both truth and prediction is left out of the mean); **category "
        f"IoU** is the official Cityscapes category score over the {len(labels.EVAL_CATEGORIES)} "
        "scored categories, computed on the label ids with the `ignoreInEval` pixels left out, "
        "exactly as `cityscapesscripts` does.",
        "Pixel accuracy is reported too but is not used to choose: it is dominated by the "
        "large categories. mIoU weighs every category equally, so a model that misses "
        "pedestrians (`human`) or poles and signs (`object`) loses as much as one that misses "
        "the whole road: the right bias for a driving system, where the small categories are "
        "the ones that matter for safety. Dice is monotone in IoU per category but more "
        "lenient to partial overlaps; it is reported for comparison with the literature.",
    )
    small = [c for c in SMALL_CATEGORIES if c in freqs]
    if small:
        share = sum(freqs[c] for c in small)
        note.add(
            "On this train split, "
            + " and ".join(f"`{c}`" for c in small)
            + f" cover {100 * share:.2f}% of the pixels together: a model that never predicts "
            f"them would lose at most {100 * share:.2f} points of pixel accuracy but "
            f"{len(small)}/{len(labels.EVAL_CATEGORIES)} of its category IoU. This is why "
            "the per-category IoU of these two is shown for every comparison below."
        )


def _model_row(run: RunInfo) -> list[str]:
    m = run.metrics
    return [
        f"`{run.name}`",
        str(m.get("model") or run.cfg("model.name")),
        fmt(run.score("val", "miou")),
        fmt(run.score("test", "miou")),
        fmt(run.score("val", "category_iou")),
        fmt(run.score("test", "category_iou")),
        fmt(run.score("val", "dice")),
        fmt(run.score("val", "pixel_accuracy")),
        fmt(m.get("train_time_s"), 0),
        fmt(m.get("time_per_epoch_s"), 1),
        f"{fmt(m.get('best_epoch'), 0)}/{fmt(m.get('epochs_run'), 0)}",
        fmt(m.get("inference_ms"), 1),
        _millions(m.get("params")),
        fmt(m.get("model_size_mb"), 1),
    ]


MODEL_HEADER = (
    "run",
    "model",
    "val mIoU",
    "test mIoU",
    "val cat. IoU",
    "test cat. IoU",
    "val Dice",
    "val pix. acc.",
    "train s",
    "s/epoch",
    "best/run epochs",
    "ms/image",
    "params (M)",
    "size (MB)",
)


def _section_models(note: Note, runs: list[RunInfo]) -> None:
    note.add("## 3. Models")
    if not runs:
        note.add("The models suite has not been run (`cityseg experiments run models`).")
        return
    winner = best(runs)
    note.add(
        "Same data, input size, epoch budget, loss and augmentation for every architecture; "
        "only the model differs. Sorted as in the suite; the best validation mIoU is in bold.",
        table(
            MODEL_HEADER,
            [
                [f"**{c}**" if r is winner and i in (0, 2) else c for i, c in enumerate(row)]
                for r in runs
                for row in [_model_row(r)]
            ],
        ),
    )
    if winner is not None:
        note.add(
            f"Chosen on validation: `{winner.name}` (val mIoU {winner.val_miou:.3f}). "
            + _speed_sentence(runs, winner)
        )
    curves = {r.name: _curve(r, "val_miou") for r in runs}
    note.figure(
        figs.learning_curves(
            curves, note.fig_dir / "models_val_miou.png", "val mIoU", "models: validation mIoU"
        ),
        "Validation mIoU per epoch of each model",
    )
    note.figure(
        figs.grouped_bars(
            {r.name: r.per_category("val") for r in runs},
            _categories(runs),
            note.fig_dir / "models_per_category_iou.png",
            "models: validation IoU per category",
        ),
        "Per-category validation IoU of each model",
    )


def _speed_sentence(runs: list[RunInfo], winner: RunInfo) -> str:
    timed = [r for r in runs if not math.isnan(_num(r.metrics.get("inference_ms")))]
    if not timed:
        return ""
    fastest = min(timed, key=lambda r: _num(r.metrics.get("inference_ms")))
    if fastest is winner:
        return "It is also the fastest at inference."
    return (
        f"The fastest at inference is `{fastest.name}` "
        f"({_num(fastest.metrics.get('inference_ms')):.1f} ms/image vs "
        f"{_num(winner.metrics.get('inference_ms')):.1f}) at val mIoU {fastest.val_miou:.3f} "
        f"({fastest.val_miou - winner.val_miou:+.3f})."
    )


def _curve(run: RunInfo, key: str) -> list[tuple[int, float]]:
    points = []
    for i, row in enumerate(run.history):
        value = row.get(key, math.nan)
        if not math.isnan(value):
            epoch = row.get("epoch", math.nan)
            # history.csv numbers epochs from 1 (callbacks.TrainingMonitor).
            points.append((int(epoch) if not math.isnan(epoch) else i + 1, value))
    return points


def _categories(runs: Sequence[RunInfo]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for name in run.per_category("val"):
            if name not in seen:
                seen.append(name)
    return seen or list(labels.CATEGORIES)


def _section_losses(note: Note, runs: list[RunInfo], record: dict[str, Any]) -> None:
    note.add("## 4. Loss functions and learning rate")
    if not runs:
        note.add("The loss suite has not been run (`cityseg experiments run loss`).")
        return
    grid = [r for r in runs if "trial" not in r.extra]
    trials = [r for r in runs if "trial" in r.extra]
    small = [c for c in SMALL_CATEGORIES if any(c in r.per_category("val") for r in grid)]
    model = grid[0].cfg("model.name") if grid else DASH
    winner = best(grid)
    how = "; ".join(record.get("choices") or []) or "suite defaults"
    note.add(
        f"The loss function is the optimised hyperparameter, on `{model}` (chosen: {how}).",
        table(
            (
                "loss",
                "val mIoU",
                "test mIoU",
                "val Dice",
                *(f"val IoU {c}" for c in small),
                "best/run epochs",
                "train s",
            ),
            [
                (
                    f"**{r.cfg('train.loss')}**" if r is winner else str(r.cfg("train.loss")),
                    fmt(r.val_miou),
                    fmt(r.score("test", "miou")),
                    fmt(r.score("val", "dice")),
                    *(fmt(r.per_category("val").get(c)) for c in small),
                    f"{fmt(r.metrics.get('best_epoch'), 0)}/{fmt(r.metrics.get('epochs_run'), 0)}",
                    fmt(r.metrics.get("train_time_s"), 0),
                )
                for r in grid
            ],
        ),
    )
    if winner is not None:
        note.add(f"Best loss on validation: `{winner.cfg('train.loss')}` ({winner.val_miou:.3f}).")
    study = record.get("optuna") or {}
    if not study:
        note.add("No Optuna study has been recorded.")
        return
    param = study.get("param", "train.learning_rate")
    by_name = {r.name: r for r in trials}
    rows, points = [], []
    for t in study.get("trials", []):
        run = by_name.get(t.get("run", ""))
        val = run.val_miou if run else _num(t.get("value"))
        rows.append((t["number"], fmt(t.get(param), 5), t.get("state", "?"), fmt(val)))
        points.append({param: t.get(param), "state": t.get("state"), "val_miou": val})
    states = [t.get("state") for t in study.get("trials", [])]
    chosen = study.get("best") or {}
    note.add(
        f"Learning rate searched with Optuna ({study.get('sampler', 'TPESampler')}, "
        f"{study.get('pruner', 'MedianPruner')} on validation mIoU reported after every epoch) "
        f"for the `{study.get('base_arm')}` loss over "
        f"[{fmt(study.get('range', [None])[0], 5)}, {fmt(study.get('range', [None, None])[1], 5)}] "
        f"(log scale): {len(states)} trials, {states.count('complete')} complete, "
        f"{states.count('pruned')} pruned.",
        table(("trial", param, "state", "val mIoU"), rows),
    )
    if chosen:
        note.add(
            f"Best learning rate: {fmt(chosen.get(param), 5)} (val mIoU {fmt(chosen.get('value'))})."
        )
    note.figure(
        figs.optuna_trials(points, param, note.fig_dir / "optuna_trials.png", "Optuna trials"),
        "Validation mIoU of each Optuna trial against the learning rate",
    )


def _section_augmentation(
    note: Note, runs: list[RunInfo], record: dict[str, Any], synthetic: bool
) -> str:
    note.add("## 5. Augmentation")
    if not runs:
        note.add(
            "The augmentation suite has not been run (`cityseg experiments run augmentation`)."
        )
        return "not run"
    arms: dict[str, list[float]] = {}
    tests: dict[str, list[float]] = {}
    for run in sorted(runs, key=lambda r: r.seed or 0):
        arms.setdefault(run.arm, []).append(run.val_miou)
        tests.setdefault(run.arm, []).append(run.score("test", "miou"))
    order = [BASELINE_ARM] if BASELINE_ARM in arms else []
    order += [a for a in arms if a not in order]
    arms = {a: arms[a] for a in order}
    comparisons = compare_arms(arms)
    first = runs[0]
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    note.add(
        f"On `{first.cfg('model.name')}` with the `{first.cfg('train.loss')}` loss and learning "
        f"rate {fmt(first.cfg('train.learning_rate'), 5)} (chosen: "
        f"{'; '.join(record.get('choices') or []) or 'suite defaults'}); every arm is trained with seeds "
        f"{seeds}. *noise* is the larger seed spread (max − min over seeds) of the arm and of "
        "`none`: a difference smaller than what reseeding alone produces is not a gain.",
        table(
            (
                "arm",
                "seeds",
                "val mIoU mean ± std",
                "Δ vs none",
                "noise",
                "verdict",
                "test mIoU mean",
            ),
            [
                (
                    f"`{c.arm}`",
                    len(c.values),
                    f"{fmt(c.mean)} ± {fmt(c.std)}",
                    DASH if c.arm == BASELINE_ARM else f"{c.diff:+.3f}",
                    fmt(c.noise),
                    c.verdict,
                    fmt(mean_std(tests[c.arm])[0]),
                )
                for c in comparisons
            ],
        ),
    )
    summary = augmentation_summary(comparisons)
    note.add(summary)
    if "does not help" in summary:
        note.add(_why_no_help(runs, synthetic))
    note.figure(
        figs.seed_spread(
            arms,
            note.fig_dir / "augmentation_seeds.png",
            "augmentation: validation mIoU per seed",
            baseline=BASELINE_ARM,
        ),
        "Validation mIoU of each augmentation arm: bars are means, dots are seeds",
    )
    return summary


def _why_no_help(runs: list[RunInfo], synthetic: bool) -> str:
    base = [r for r in runs if r.arm == BASELINE_ARM]
    gaps = [g for g in (_best_epoch_gap(r) for r in base) if g is not None]
    parts = ["Why:"]
    if gaps:
        train_m = statistics.fmean(g[0] for g in gaps)
        val_m = statistics.fmean(g[1] for g in gaps)
        gap = train_m - val_m
        parts.append(
            f"without augmentation, train mIoU at the best epoch is {train_m:.3f} and "
            f"validation {val_m:.3f} (gap {gap:+.3f})."
        )
        if gap < 0.05:
            parts.append(
                "The model barely overfits, so augmentation, whose job is to fight "
                "overfitting, has little to correct here."
            )
        else:
            parts.append(
                "The model does overfit, yet no technique closed the gap beyond noise within "
                "this epoch budget; more epochs or seeds may be needed to see an effect."
            )
    if synthetic:
        parts.append(
            "The train and validation cities come from the same procedural generator, so "
            "validation looks like training; on real Cityscapes the conclusion may differ."
        )
    return " ".join(parts)


def _section_retained(note: Note, retained: RunInfo | None) -> None:
    note.add("## 6. The retained model")
    if retained is None:
        note.add("No finished run.")
        return
    note.add(
        f"The run with the best **validation** mIoU across all suites: `{retained.suite}/"
        f"{retained.name}` (`{retained.cfg('model.name')}`, loss `{retained.cfg('train.loss')}`, "
        f"learning rate {fmt(retained.cfg('train.learning_rate'), 5)}, augmentation "
        f"{'+'.join(retained.cfg('data.augment') or []) or 'none'}, input "
        f"{retained.cfg('data.size')}). Its test scores are reported here for the first time.",
        table(
            ("split", "mIoU", "category IoU", "Dice", "pixel accuracy"),
            [
                (
                    split,
                    fmt(retained.score(split, "miou")),
                    fmt(retained.score(split, "category_iou")),
                    fmt(retained.score(split, "dice")),
                    fmt(retained.score(split, "pixel_accuracy")),
                )
                for split in ("val", "test")
            ],
        ),
    )
    val_pc, test_pc = retained.per_category("val"), retained.per_category("test")
    cats = list(val_pc or test_pc)
    note.add(
        table(
            ("category", "val IoU", "test IoU"),
            [(c, fmt(val_pc.get(c)), fmt(test_pc.get(c))) for c in cats],
        )
    )
    scored = [labels.CATEGORIES[i] for i in labels.EVAL_CATEGORIES]
    ranked = sorted(
        (c for c in cats if c in scored and not math.isnan(test_pc.get(c, math.nan))),
        key=lambda c: test_pc[c],
    )
    if ranked:
        note.add(
            "Weakest scored categories on test: "
            + ", ".join(f"`{c}` (IoU {test_pc[c]:.3f})" for c in ranked[:2])
            + "."
        )
    worst_images = (retained.metrics.get("test") or {}).get("worst_images") or []
    if worst_images:
        note.add(
            "Worst test images by per-image mIoU (shown last in the examples figure):",
            table(
                ("image", "mIoU"),
                [(f"`{w.get('stem')}`", fmt(w.get("miou"))) for w in worst_images],
            ),
        )
    note.figure(
        figs.grouped_bars(
            {"val": val_pc, "test": test_pc},
            cats,
            note.fig_dir / "retained_per_category_iou.png",
            f"{retained.name}: IoU per category",
        ),
        "Per-category IoU of the retained model",
    )
    matrix = (retained.metrics.get("test") or {}).get("confusion_matrix")
    if matrix:
        note.figure(
            figs.confusion(
                np.asarray(matrix),
                list(labels.CATEGORIES)[: len(matrix)],
                note.fig_dir / "retained_confusion_test.png",
                f"{retained.name}: test confusion (rows sum to 1)",
            ),
            "Test confusion matrix of the retained model, normalised per true category",
        )
    curves = {k: _curve(retained, k) for k in ("miou", "val_miou")}
    note.figure(
        figs.learning_curves(
            curves, note.fig_dir / "retained_learning_curves.png", "mIoU", "retained model"
        ),
        "Learning curves of the retained model (train and validation mIoU)",
    )
    # Example predictions (first images, then the worst) are drawn by evaluate.py at training
    # time; the other plots of the run folder are redrawn above from the recorded numbers.
    for split in ("test", "val"):
        note.copy_figure(
            retained.run_dir / "plots" / f"examples_{split}.png",
            f"retained_examples_{split}.png",
            f"{split} predictions of the retained model: first images, then the worst by mIoU",
        )


def json_table(data: Any) -> str:
    """A Markdown table for a benchmark JSON: a dict of scalars, a list or a dict of dicts."""
    if isinstance(data, dict) and all(not isinstance(v, dict | list) for v in data.values()):
        return table(("key", "value"), [(k, _cell(v)) for k, v in data.items()])
    rows: list[dict[str, Any]]
    if isinstance(data, list):
        rows = [r if isinstance(r, dict) else {"value": r} for r in data]
    elif isinstance(data, dict):
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        nested = {k: v for k, v in data.items() if isinstance(v, dict | list)}
        parts = (
            [table(("key", "value"), [(k, _cell(v)) for k, v in scalars.items()])]
            if scalars
            else []
        )
        for key, value in nested.items():
            parts.append(f"**{key}**\n\n" + json_table(value))
        return "\n\n".join(parts)
    else:
        return f"`{data}`"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return table(columns, [[_cell(r.get(c)) for c in columns] for r in rows])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)[:80]
    return DASH if value is None else str(value)


def _first_file(bench_dir: Path, names: Sequence[str]) -> Path | None:
    """The first benchmark file found in `bench_dir`, then in `reports/` (the bench default)."""
    for folder in (bench_dir, Path("reports")):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _section_pipeline(note: Note, bench_dir: Path) -> None:
    note.add("## 7. Data pipeline and speed")
    loader_path = _first_file(bench_dir, ("loader.json", "bench_loader.json"))
    loader = read_json(loader_path) if loader_path else None
    note.add(
        "Training batches come from a `keras.utils.PyDataset` (`CityscapesSequence`): frames are "
        "decoded and resized once (image bilinear, mask nearest, aspect kept) into an on-disk "
        "cache, augmented with albumentations (image and mask together), and loaded by worker "
        "processes; the last partial batch is kept."
    )
    if loader is not None:
        note.add(f"Measured loader throughput (`{loader_path}`):", json_table(loader))
    else:
        note.add(
            f"No loader benchmark found: run `cityseg bench loader --json {bench_dir / 'loader.json'}`."
        )
    grid = note.fig_dir / "augmentations.png"
    note.figure(grid, "The augmentation techniques applied to one frame (image and mask)")
    latency_path = _first_file(bench_dir, ("latency.json", "bench_latency.json"))
    latency = read_json(latency_path) if latency_path else None
    if latency is not None:
        note.add(f"Inference latency (`{latency_path}`):", json_table(latency))
    else:
        note.add(
            f"No latency benchmark found: run `cityseg bench latency --json {bench_dir / 'latency.json'}`."
        )


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


def _section_limits(
    note: Note,
    runs: dict[str, list[RunInfo]],
    records: dict[str, dict[str, Any]],
    synthetic: bool,
    aug_summary: str,
) -> None:
    note.add("## 8. Limits and next steps")
    everything = [r for v in runs.values() for r in v]
    capped = [
        r
        for r in everything
        if _num(r.metrics.get("best_epoch")) >= _num(r.metrics.get("epochs_run"))
        and not math.isnan(_num(r.metrics.get("epochs_run")))
    ]
    stopped = [r for r in everything if r.metrics.get("stopped_early") is True]
    sizes = sorted({str(r.cfg("data.size")) for r in everything})
    items = []
    if synthetic:
        items.append(
            "All numbers come from **synthetic cities**, not real Cityscapes: they compare "
            "methods under one budget but say little about absolute accuracy on real streets. "
            "Next: rerun the three suites with `--profile cityscapes` on a GPU."
        )
    if everything:
        items.append(
            f"Input size {', '.join(sizes)}. {len(capped)} of {len(everything)} runs reached "
            "their best validation score at their last epoch"
            + (
                " (still improving when the epoch budget ran out: the budget, not the model, "
                "limits them)"
                if capped
                else ""
            )
            + f"; {len(stopped)} {'was' if len(stopped) == 1 else 'were'} ended by early stopping."
        )
    flat = [r for r in everything if flat_validation(r)]
    if flat:
        items.append(
            f"{len(flat)} run(s) kept a flat validation mIoU while their training mIoU rose: "
            + ", ".join(f"`{r.suite}/{r.name}`" for r in flat)
            + ". Their inference-mode predictions barely change with training, so their scores "
            "understate the architecture. A likely cause is BatchNorm moving statistics that "
            "move too slowly for a short run from scratch (the keras.applications MobileNet "
            "encoders use momentum 0.999); a lower momentum or a longer run should be tried "
            "before ranking them."
        )
    aug = runs.get("augmentation") or []
    if aug:
        n = len({r.seed for r in aug})
        items.append(
            f"Augmentation arms use {n} seeds: enough to see large effects, too few for small "
            "ones; "
            + (
                "more seeds could confirm a small gain."
                if "does not help" in aug_summary
                else "more seeds would tighten the estimates."
            )
        )
    items.append(
        "Encoders are trained from scratch (no ImageNet weights offline), which penalises the "
        "deep encoders most under a short CPU budget."
    )
    note.add("\n".join(f"- {item}" for item in items))
    note.add("## 9. Reproduce")
    rows = []
    for name in [*SUITES, *(k for k in records if k not in SUITES)]:
        record = records.get(name)
        if not record:
            continue
        invocations = record.get("invocations") or []
        commands = "; ".join(sorted({f"`{i.get('command')}`" for i in invocations}))
        trained = sum(int(i.get("trained", 0)) for i in invocations)
        rows.append(
            (
                name,
                record.get("profile", "?"),
                commands,
                len(record.get("runs") or {}),
                trained,
                fmt(record.get("wall_time_s"), 0),
            )
        )
    if rows:
        total = sum(_num(r[5]) for r in rows if r[5] != DASH)
        note.add(
            table(("suite", "profile", "command", "runs", "trainings", "wall time (s)"), rows),
            f"Total wall time of the suites: {total:.0f} s ({total / 60:.1f} min). "
            "Then `cityseg report` writes this note.",
        )
    else:
        note.add("No suite record (`suite.json`) found.")


# --------------------------------------------------------------------------- HTML


def to_html(markdown: str, title: str = "cityseg technical note") -> str:
    """Render the note to a standalone HTML page (markdown-it if present, else a minimal converter)."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark").enable("table").render(markdown)
    except ImportError:
        body = _minimal_html(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.5}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        "code{background:#f4f4f4;padding:0 .2rem}"
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_mod.escape(title)}</title><style>{style}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def _inline(text: str) -> str:
    text = html_mod.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _minimal_html(markdown: str) -> str:
    """Headings, paragraphs, bullet lists, tables, images, bold/italic/code: what the note uses."""
    out = []
    for block in markdown.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            out.append(f"<h{level}>{_inline(lines[0][level:].strip())}</h{level}>")
        elif lines[0].startswith("|") and len(lines) > 1:
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
            head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in cells[2:]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif lines[0].startswith("- "):
            items = "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- entry point


def write_report(
    out: str | Path = "docs/technical-note.md",
    *,
    runs_dir: str | Path = "runs/experiments",
    bench_dir: str | Path = "bench",
    html: bool = True,
) -> Path:
    """Write the technical note (Markdown, figures under `<out dir>/figures/`, HTML); return it."""
    out, runs_dir, bench_dir = Path(out), Path(runs_dir), Path(bench_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs, records = collect_runs(runs_dir)
    if not runs:
        log.warning("no finished run under %s: the note will be mostly empty", runs_dir)
    note = Note(out)
    everything = [r for v in runs.values() for r in v]
    retained = best(everything)
    profiles = {r.get("profile") for r in records.values()}
    root = str(retained.cfg("data.root")) if retained else ""
    synthetic = "cityscapes" not in profiles or "synth" in root
    _section_intro(note, runs, records)
    freqs = _section_data(note, retained)
    _section_metric(note, freqs)
    _section_models(note, runs.get("models", []))
    _section_losses(note, runs.get("loss", []), records.get("loss", {}))
    aug_summary = _section_augmentation(
        note, runs.get("augmentation", []), records.get("augmentation", {}), synthetic
    )
    _section_retained(note, retained)
    _section_pipeline(note, bench_dir)
    _section_limits(note, runs, records, synthetic, aug_summary)
    text = note.text()
    out.write_text(text)
    if html:
        out.with_suffix(".html").write_text(to_html(text))
    log.info("technical note written to %s (%d runs)", out, len(everything))
    return out
