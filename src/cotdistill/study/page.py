"""The study's page: metrics/study/README.md and its PNG plots, from collected results.

Every declared cell appears: a cell that did not finish is listed as missing, and a
comparison that goes against the paper is shown like any other.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..io import atomic_path, write_text
from .analysis import SPLIT_NAMES, SPLITS, Summary, comparisons, select_runs, summarise
from .collect import Results
from .grid import Grid


def _pct(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _order(label: str, grid: Grid) -> tuple:
    modes = list(grid.teachers)
    if label.startswith("cot["):
        return (2, modes.index(label[4:-1]) if label[4:-1] in modes else 99)
    return (0 if label == "answer" else 1, 0)


def accuracy_table(summaries: list[Summary], grid: Grid) -> list[str]:
    splits = [s for s in SPLITS if any(s in x.mean for x in summaries)]
    lines = ["| task | student | seeds | train examples | " + " | ".join(SPLIT_NAMES[s] for s in splits) + " |",
             "|---|---|---|---|" + "---|" * len(splits)]
    for x in sorted(summaries, key=lambda x: (x.task, _order(x.label, grid))):
        ex = f"{min(x.train_examples)}-{max(x.train_examples)}" if x.train_examples else ""
        if x.train_examples and min(x.train_examples) == max(x.train_examples):
            ex = str(x.train_examples[0])
        cells = [f"{_pct(x.mean[s])} ± {_pct(x.sd.get(s))}" if s in x.mean else "" for s in splits]
        lines.append(f"| {x.task} | {x.label} | {len(x.seeds)} | {ex} | " + " | ".join(cells) + " |")
    return lines


def tests_table(tests: list[dict], grid: Grid) -> list[str]:
    lines = ["| task | student | vs | split | seeds | questions | only student right | only baseline right "
             "| difference (points) | p (exact McNemar, pooled) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in sorted(tests, key=lambda t: (t["task"], _order(t["student"], grid), SPLITS.index(t["split"]))):
        lines.append(f"| {t['task']} | {t['student']} | {t['baseline']} | {SPLIT_NAMES[t['split']]} | "
                     f"{len(t['seeds'])} | {t['n']} | {t['only_a']} | {t['only_b']} | "
                     f"{100 * t['diff']:+.1f} | {_p(t['p_value'])} |")
    return lines


def _labels(d: dict | None) -> str:
    if not d:
        return ""
    total = sum(d.values())
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in d.items()) if total else ""


def teacher_table(rows: list[dict], title_split: str) -> list[str]:
    lines = [f"| task | teacher mode | {title_split} questions | samples per question | answer right "
             "| kept | step-correct yield (questions) | step-correct precision (samples) | kept CoTs step-correct "
             "| labels: split | labels: kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['mode']} | {r['questions']} | {r['samples_per_question'] or ''} | "
                     f"{_pct(r['answer_correct'])} | {r['kept'] if r['kept'] is not None else ''} | "
                     f"{_pct(r['step_yield'])} | {_pct(r['step_precision'])} | {_pct(r['kept_step_correct'])} | "
                     f"{_labels(r['labels_split'])} | {_labels(r['labels_kept'])} |")
    return lines


def plot_accuracy(summaries: list[Summary], grid: Grid, task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted([x for x in summaries if x.task == task], key=lambda x: _order(x.label, grid))
    splits = [s for s in SPLITS if any(s in x.mean for x in rows)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(splits), 3.6))
    width = 0.8 / max(1, len(rows))
    for i, x in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(splits))]
        means = [100 * x.mean.get(s, math.nan) for s in splits]
        sds = [0 if math.isnan(x.sd.get(s, math.nan)) else 100 * x.sd[s] for s in splits]
        ax.bar(xs, means, width, yerr=sds, capsize=2, label=x.label)
        for j, s in enumerate(splits):
            pts = [100 * v for v in x.per_seed.get(s, [])]
            ax.scatter([xs[j]] * len(pts), pts, s=6, color="black", zorder=3)
    ax.set_xticks(range(len(splits)), [SPLIT_NAMES[s] for s in splits])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{task}: mean ± sd over seeds (dots: seeds)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


ALPHA = 0.01  # the pre-declared significance level of the pooled tests


def findings(tests: list[dict], grid: Grid) -> list[str]:
    """One sentence per (task, student): where it beats, loses to or ties the baseline."""
    out = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for t in tests:
        groups.setdefault((t["task"], t["student"]), []).append(t)
    for (task, student), ts in sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1], grid))):
        parts = {"beats": [], "loses to": [], "ties": []}
        for t in sorted(ts, key=lambda t: SPLITS.index(t["split"])):
            verdict = "ties" if t["p_value"] >= ALPHA else ("beats" if t["diff"] > 0 else "loses to")
            parts[verdict].append(f"{SPLIT_NAMES[t['split']]} ({100 * t['diff']:+.1f} points, p={_p(t['p_value'])})")
        said = [f"{v} `{ts[0]['baseline']}` on " + ", ".join(x) for v, x in parts.items() if x]
        out.append(f"- **{task}**, `{student}` " + "; ".join(said).replace("ties `", "is within noise of `") + ".")
    return out


def render(grid: Grid, res: Results, out_dir: str | Path, wall_s: float | None = None) -> Path:
    """Write out_dir/README.md and one accuracy PNG per task; returns the page's path."""
    out_dir = Path(out_dir)
    first = next(iter(grid.teachers))
    runs, stable = select_runs(res.runs, first)
    summaries = summarise(runs)
    tests = comparisons(runs)
    lines = [f"# Study: {grid.name}", "", "Made by `cotdistill study` from the committed grid "
             f"`{grid.path.as_posix()}`; every declared cell is reported.", ""]
    if grid.description:
        lines += [grid.description, ""]
    if tests:
        lines += [f"## What it shows (pooled exact McNemar, significance level {ALPHA})", ""]
        lines += findings(tests, grid) + [""]
    threads = ", ".join(str(t) for t in sorted(res.threads)) or "not recorded"
    commits = ", ".join(sorted(res.baselines)) or "none"
    lines += ["## Set-up", "",
              f"- seeds: {', '.join(map(str, grid.seeds))} (each seed draws its own data, initialisation and order)",
              f"- torch threads: {threads} (float results depend on the thread count; fixed for every cell)",
              f"- cells ran from commit(s): {commits}",
              f"- students: {', '.join(grid.variants)}; teacher modes: "
              + "; ".join(f"`{m}` " + ", ".join(f"{k}={v}" for k, v in p.items()) for m, p in grid.teachers.items()),
              "- shared params: " + ", ".join(f"{k}={v}" for k, v in grid.params.items()),
              *[f"- task `{t}`: " + ", ".join(f"{k}={v}" for k, v in p.items()) for t, p in grid.tasks.items()],
              ""]
    if res.missing:
        lines += [f"**Missing cells ({len(res.missing)})**: " + ", ".join(res.missing), ""]
    lines += ["## Test accuracy", "",
              "Mean ± sd over seeds, in %. `answer`: answer-only baseline; `gold`: the dataset's own "
              "rationales; `cot[mode]`: the teacher's kept CoTs under that teacher mode. All students of a "
              "task train for the same number of steps. +calc: decoded with the external calculator.", ""]
    lines += accuracy_table(summaries, grid) + [""]
    for task in grid.tasks:
        if any(x.task == task for x in summaries):
            png = out_dir / f"accuracy_{task}.png"
            plot_accuracy(summaries, grid, task, png)
            lines += [f"![{task}]({png.name})", ""]
    if stable:
        lines += ["Controlled comparison: the answer-only and gold students of every later teacher mode were "
                  + ("identical, example for example, to the first mode's (the tokenizer and their data do not "
                     "depend on the teacher)." if all(stable.values()) else
                     "NOT identical to the first mode's for: " + ", ".join(t for t, ok in stable.items() if not ok)),
                  ""]
    lines += ["## Paired tests against the answer-only baseline", "",
              "Each student against `answer` on the same test questions, the discordant pairs of all seeds "
              "pooled into one exact McNemar test (two-sided).", ""]
    lines += tests_table(tests, grid) + [""]
    lines += ["## The teacher", "", "On the train split of the student cells (what the cot students learn from). "
              "Yield: share of questions with at least one CoT right in every step (the dataset's step checker); "
              "precision: share of all samples right in every step.", ""]
    lines += teacher_table(sorted(res.teacher, key=lambda r: (r["task"], list(grid.teachers).index(r["mode"]),
                                                              r["questions"])), "train") + [""]
    if res.levers:
        lines += ["### Teacher levers, on validation questions (no student trained)", ""]
        lines += ["| lever | settings |", "|---|---|"]
        lines += [f"| {name} | " + ", ".join(f"{k}={v}" for k, v in p.items()) + " |" for name, p in grid.levers.items()]
        lines += [""] + teacher_table(res.levers, "validation") + [""]
    lines += ["## Wall time", "", "| cell | teacher (s) | training (s) | evaluation (s) |", "|---|---|---|---|"]
    for w in res.walls:
        lines.append(f"| {w['cell']} | {w['teacher_s'] if w['teacher_s'] is not None else ''} | "
                     f"{w['train_s']:.0f} | {w['evaluate_s']:.0f} |")
    if wall_s is not None:
        lines += ["", f"The study command ran for {wall_s / 60:.0f} minutes (cells already finished were not rerun)."]
    page = out_dir / "README.md"
    write_text(page, "\n".join(lines) + "\n")
    return page
