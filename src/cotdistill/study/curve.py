"""The rationale-quality curve: for a study whose teacher modes set the gold rationales'
quality (filter.gold_noise, filter.gold_coverage; filter/rationale_quality.py), accuracy
against the share of train questions whose rationale is right, the answer-only baseline
as a band, and the break-even points.

Both axes meet at the share of right rationales: at noise f (full coverage) it is 1 - f
and the other questions have a rationale that is wrong in a step; at coverage c (no noise)
it is c and the other questions train on the answer alone. One plot holds both lines, so
a user who can only get some rationales right sees whether keeping the wrong ones (the
answer filter alone) or replacing them by the answer (a step checker with
`filter.missing_cot: answer`) is worth more.

Break-even: along each axis from the all-right end, the last point at which the student
still beats the baseline by the page's verdict (pooled exact McNemar below the grid's
alpha and the same sign in every seed), and the first at which it does not.

The teacher on the curve: a lever cell measured on the students' train questions
(`lever_split: train`) gives the share of questions for which the teacher writes a CoT
right in every step (its step-correct yield). A student of its kept CoTs with
`filter.missing_cot: answer` has a right rationale for that share of its questions, so
the yield, with its interval, is the teacher's place on the x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cotdistill.report.stats import rate_text, wilson_interval
from cotdistill.train.variants import BASELINE, GOLD

from .analysis import SPLIT_NAMES, SPLITS, StudentRun, pooled_counts
from .grid import Grid

NOISE, COVERAGE = "filter.gold_noise", "filter.gold_coverage"


@dataclass(frozen=True)
class Point:
    mode: str
    noise: float
    coverage: float

    @property
    def right(self) -> float:
        """The share of train questions whose rationale is right in every step."""
        return self.coverage * (1 - self.noise)

    @property
    def label(self) -> str:
        return f"{GOLD}[{self.mode}]"

    def on(self, axis: str) -> bool:
        return self.coverage == 1.0 if axis == "noise" else self.noise == 0.0


def points(grid: Grid) -> list[Point]:
    """The grid's modes that set the gold rationales' quality, as curve points."""
    return [
        Point(mode, float(p.get(NOISE, 0.0)), float(p.get(COVERAGE, 1.0)))
        for mode, p in grid.teachers.items()
        if NOISE in p or COVERAGE in p
    ]


def pooled(runs: list[StudentRun], label: str, split: str) -> Optional[tuple[int, int]]:
    """(right, questions) of one student on one split, all seeds together."""
    return pooled_counts([r for r in runs if r.label == label], split)


def rate(kn: Optional[tuple[int, int]]) -> str:
    """'12.5 [10.1, 15.3]': a rate in % with its 95% Wilson interval ('' without counts)."""
    return rate_text(*kn) if kn and kn[1] else ""


def break_even(pts: list[Point], verdicts: dict[str, str], axis: str) -> tuple[Optional[Point], Optional[Point]]:
    """Along `axis` from the all-right end: (the last point that beats the baseline, the
    first that does not); None where there is none (or every measured point beats it)."""
    line = sorted((p for p in pts if p.on(axis) and p.label in verdicts), key=lambda p: -p.right)
    last = None
    for p in line:
        if verdicts[p.label] != "beats":
            return last, p
        last = p
    return last, None


def _axis_sentence(axis: str, task: str, split: str, pts, verdicts) -> str:
    last, first_not = break_even(pts, verdicts, axis)
    knob = (lambda p: f"f = {p.noise:g}") if axis == "noise" else (lambda p: f"c = {p.coverage:g}")
    measured = [p for p in pts if p.on(axis) and p.label in verdicts]
    if not measured:
        return ""
    if last is None:
        head = f"beats answer-only at no measured {axis} point"
        head += f" (not even at {knob(first_not)})" if first_not else ""
    elif first_not is None:
        head = f"beats answer-only at every measured {axis} point, down to {knob(last)}"
    else:
        head = f"beats answer-only up to {knob(last)}, not at {knob(first_not)}"
    return f"- **{task}, {SPLIT_NAMES[split]}**, {axis}: {head}."


def teacher_yield(row: dict) -> Optional[tuple[int, int]]:
    """(questions with a CoT right in every step, questions asked) of one lever row."""
    n, y = row.get("questions"), row.get("step_yield")
    return (round(y * n), n) if n and y is not None else None


def teacher_sentences(grid: Grid, task: str, levers: list[dict], beating: dict[str, list[Point]]) -> list[str]:
    """Where each teacher lever of `task` measured on the train split sits on the curve:
    its step-correct yield against the points that beat answer-only, split by split."""
    if grid.lever_split != "train":
        return []
    out = []
    for row in (r for r in levers if r["task"] == task):
        kn = teacher_yield(row)
        if not kn:
            continue
        lo, hi = wilson_interval(*kn)
        settings = ", ".join(f"{k}={v}" for k, v in grid.levers.get(row["mode"], {}).items()) or "the grid's params"
        where = []
        for split, pts in beating.items():
            if pts:
                least = min(pts, key=lambda p: p.right)
                side = "left of" if hi < least.right else "right of" if lo > least.right else "not separable from"
                where.append(
                    f"{side} every point that beats answer-only on {SPLIT_NAMES[split]} "
                    f"(the fewest right rationales: {least.label}, {least.right:.3g})"
                )
        none = [SPLIT_NAMES[s] for s, pts in beating.items() if not pts]
        if none:
            names = ", ".join(none[:-1]) + " and " + none[-1] if len(none) > 1 else none[0]
            where.append(f"on {names} no point beats answer-only")
        out.append(
            f"- **{task}, the teacher** (lever `{row['mode']}`: {settings}; {kn[1]} train questions of seed "
            f"{grid.seeds[0]}): a CoT right in every step for {kn[0]} of them, {rate(kn)} %, so a student of its "
            f"kept CoTs with the answer for the rest has right rationales for that share: " + "; ".join(where) + "."
        )
    return out


def curve_section(
    grid: Grid, runs: list[StudentRun], tests: list[dict], verdict, out_dir: str, levers: list[dict] = ()
) -> list[str]:
    """The page's Markdown section on the curve (empty for a grid without quality modes),
    with the teacher's place on it where a lever measured it on the train split."""
    pts = points(grid)
    if not pts:
        return []
    lines = [
        "## The rationale-quality curve",
        "",
        "The gold student trained on rationales of a set quality: at noise f a share f of them is wrong "
        "in a step (a wrong intermediate value that later steps build on, or a skipped step; the right "
        "answer at the end), at coverage c only a share c of the questions has one and the rest train on "
        '"The answer is X.". Right rationales: the share of train questions whose rationale is right in '
        "every step, c x (1 - f). Accuracy pooled over seeds with a 95% Wilson interval (it treats every "
        "question as independent; the spread over seeds is in the test-accuracy table).",
        "",
    ]
    for task in grid.tasks:
        task_runs = [r for r in runs if r.task == task]
        splits = [s for s in SPLITS if pooled(task_runs, BASELINE, s)]
        if not splits:
            continue
        lines += [
            f"### {task}",
            "",
            "| student | noise f | coverage c | right rationales | "
            + " | ".join(SPLIT_NAMES[s] for s in splits)
            + " |",
            "|---|---|---|---|" + "---|" * len(splits),
            f"| {BASELINE} | | | 0 | " + " | ".join(rate(pooled(task_runs, BASELINE, s)) for s in splits) + " |",
        ]
        for p in sorted(pts, key=lambda p: (-p.coverage, p.noise)):
            lines.append(
                f"| {p.label} | {p.noise:g} | {p.coverage:g} | {p.right:.3g} | "
                + " | ".join(rate(pooled(task_runs, p.label, s)) for s in splits)
                + " |"
            )
        lines += [
            "",
            f"Against `{BASELINE}` (verdicts at the grid's level {grid.alpha}; the numbers behind each are "
            "in the paired tests below): the difference in points, pooled.",
            "",
            "| student | " + " | ".join(SPLIT_NAMES[s] for s in splits) + " |",
            "|---|" + "---|" * len(splits),
        ]
        by = {(t["student"], t["split"]): t for t in tests if t["task"] == task}
        names = {"mixed": "differs", "ties": "within noise"}
        for p in sorted(pts, key=lambda p: (-p.coverage, p.noise)):
            cells = []
            for s in splits:
                t = by.get((p.label, s))
                v = verdict(t, grid.alpha) if t else None
                cells.append(f"{names.get(v, v)} ({100 * t['diff']:+.1f})" if t else "")
            lines.append(f"| {p.label} | " + " | ".join(cells) + " |")
        partial = sorted({lab for (lab, _), t in by.items() if len(t["seeds"]) < len(grid.seeds)})
        lines += [
            "",
            "Break-even points (from the points measured in every seed"
            + (f"; not yet in every seed: {', '.join(partial)}" if partial else "")
            + "):",
            "",
        ]
        beating = {}
        for s in splits:
            verdicts = {
                lab: verdict(t, grid.alpha)
                for (lab, sp), t in by.items()
                if sp == s and len(t["seeds"]) == len(grid.seeds)
            }
            beating[s] = [p for p in pts if verdicts.get(p.label) == "beats"]
            for axis in ("noise", "coverage"):
                sentence = _axis_sentence(axis, task, s, pts, verdicts)
                if sentence:
                    lines.append(sentence)
        teacher = teacher_sentences(grid, task, list(levers), beating)
        if teacher:
            lines += ["", "Where the teacher sits:", "", *teacher]
        lines += ["", f"![{task}: rationale quality](quality_{task}.png)", ""]
    return lines


def plot_curve(grid: Grid, runs: list[StudentRun], task: str, path: Path, levers: list[dict] = ()) -> bool:
    """Accuracy against the share of right rationales, a panel per split: the noise line,
    the coverage line, the baseline's interval as a band, and the teacher's step-correct
    yield (with its interval) where a lever measured it on the train split. False when
    there is nothing to plot."""
    pts = points(grid)
    task_runs = [r for r in runs if r.task == task]
    splits = [s for s in SPLITS if pooled(task_runs, BASELINE, s)]
    if not pts or not splits:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cotdistill.core.io import atomic_path

    cols = min(2, len(splits))
    rows = math.ceil(len(splits) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, s in zip(axes.flat, splits):
        k, n = pooled(task_runs, BASELINE, s)
        lo, hi = wilson_interval(k, n)
        ax.axhspan(100 * lo, 100 * hi, color="grey", alpha=0.3, label=f"{BASELINE} (95% interval)")
        for axis, style in (("noise", "o-"), ("coverage", "s--")):
            line = sorted((p for p in pts if p.on(axis) and pooled(task_runs, p.label, s)), key=lambda p: p.right)
            if len(line) < 2 and axis == "coverage" and all(p.coverage == 1.0 for p in line):
                continue
            xs, ys, err = [], [], [[], []]
            for p in line:
                k, n = pooled(task_runs, p.label, s)
                lo, hi = wilson_interval(k, n)
                xs.append(p.right)
                ys.append(100 * k / n)
                err[0].append(100 * (k / n - lo))
                err[1].append(100 * (hi - k / n))
            what = "the rest wrong in a step (noise)" if axis == "noise" else "the rest answer-only (coverage)"
            ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=2, label=what)
        for row in (r for r in levers if r["task"] == task) if grid.lever_split == "train" else ():
            kn = teacher_yield(row)
            if kn:
                lo, hi = wilson_interval(*kn)
                ax.axvspan(
                    lo, hi, color="tab:red", alpha=0.25, label=f"the teacher ({row['mode']}): step-correct yield, 95%"
                )
                ax.axvline(kn[0] / kn[1], color="tab:red", lw=1)
        ax.set_title(f"{task}, {SPLIT_NAMES[s]}")
        ax.set_xlabel("share of train questions with a right rationale")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xlim(-0.03, 1.03)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(splits) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True
