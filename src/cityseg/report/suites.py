"""Sections on the three experiment suites and the retained model."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from cityseg.data import labels
from cityseg.report import figures as figs
from cityseg.report.note import Note
from cityseg.report.runs import (
    BASELINE_ARM,
    DASH,
    RISING,
    SMALL_CATEGORIES,
    RunInfo,
    augmentation_summary,
    best,
    best_epoch_gap,
    compare_arms,
    fmt,
    last_epoch_gain,
    mean_std,
    millions,
    num,
    table,
    within_budget,
)

log = logging.getLogger(__name__)


def _model_row(run: RunInfo) -> list[str]:
    m = run.metrics
    return [
        f"`{run.name}`",
        str(m.get("model") or run.cfg("model.name")),
        encoder_init(run),
        fmt(run.score("val", "miou")),
        fmt(run.score("test", "miou")),
        fmt(run.score("val", "category_iou")),
        fmt(run.score("test", "category_iou")),
        fmt(run.score("val", "dice")),
        fmt(run.score("val", "pixel_accuracy")),
        fmt(m.get("train_time_s"), 0),
        fmt(m.get("time_per_epoch_s"), 1),
        f"{fmt(m.get('best_epoch'), 0)}/{fmt(m.get('epochs_run'), 0)}",
        signed(last_epoch_gain(run)),
        fmt(m.get("inference_ms"), 1),
        millions(m.get("params")),
        fmt(m.get("model_size_mb"), 1),
    ]


MODEL_HEADER = (
    "run",
    "model",
    "encoder init",
    "val mIoU",
    "test mIoU",
    "val cat. IoU",
    "test cat. IoU",
    "val Dice",
    "val pix. acc.",
    "train s",
    "s/epoch",
    "best/run epochs",
    "last-epoch gain",
    "ms/image",
    "params (M)",
    "size (MB)",
)


_BOLD_COLUMNS = (0, MODEL_HEADER.index("val mIoU"))  # the winner's name and score


def encoder_init(run: RunInfo) -> str:
    """Where a run's encoder started: "imagenet", a weights file name, or "scratch"."""
    weights = run.cfg("model.encoder_weights")
    return str(weights).rsplit("/", 1)[-1] if weights else "scratch"


PRETRAINED_HEADER = (
    "model",
    "val mIoU scratch",
    "val mIoU pretrained",
    "val gain",
    "test mIoU scratch",
    "test mIoU pretrained",
    "test gain",
    "s/epoch scratch",
    "s/epoch pretrained",
)


def pretrained_vs_scratch_rows(runs: Sequence[RunInfo]) -> list[list[str]]:
    """One row per model trained both from scratch and from pretrained weights (first of each)."""
    by_model: dict[str, dict[str, RunInfo]] = {}
    for run in runs:
        model = str(run.metrics.get("model") or run.cfg("model.name"))
        kind = "scratch" if encoder_init(run) == "scratch" else "pretrained"
        by_model.setdefault(model, {}).setdefault(kind, run)
    rows = []
    for model, pair in by_model.items():
        if len(pair) < 2:
            continue
        scratch, pre = pair["scratch"], pair["pretrained"]
        row = [f"`{model}`"]
        for split in ("val", "test"):
            a, b = scratch.score(split, "miou"), pre.score(split, "miou")
            row += [fmt(a), fmt(b), signed(b - a)]
        row += [fmt(r.metrics.get("time_per_epoch_s"), 1) for r in (scratch, pre)]
        rows.append(row)
    return rows


def setup_sentence(run: RunInfo) -> str:
    """The training recipe of a run, in one sentence (from its saved config)."""
    weights = run.cfg("model.encoder_weights")
    augment = "+".join(run.cfg("data.augment") or []) or "none"
    return (
        f"Setup: input {run.cfg('data.size')}, {fmt(run.cfg('train.epochs'), 0)} epochs in "
        f"batches of {fmt(run.cfg('data.batch_size'), 0)}, {run.cfg('train.optimizer') or 'adamw'} "
        f"at learning rate {fmt(run.cfg('train.learning_rate'), 4)} with a "
        f"{run.cfg('train.schedule') or 'cosine'} schedule, loss `{run.cfg('train.loss')}`, "
        f"augmentation {augment}, encoders "
        + (
            f"initialised from `{weights}`."
            if weights
            else "trained from scratch unless the *encoder init* column says otherwise."
        )
    )


def signed(value: float, digits: int = 3) -> str:
    """`+0.012`-style text, a dash for NaN."""
    return DASH if math.isnan(value) else f"{value:+.{digits}f}"


def section_models(note: Note, runs: list[RunInfo], budget: float | None = None) -> None:
    note.add("## 3. Models")
    if not runs:
        note.add("The models suite has not been run (`cityseg experiments run models`).")
        return
    winner = best(runs)
    note.add(
        "Same data, input size, epoch budget, loss and augmentation for every architecture; "
        f"only the model differs. {setup_sentence(runs[0])} "
        "Sorted as in the suite; the best validation mIoU is in bold.",
        table(
            MODEL_HEADER,
            [
                [f"**{c}**" if r is winner and i in _BOLD_COLUMNS else c for i, c in enumerate(row)]
                for r in runs
                for row in [_model_row(r)]
            ],
        ),
    )
    pairs = pretrained_vs_scratch_rows(runs)
    if pairs:
        note.add(
            "**Pretrained against scratch.** The same model and recipe, the encoder started "
            "from ImageNet weights or from random ones (gain = pretrained minus scratch; "
            "pretrained runs keep the encoder frozen for `model.freeze_epochs` first epochs "
            "and its BatchNorm statistics frozen throughout).",
            table(PRETRAINED_HEADER, pairs),
        )
    if winner is not None:
        note.add(
            f"Best on validation: `{winner.name}` (val mIoU {winner.val_miou:.3f}). "
            + _speed_sentence(runs, winner)
        )
        note.add(_budget_sentence(runs, winner, budget))
    gains = {r.name: last_epoch_gain(r) for r in runs if not math.isnan(last_epoch_gain(r))}
    if gains:
        rising = {name: g for name, g in gains.items() if g > RISING}
        note.add(
            "*last-epoch gain*: validation mIoU of the last epoch minus the one before; the "
            "cosine schedule decays the learning rate to zero, so a small gain means the curve "
            f"has flattened (here from {min(gains.values()):+.3f} to {max(gains.values()):+.3f}). "
            + (
                f"{len(gains) - len(rising)} of {len(gains)} curves flattened (gain at most "
                f"{RISING}); still rising: "
                + ", ".join(f"`{n}` ({g:+.3f})" for n, g in rising.items())
                + ": this budget undersells them, and their rank may change with more epochs."
                if rising
                else f"Every curve flattened (gain at most {RISING})."
            )
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


def _budget_sentence(runs: list[RunInfo], winner: RunInfo, budget: float | None) -> str:
    if budget is None:
        return "The later suites tune this model."
    fitting = within_budget(runs, budget)
    chosen = best(fitting)
    if chosen is None:
        return (
            f"No model meets the real-time budget of {budget:g} ms/image at the training size, "
            "so the later suites fall back to their default model."
        )
    if chosen is winner:
        return (
            f"It also meets the real-time budget of {budget:g} ms/image "
            f"({num(chosen.metrics.get('inference_ms')):.1f} ms), so the loss and augmentation "
            "suites tune it."
        )
    others = ", ".join(f"`{r.name}`" for r in fitting if r is not chosen)
    return (
        f"It does not meet the real-time budget of the embedded camera ({budget:g} ms/image at "
        f"the training size, batch 1, on this CPU; it takes "
        f"{num(winner.metrics.get('inference_ms')):.1f} ms). Within the budget "
        + (f"({len(fitting)} models: `{chosen.name}`, {others}) " if others else "")
        + f"the best on validation is `{chosen.name}` (val mIoU {chosen.val_miou:.3f}, "
        f"{num(chosen.metrics.get('inference_ms')):.1f} ms/image, "
        f"{chosen.val_miou - winner.val_miou:+.3f} vs the best): the loss and augmentation "
        "suites tune it."
    )


def _speed_sentence(runs: list[RunInfo], winner: RunInfo) -> str:
    timed = [r for r in runs if not math.isnan(num(r.metrics.get("inference_ms")))]
    if not timed:
        return ""
    fastest = min(timed, key=lambda r: num(r.metrics.get("inference_ms")))
    if fastest is winner:
        return "It is also the fastest at inference."
    return (
        f"The fastest at inference is `{fastest.name}` "
        f"({num(fastest.metrics.get('inference_ms')):.1f} ms/image vs "
        f"{num(winner.metrics.get('inference_ms')):.1f}) at val mIoU {fastest.val_miou:.3f} "
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


def section_losses(note: Note, runs: list[RunInfo], record: dict[str, Any]) -> None:
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
        val = run.val_miou if run else num(t.get("value"))
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


def section_augmentation(
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
    gaps = [g for g in (best_epoch_gap(r) for r in base) if g is not None]
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
    everything = [r for r in runs if r.arm == "all"]
    all_gaps = [g for g in (best_epoch_gap(r) for r in everything) if g is not None]
    if gaps and all_gaps:
        train_none = statistics.fmean(g[0] for g in gaps)
        train_all = statistics.fmean(g[0] for g in all_gaps)
        if train_all < train_none - 0.01:
            parts.append(
                "With every technique on, train mIoU at the best epoch (on the augmented "
                f"batches) falls to {train_all:.3f} (vs {train_none:.3f}): within a fixed epoch "
                "budget augmentation makes fitting harder (the same steps on harder samples) "
                "instead of curbing an overfitting that is not there."
            )
    if synthetic:
        parts.append(
            "The train and validation cities come from the same procedural generator, so "
            "validation looks like training; on real Cityscapes the conclusion may differ."
        )
    return " ".join(parts)


def section_retained(
    note: Note,
    retained: RunInfo | None,
    budget: float | None = None,
    baseline: RunInfo | None = None,
) -> None:
    note.add("## 6. The retained model")
    if retained is None:
        note.add("No finished run.")
        return
    fits = budget is not None and num(retained.metrics.get("inference_ms")) <= budget
    note.add(
        "The run with the best **validation** mIoU across all suites"
        + (f" among those within the {budget:g} ms/image real-time budget" if fits else "")
        + f": `{retained.suite}/"
        f"{retained.name}` (`{retained.cfg('model.name')}`, loss `{retained.cfg('train.loss')}`, "
        f"learning rate {fmt(retained.cfg('train.learning_rate'), 5)}, augmentation "
        f"{'+'.join(retained.cfg('data.augment') or []) or 'none'}, input "
        f"{retained.cfg('data.size')}). Chosen on validation only: no test score took part in any choice.",
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
    if baseline is not None and baseline is not retained:
        delta = retained.score("test", "miou") - baseline.score("test", "miou")
        note.add(
            f"Against the `{baseline.cfg('model.name')}` baseline of the models suite: test mIoU "
            f"{fmt(retained.score('test', 'miou'))} vs {fmt(baseline.score('test', 'miou'))} "
            f"({delta:+.3f}), "
            + ("better" if delta > 0 else "**not better**")
            + f"; latency {fmt(retained.metrics.get('inference_ms'), 1)} vs "
            f"{fmt(baseline.metrics.get('inference_ms'), 1)} ms/image, "
            f"{millions(retained.metrics.get('params'))} M vs "
            f"{millions(baseline.metrics.get('params'))} M parameters."
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
