"""The note's sim-to-real section, from the `sim2real.json` records of `cityseg experiments sim2real`.

Self-contained: it reads only `runs/sim2real/*/sim2real.json` (and their figures), the scores
with test-time augmentation in `runs/sim2real/*/real_tta/` and the synth benchmark, so that it
can sit beside the other sections without sharing their state.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cityseg.data.synth_stats import CITYSCAPES_SHARES
from cityseg.experiments.sim2real import DEFAULT_RUNS_DIR, REAL_SPLIT, RECORD, read_records
from cityseg.report.note import Note

# One seed per run: a change below this is not read as an effect of the technique.
NOISE = 0.01
# beside the runs folder: `cityseg evaluate --run A --run B ... --split test --out <this>/NAME`
ENSEMBLES = "sim2real_ensembles"
TARGET = 0.55  # category IoU on the real test drive from synthetic frames only (issue #14)
OFFICIAL = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
COMMAND = (
    "cityseg experiments sim2real --config configs/sim2real/lraspp_mobilenetv3_192x160.yaml "
    "--real data/camvid_imp --set data.root=data/synth_v2 --set name=NAME "
    "[--set data.augment=[...]] [--set data.style_images=data/camvid/leftImg8bit/train]"
)


def _f(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.3f}"


def uses_real_photos(record: dict[str, Any]) -> bool:
    """Whether the run saw unlabelled real photos (style techniques or pseudo-labels): apart."""
    return bool(record.get("style_images") or record.get("pseudo_labels"))


def _pseudo_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per self-trained run: which model labelled which frames, and what was kept."""
    lines = []
    for record in records:
        pseudo = record.get("pseudo_labels")
        if not pseudo:
            continue
        command = pseudo.get("command") or (
            f"cityseg pseudo-label --keep {pseudo.get('keep')} --cap {pseudo.get('cap')}"
        )
        lines.append(
            f"`{record['name']}`: {pseudo.get('frames')} frames of "
            f"{', '.join(pseudo.get('cities') or [])} labelled by `{pseudo.get('model')}` "
            f"(`{command}`: keep {pseudo.get('keep')} of each predicted category's pixels, "
            f"the most confident, and all above {pseudo.get('cap')}; "
            f"{pseudo.get('coverage')} % of their pixels labelled), trained beside the "
            "synthetic frames."
        )
    return lines


def _augmentation(record: dict[str, Any]) -> str:
    """The techniques, then `paste(human,object)` when categories were copy-pasted."""
    names = "+".join(record.get("augment") or []) or "none"
    paste = record.get("paste") or []
    return names + (f"+paste({','.join(paste)})" if paste else "")


def _row(record: dict[str, Any], base: dict[str, Any] | None) -> str:
    real = record["real"]
    per = real.get("per_category_iou_official") or {}
    delta = ""
    if base is not None and base is not record:
        delta = f" ({real['category_iou'] - base['real']['category_iou']:+.3f})"
    synth = record.get("synth") or {}
    val, test = record.get("synth_val") or {}, record.get("synth_test") or {}
    epochs = f"{record.get('epochs_run')}{' (stopped)' if record.get('partial') else ''}"
    return (
        f"| `{record['name']}` | {record.get('model', '-')} {record.get('input_size', '')} | "
        f"`{synth.get('root', '-')}` | {epochs} | "
        f"{_augmentation(record)} | "
        f"{record.get('encoder_weights') or 'scratch'} | "
        f"**{_f(real['category_iou'])}**{delta} | "
        + " | ".join(_f(per.get(c)) for c in OFFICIAL)
        + f" | {_f(val.get('category_iou'))} | {_f(test.get('category_iou'))} |"
    )


def _table(records: list[dict[str, Any]], base: dict[str, Any] | None) -> str:
    head = (
        "| run | model | synthetic cities | epochs | augmentation | encoder | real cat. IoU (vs baseline) | "
        + " | ".join(OFFICIAL)
        + " | synth val | synth test |"
    )
    rule = "|" + "---|" * (9 + len(OFFICIAL))
    commands = [f"- `{r['name']}`: `{r['command']}`" for r in records if r.get("command")]
    table = "\n".join([head, rule, *(_row(r, base) for r in records)])
    return table + ("\n\nCommands:\n\n" + "\n".join(commands) if commands else "")


def _config_without_augment(run_dir: Path) -> dict[str, Any] | None:
    """The run's saved config, with the defaults of fields added since it was saved, minus
    its name and augmentation list (what an ablation varies)."""
    from cityseg.training.config import load

    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    config = load(path).to_dict()
    config.pop("name", None)
    (config.get("data") or {}).pop("augment", None)
    return config


def ablation(records: list[dict[str, Any]], runs_dir: Path) -> list[str]:
    """One line per technique for each pair of runs whose saved configs differ only in that
    technique being in the augmentation list: its effect on the real-photo score."""
    configs = {r["name"]: _config_without_augment(runs_dir / r["name"]) for r in records}
    lines = []
    for full in records:
        for reduced in records:
            with_t, without_t = set(full.get("augment") or []), set(reduced.get("augment") or [])
            dropped = with_t - without_t
            if (
                len(dropped) != 1
                or not without_t < with_t
                or configs[full["name"]] is None
                or configs[full["name"]] != configs[reduced["name"]]
            ):
                continue
            (technique,) = dropped
            a, b = full["real"]["category_iou"], reduced["real"]["category_iou"]
            per_a = full["real"].get("per_category_iou_official") or {}
            per_b = reduced["real"].get("per_category_iou_official") or {}
            moves = sorted(
                ((per_a[c] - per_b[c], c) for c in OFFICIAL if c in per_a and c in per_b),
                key=lambda d: -abs(d[0]),
            )[:2]
            if abs(a - b) < NOISE:
                verdict = "has no measurable effect"
            else:
                verdict = "helps transfer" if a > b else "hurts transfer"
            lines.append(
                f"- `{technique}` {verdict}: {a:.3f} with it (`{full['name']}`), {b:.3f} without "
                f"(`{reduced['name']}`), {a - b:+.3f}; most moved: "
                + ", ".join(f"{c} {d:+.3f}" for d, c in moves)
            )
    return lines


def _shares(records: list[dict[str, Any]]) -> str:
    seen: dict[str, dict[str, float]] = {}
    for r in records:
        synth = r.get("synth") or {}
        if synth.get("root") and synth.get("category_shares"):
            seen.setdefault(synth["root"], synth["category_shares"])
    real = next(
        (r["real"].get("train_shares") for r in records if r["real"].get("train_shares")), None
    )
    cols = [*seen, *(["real train drives"] if real else []), "Cityscapes"]
    lines = [
        "| category | " + " | ".join(f"`{c}`" if c in seen else c for c in cols) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for cat, ref in CITYSCAPES_SHARES.items():
        vals = [f"{seen[c].get(cat, 0.0):.1f}" for c in seen]
        if real:
            vals.append(f"{real.get(cat, 0.0):.1f}")
        lines.append(f"| {cat} | " + " | ".join([*vals, f"{ref:.1f}"]) + " |")
    return "\n".join(lines)


def _confusions(run_dir: Path, top: int = 3) -> str:
    """The `top` largest real-category -> predicted-category errors, as shares of the real row."""
    from cityseg.data.labels import CATEGORIES

    path = run_dir / f"eval_{REAL_SPLIT}.json"
    if not path.is_file():
        return ""
    cm = json.loads(path.read_text()).get("confusion_matrix") or []
    cells = []
    for t, row in enumerate(cm):
        total = sum(row)
        if t == 0 or total == 0:  # void truth is never scored
            continue
        cells += [(row[p], t, p, row[p] / total) for p in range(len(row)) if p != t]
    cells.sort(reverse=True)
    return "; ".join(
        f"{CATEGORIES[t]} taken for {CATEGORIES[p]} ({share:.0%} of real {CATEGORIES[t]} pixels)"
        for _, t, p, share in cells[:top]
    )


def _tta_line(records: list[dict[str, Any]], runs_dir: Path) -> str:
    """The runs scored with test-time augmentation on the real drive, beside their plain score.

    Read from `<run>/real_tta/eval_test_tta_<mode>.json`, which `cityseg evaluate --run RUN
    --data REAL --split test --tta MODE --out RUN/real_tta` writes; an inference choice, so it
    is reported apart from the table (which holds each model's own score).
    """
    from cityseg.evaluation.evaluate import saved_category_iou

    items = []
    for record in records:
        folder = runs_dir / record["name"] / "real_tta"
        scores = [
            f"{mode} {_f(score)}"
            for mode in ("hflip", "hflip_scales")
            if (score := saved_category_iou(folder, "test", mode)) is not None
        ]
        if scores:
            plain = _f(record["real"]["category_iou"])
            items.append(f"`{record['name']}` {plain} -> " + ", ".join(scores))
    if not items:
        return ""
    return (
        "With test-time augmentation on the real drive (`cityseg evaluate --run RUN --data "
        "REAL_ROOT --split test --tta hflip_scales --out RUN/real_tta`: the mean softmax of each "
        "frame, its mirror and both zoomed 1.5x, in tiles): " + "; ".join(items) + "."
    )


def _member_record(member: str, runs_dir: Path) -> dict[str, Any] | None:
    """The `sim2real.json` of an ensemble member: at the path it was given, else by name in
    `runs_dir`; None for a run that `cityseg experiments sim2real` did not make."""
    for folder in (Path(member), runs_dir / Path(member).name):
        path = folder / RECORD
        if path.is_file():
            try:
                record: dict[str, Any] = json.loads(path.read_text())
            except json.JSONDecodeError as err:  # as read_records says it
                raise ValueError(f"{path}: not valid JSON ({err})") from err
            return record
    return None


def ensembles(folder: Path, runs_dir: Path) -> list[dict[str, Any]]:
    """The ensembles of sim-to-real runs scored on the real test drive, one per sub-folder of
    `folder` holding `eval_test.json` (and `eval_test_tta_hflip_scales.json` where flip and
    zoom were scored) with its members. An ensemble is purely synthetic only if every member
    is a sim-to-real run that saw no real photo: one unknown member makes it not so."""
    from cityseg.report.real import read_ensembles

    found = []
    for name, members, scores in read_ensembles(folder):
        if not scores["test"]:
            continue
        records = [_member_record(m, runs_dir) for m in members]
        if any(r is None for r in records):  # a run of real labels, or one not found
            trained_on = "not only sim-to-real runs"
        elif any(uses_real_photos(r) for r in records if r is not None):
            trained_on = "with unlabelled real photos"
        else:
            trained_on = "synthetic frames only"
        found.append(
            {
                "name": name,
                "members": [Path(m).name for m in members],
                "trained_on": trained_on,
                "real": scores["test"],
                "real_tta": scores["test_tta"],
            }
        )
    return found


def _ensemble_lines(found: list[dict[str, Any]]) -> list[str]:
    head = (
        "| ensemble | members | trained on | real cat. IoU | with flip + zoom | "
        + " | ".join(OFFICIAL)
        + " |"
    )
    rows = [head, "|" + "---|" * (5 + len(OFFICIAL))]
    for e in found:
        per = e["real"].get("per_category_iou_official") or {}
        rows.append(
            f"| `{e['name']}` | {', '.join(f'`{m}`' for m in e['members'])} | "
            f"{e['trained_on']} | "
            f"**{_f(e['real'].get('category_iou'))}** | {_f(e['real_tta'].get('category_iou'))} | "
            + " | ".join(_f(per.get(c)) for c in OFFICIAL)
            + " |"
        )
    lines = [
        "### Ensembles on the real drive",
        "Each row is `cityseg evaluate --run A --run B ... --data REAL_ROOT --split test --out "
        "FOLDER` (and again with `--tta hflip_scales` for the flip + zoom column): the mean "
        "softmax of the members on each letterboxed photo. The members are fixed beforehand, "
        "not chosen on real labels; an ensemble counts as synthetic only if every member is.",
        "\n".join(rows),
    ]
    synthetic = [e for e in found if e["trained_on"] == "synthetic frames only"]
    if synthetic:
        best = max(synthetic, key=lambda e: float(e["real"].get("category_iou") or 0.0))
        iou = float(best["real"].get("category_iou") or 0.0)
        lines.append(
            f"The best purely synthetic ensemble, `{best['name']}` ({len(best['members'])} "
            f"models), reaches {iou:.3f} on the real drive: the {TARGET:.2f} target is "
            + (
                "**met** by an ensemble too."
                if iou >= TARGET
                else "**not met** by an ensemble either."
            )
        )
    return lines


def _bench_line(bench_dir: Path) -> str:
    path = bench_dir / "synth.json"
    if not path.is_file():
        return ""
    data = json.loads(path.read_text())
    rows = data.get("results") or []
    one = next((r for r in rows if r.get("workers") == 1), None)
    if one is None:
        return ""
    return (
        f"Rendering speed (`cityseg bench synth --size {data.get('size')} --frames "
        f"{data.get('frames')} --json bench/synth.json`): {one['frames_per_s']:.1f} frames/s "
        f"with one worker, {_f(one.get('frames_per_cpu_s'))} frames per CPU second (load average "
        f"{one.get('load_avg_1min_at_start')} at the start; the target is "
        f"{data.get('target_frames_per_s_per_core', 5.0):g} per core)."
    )


def _baseline_line(base: dict[str, Any]) -> str:
    why = (
        "the run named baseline"
        if "baseline" in base["name"]
        else "the first by name, as no run is named baseline"
    )
    return f"The *vs baseline* column compares each run with `{base['name']}` ({why})."


def _budget_line(records: list[dict[str, Any]]) -> str:
    """The training budgets of the runs, as spans: they differ from run to run."""

    def span(values: list[float], fmt: str) -> str:
        low, high = min(values), max(values)
        return format(low, fmt) if low == high else f"{low:{fmt}} to {high:{fmt}}"

    epochs = [float(r["epochs_run"]) for r in records if r.get("epochs_run") is not None]
    frames = [float(f) for r in records if (f := (r.get("synth") or {}).get("train_frames"))]
    minutes = [float(r["train_time_s"]) / 60 for r in records if r.get("train_time_s")]
    sizes = sorted({str(r["input_size"]) for r in records if r.get("input_size")})
    parts = [
        f"{span(epochs, '.0f')} epochs" if epochs else "",
        f"at {', '.join(sizes)}" if sizes else "",
        f"on {span(frames, '.0f')} synthetic frames" if frames else "",
        f"({span(minutes, '.1f')} min of training each on a 2-core CPU)" if minutes else "",
    ]
    return (
        f"Budgets: {' '.join(p for p in parts if p)}, so these are early-training numbers: "
        "compare the rows, not the absolute level."
    )


def section_sim2real(
    note: Note,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    bench_dir: str | Path = "bench",
    ensembles_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Append the sim-to-real section (nothing if no run was recorded); return the records.

    Ensembles are read from `ensembles_dir`, by default `sim2real_ensembles` beside `runs_dir`.
    """
    records = read_records(runs_dir)
    if not records:
        return []
    synthetic = [r for r in records if not uses_real_photos(r)]
    styled = [r for r in records if uses_real_photos(r)]
    base = next((r for r in records if "baseline" in r["name"]), records[0])
    real = base["real"]
    best = max(records, key=lambda r: r["real"]["category_iou"])
    best_synth = max(synthetic, key=lambda r: r["real"]["category_iou"]) if synthetic else None
    note.add(
        "## Sim-to-real: synthetic cities on real streets",
        f"Each run trains on rendered cities only and is then scored once on the real "
        f"photographs of the test drive {', '.join(real['cities'])} ({real['num_images']} "
        f"frames, `{real['manifest']}`), at the photos' own resolution, with the official "
        f"category IoU (7 categories, void ignored). Command: `{COMMAND}`; it renders the "
        f"cities if the root has none, trains, scores and writes `sim2real.json` and the "
        f"figures `plots/*_{REAL_SPLIT}.png` into the run folder. {_baseline_line(base)} "
        f"{_budget_line(records)}",
    )
    if any(r.get("partial") for r in records):
        note.add(
            "Runs marked *(stopped)* ran out of the time budget on the shared CPU: they were "
            "stopped and scored from their best validation checkpoint so far "
            "(`--score-only`), after the number of epochs shown."
        )
    if synthetic:
        note.add("### Trained on synthetic frames only", _table(synthetic, base))
    if styled:
        note.add(
            "### With unlabelled real photos (style transfer, pseudo-labels; reported apart)",
            "These runs also saw *unlabelled* photos of other drives (never the test drive), "
            "through `fda` (Fourier amplitude swap) or `histmatch` (histogram matching), or as "
            "training frames pseudo-labelled by a synthetic-trained model (self-training): "
            "no real label was used, but they are not purely synthetic.",
            *_pseudo_lines(styled),
            _table(styled, base),
        )
    lines = ablation(synthetic, Path(runs_dir))
    if lines:
        note.add(
            "Augmentation ablation on real photographs (pairs of runs whose saved configs "
            f"differ only in one technique; one seed each, so a change under {NOISE:.2f} is "
            "read as no measurable effect):\n\n" + "\n".join(lines)
        )
    verdict = (
        f"The best purely synthetic run, `{best_synth['name']}`, reaches "
        f"{best_synth['real']['category_iou']:.3f} on the real drive against "
        f"{real['category_iou']:.3f} for the baseline"
        if best_synth
        else "No purely synthetic run was recorded"
    )
    reached = best["real"]["category_iou"] >= TARGET
    note.add(
        f"{verdict}; the best of all runs, `{best['name']}`, reaches "
        f"{best['real']['category_iou']:.3f}: the {TARGET:.2f} target is "
        f"{'**met**' if reached else '**not met**'}."
    )
    tta = _tta_line(records, Path(runs_dir))
    if tta:
        note.add(tta)
    folder = Path(runs_dir).parent / ENSEMBLES if ensembles_dir is None else Path(ensembles_dir)
    found = ensembles(folder, Path(runs_dir))
    if found:
        note.add(*_ensemble_lines(found))
    for record in dict.fromkeys([base["name"], best["name"]]):
        line = _confusions(Path(runs_dir) / record)
        if line:
            note.add(f"Largest confusions on the real drive, `{record}`: {line}.")
    harder = [
        r["name"]
        for r in records
        if (r.get("synth_test") or {}).get("category_iou") is not None
        and (r.get("synth_val") or {}).get("category_iou") is not None
        and r["synth_test"]["category_iou"] < r["synth_val"]["category_iou"]
    ]
    note.add(
        f"Held-out synthetic cities (the last two columns) score below the validation cities "
        f"in {len(harder)} of {len(records)} runs"
        + (f" ({', '.join(f'`{h}`' for h in harder)})." if harder else ".")
    )
    note.add(
        "Category shares of the synthetic training cities, in per cent of pixels "
        "(`cityseg.data.synth_stats.category_shares`), beside Cityscapes' (a pseudo-labelled "
        "root holds the synthetic frames of the root it was made beside: not repeated):",
        _shares([r for r in records if not r.get("pseudo_labels")]),
    )
    bench = _bench_line(Path(bench_dir))
    if bench:
        note.add(bench)
    figure = Path(runs_dir) / best["name"] / "plots" / f"examples_{REAL_SPLIT}.png"
    note.copy_figure(
        figure,
        "sim2real_examples.png",
        f"Real test-drive photos scored by `{best['name']}` (photo | prediction | truth): "
        "first frames, then the worst",
    )
    return records


def write_sim2real(
    out: str | Path = "docs/sim2real.md",
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    bench_dir: str | Path = "bench",
    ensembles_dir: str | Path | None = None,
) -> Path:
    """Write the sim-to-real section alone as a Markdown file (figures beside it); return it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    note = Note(out)
    if not section_sim2real(note, runs_dir, bench_dir, ensembles_dir):
        raise FileNotFoundError(
            f"no {Path(runs_dir) / '*' / 'sim2real.json'}: run a sim2real first"
        )
    out.write_text(note.text())
    return out
