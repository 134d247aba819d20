"""The study's page: metrics/study/README.md and its PNG plots, from the records committed
beside it (committed.py), never from the experiments: a clone re-renders it byte for byte.

Every declared cell appears: a cell that did not finish is listed as missing, and a
comparison that goes against the paper is shown like any other. The page names the
commits and machine signatures its cells ran on, and each accuracy row says whether its
seeds mix them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cotdistill.core.io import atomic_path, write_text
from cotdistill.core.machine import describe, float_key
from cotdistill.report.stats import interval_text
from cotdistill.train.variants import BASELINE

from .analysis import (
    SPLIT_NAMES,
    SPLITS,
    StudentRun,
    Summary,
    comparisons,
    control_comparisons,
    select_runs,
    summarise,
)
from .committed import CELLS, OUTCOMES, Results
from .curve import curve_section, plot_curve, rate
from .grid import Grid

NOT_RECORDED = "not recorded"


def _pct(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _order(label: str, grid: Grid) -> tuple:
    """The baseline, the students made without the teacher, then those made from its CoTs
    (StudentRun.label: `variant[mode]`), each by teacher mode."""
    variant, _, mode = label.rstrip("]").partition("[")
    if mode:
        modes = list(grid.teachers)
        return (2, modes.index(mode) if mode in modes else 99, variant)
    return (0 if label == BASELINE else 1, 0, variant)


def accuracy_table(summaries: list[Summary], grid: Grid, ran_on: dict[tuple[str, str], str]) -> list[str]:
    splits = [s for s in SPLITS if any(s in x.mean for x in summaries)]
    lines = [
        "| task | student | seeds | train examples | "
        + " | ".join(SPLIT_NAMES[s] for s in splits)
        + " | ran on (commit; signature) |",
        "|---|---|---|---|" + "---|" * len(splits) + "---|",
    ]
    for x in sorted(summaries, key=lambda x: (x.task, _order(x.label, grid))):
        ex = f"{min(x.train_examples)}-{max(x.train_examples)}" if x.train_examples else ""
        if x.train_examples and min(x.train_examples) == max(x.train_examples):
            ex = str(x.train_examples[0])
        cells = [
            f"{_pct(x.mean[s])} ± {_pct(x.sd.get(s))}" + (f" [{interval_text(*x.pooled[s])}]" if s in x.pooled else "")
            if s in x.mean
            else ""
            for s in splits
        ]
        lines.append(
            f"| {x.task} | {x.label} | {len(x.seeds)} | {ex} | "
            + " | ".join(cells)
            + f" | {ran_on.get((x.task, x.label), '')} |"
        )
    return lines


def _count_rate(share: float | None, n: int | None) -> str:
    """A teacher's rate (a share of n, rounded to 4 places) in % with its 95% Wilson interval."""
    if share is None or not n:
        return _pct(share)
    return rate((round(share * n), n))


def _cells(n: int) -> str:
    return f"{n} cell" + ("s" if n != 1 else "")


def _key(sig: dict) -> str:
    return json.dumps(float_key(sig), sort_keys=True)


def signature_labels(res: Results) -> dict[str, str]:
    """Each group of signatures that make the same floats (machine.float_key) gets a label,
    S1, S2, ... in the order of the cells' names; returns float key -> label."""
    labels: dict[str, str] = {}
    for name in sorted(res.cells):
        for _, sig in sorted(res.cells[name]["machine"].items()):
            labels.setdefault(_key(sig), f"S{len(labels) + 1}")
    return labels


def cell_signatures(rec: dict, labels: dict[str, str]) -> set[str]:
    return {labels[_key(sig)] for sig in rec["machine"].values()} or {NOT_RECORDED}


def provenance_lines(res: Results, labels: dict[str, str]) -> list[str]:
    """The set-up's lines naming every commit and signature group, with their cell counts."""
    commits: dict[str, int] = {}
    for rec in res.cells.values():
        commits[rec["commit"][:10]] = commits.get(rec["commit"][:10], 0) + 1
    lines = [
        "- cells ran from commit(s): " + (", ".join(f"{c} ({_cells(n)})" for c, n in sorted(commits.items())) or "none")
    ]
    if not res.cells:
        return lines
    lines.append(
        "- machine signatures (what the floats depend on besides code, params and data; "
        "one label per group that makes the same floats):"
    )
    for key, label in sorted(labels.items(), key=lambda kv: int(kv[1][1:])):
        names = [n for n, rec in res.cells.items() if label in cell_signatures(rec, labels)]
        sigs = [s for n in names for s in res.cells[n]["machine"].values() if _key(s) == key]
        cpus = sorted({s.get("cpu") for s in sigs if s.get("cpu")})
        lines.append(
            f"  - {label} ({_cells(len(names))}): {describe(sigs[0])}"
            + (f"; processors: {', '.join(cpus)}" if "cpu" not in float_key(sigs[0]) and cpus else "")
        )
    old = [n for n, rec in res.cells.items() if not rec["machine"]]
    if old:
        lines.append(f"  - {NOT_RECORDED} ({_cells(len(old))}): made before the cells recorded their signatures")
    return lines


def ran_on(runs: list[StudentRun], res: Results, labels: dict[str, str]) -> dict[tuple[str, str], str]:
    """(task, student) -> the commit and signature of its cells, or what they mix."""
    cells: dict[tuple[str, str], set[str]] = {}
    for r in runs:
        cells.setdefault((r.task, r.label), set()).add(r.cell)
    out = {}
    for key, names in cells.items():
        commits = sorted({res.cells[n]["commit"][:10] for n in names})
        sigs = sorted(set().union(*(cell_signatures(res.cells[n], labels) for n in names)))
        out[key] = (
            (commits[0] if len(commits) == 1 else f"mixed: {len(commits)} commits")
            + "; "
            + (sigs[0] if len(sigs) == 1 else "mixed: " + ", ".join(sigs))
        )
    return out


def _seed_p(t: dict) -> str:
    return "" if t.get("seed_p_value") is None else _p(t["seed_p_value"])


def _seed_diffs(t: dict) -> str:
    return ", ".join(f"{100 * d:+.1f}" for d in t.get("seed_diffs", []))


def tests_table(tests: list[dict], grid: Grid) -> list[str]:
    lines = [
        "| task | student | vs | split | seeds | questions | only student right | only baseline right "
        "| difference (points) | p (exact McNemar, pooled) | difference per seed (points) | p (paired t, seeds) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in sorted(tests, key=lambda t: (t["task"], _order(t["student"], grid), SPLITS.index(t["split"]))):
        lines.append(
            f"| {t['task']} | {t['student']} | {t['baseline']} | {SPLIT_NAMES[t['split']]} | "
            f"{len(t['seeds'])} | {t['n']} | {t['only_a']} | {t['only_b']} | "
            f"{100 * t['diff']:+.1f} | {_p(t['p_value'])} | {_seed_diffs(t)} | {_seed_p(t)} |"
        )
    return lines


def _labels(d: dict | None) -> str:
    if not d:
        return ""
    total = sum(d.values())
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in d.items()) if total else ""


def teacher_table(rows: list[dict], title_split: str) -> list[str]:
    lines = [
        f"| task | teacher mode | seed | {title_split} questions | samples per question | answer right "
        "| kept | step-correct yield (questions) | step-correct precision (samples) | kept CoTs step-correct "
        "| labels: split | labels: kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gens = (
            round(r["questions"] * r["samples_per_question"]) if r["questions"] and r["samples_per_question"] else None
        )
        lines.append(
            f"| {r['task']} | {r['mode']} | {r['seed']} | {r['questions']} | {r['samples_per_question'] or ''} | "
            f"{_count_rate(r['answer_correct'], gens)} | {r['kept'] if r['kept'] is not None else ''} | "
            f"{_count_rate(r['step_yield'], r['questions'])} | {_count_rate(r['step_precision'], gens)} | "
            f"{_count_rate(r['kept_step_correct'], r['kept'])} | "
            f"{_labels(r['labels_split'])} | {_labels(r['labels_kept'])} |"
        )
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


def verdict(t: dict, alpha: float) -> str:
    """What the page says of one comparison: `beats` or `loses to` where the pooled McNemar
    is below `alpha` (the grid's one significance level) and every seed's difference has
    that sign; `ties` where the pooled test is not; `mixed` where it is but the seeds
    disagree in sign."""
    if t["p_value"] >= alpha:
        return "ties"
    sign = 1 if t["diff"] > 0 else -1
    if any(d * sign <= 0 for d in t.get("seed_diffs", [])):
        return "mixed"
    return "beats" if sign > 0 else "loses to"


def findings(tests: list[dict], grid: Grid) -> list[str]:
    """One sentence per (task, student): where it beats, loses to or ties the baseline."""
    out = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for t in tests:
        groups.setdefault((t["task"], t["student"]), []).append(t)
    for (task, student), ts in sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1], grid))):
        parts = {"beats": [], "loses to": [], "mixed": [], "ties": []}
        for t in sorted(ts, key=lambda t: SPLITS.index(t["split"])):
            across = f"; across seeds p={_seed_p(t)}" if t.get("seed_p_value") is not None else ""
            parts[verdict(t, grid.alpha)].append(
                f"{SPLIT_NAMES[t['split']]} ({100 * t['diff']:+.1f} points, pooled p={_p(t['p_value'])}{across})"
            )
        names = {"mixed": "differs from", "ties": "is within noise of"}
        said = [f"{names.get(v, v)} `{ts[0]['baseline']}` on " + ", ".join(x) for v, x in parts.items() if x]
        out.append(f"- **{task}**, `{student}` " + "; ".join(said) + ".")
    return out


def page_text(grid: Grid, res: Results, out_dir: str) -> str:
    """The page's Markdown: a function of the grid and the committed records alone."""
    first = next(iter(grid.teachers))
    runs, stable = select_runs(res.runs, first)
    summaries = summarise(runs)
    tests = comparisons(runs)
    controls = control_comparisons(runs, grid.matched_modes())
    labels = signature_labels(res)
    grid_file = grid.path.as_posix()
    lines = [
        f"# Study: {grid.name}",
        "",
        f"Made by `cotdistill study` from the committed grid `{grid_file}`; every declared cell is reported.",
        "",
    ]
    if grid.description:
        lines += [grid.description, ""]
    if tests:
        n = max(len(t["seeds"]) for t in tests)
        lines += [f"## What it shows (significance level {grid.alpha})", ""]
        lines += [
            "A student beats (or loses to) the baseline where the pooled exact McNemar test is below "
            f'{grid.alpha} and the difference has the same sign in every seed; "differs from" where the pooled '
            "test is below it but the seeds disagree in sign. The pooled test treats every question as "
            "independent; the paired t-test across seeds (also below) measures the difference against how "
            f"much it moves from seed to seed, and with {n} seed{'s' if n != 1 else ''} ({n - 1} degree"
            f"{'s' if n != 2 else ''} of freedom) it is the stricter "
            f"test: a claim it does not hold below {grid.alpha} rests on the pooled test alone.",
            "",
        ]
        lines += findings(tests, grid) + [""]
    if controls:
        lines += [
            "Against the size-matched control: each teacher-CoT student against its teacher mode's gold "
            "student, trained on the dataset's own rationales for exactly the questions whose teacher CoT "
            "was kept and on the answer sentence for the rest (the same questions and number of rationales, "
            "right ones); same test and level.",
            "",
        ]
        lines += findings(controls, grid) + [""]
    threads = ", ".join(str(t) for t in sorted({t for rec in res.cells.values() for t in rec.get("threads", [])}))
    lines += [
        "## Set-up",
        "",
        f"- seeds: {', '.join(map(str, grid.seeds))} (each seed draws its own data, initialisation and order)",
        f"- torch threads: {threads or NOT_RECORDED} (float results depend on the thread count; fixed for every cell)",
        *provenance_lines(res, labels),
        f"- students: {', '.join(grid.variants)}; teacher modes: "
        + "; ".join(f"`{m}` " + ", ".join(f"{k}={v}" for k, v in p.items()) for m, p in grid.teachers.items()),
        "- shared params: " + ", ".join(f"{k}={v}" for k, v in grid.params.items()),
        *[f"- task `{t}`: " + ", ".join(f"{k}={v}" for k, v in p.items()) for t, p in grid.tasks.items()],
        "",
    ]
    if res.missing:
        lines += [f"**Missing cells ({len(res.missing)})**: " + ", ".join(res.missing), ""]
    lines += [
        "## Test accuracy",
        "",
        "Mean ± sd over seeds, in %, and the 95% Wilson interval of every seed's questions pooled. "
        "`answer`: answer-only baseline; `gold`: the dataset's own "
        "rationales; `cot[mode]`: the teacher's kept CoTs under that teacher mode. All students of a "
        "task train for the same number of steps. +calc: decoded with the external calculator. Ran on: "
        "the commit and machine signature (Set-up) of the row's cells, `mixed` where its seeds ran on "
        "more than one.",
        "",
    ]
    lines += accuracy_table(summaries, grid, ran_on(runs, res, labels)) + [""]
    for task in grid.tasks:
        if any(x.task == task for x in summaries):
            lines += [f"![{task}](accuracy_{task}.png)", ""]
    if stable:
        lines += [
            "Controlled comparison: the answer-only and gold students of every later teacher mode were "
            + (
                "identical, example for example, to the first mode's (the tokenizer and their data do not "
                "depend on the teacher)."
                if all(stable.values())
                else "NOT identical to the first mode's for: " + ", ".join(t for t, ok in stable.items() if not ok)
            ),
            "",
        ]
    lines += curve_section(grid, runs, tests, verdict, out_dir, res.levers)
    lines += [
        "## Paired tests against the answer-only baseline",
        "",
        "Each student against `answer` on the same test questions, the discordant pairs of all seeds "
        "pooled into one exact McNemar test (two-sided); and the difference in accuracy per seed, with "
        "a two-sided paired t-test of those differences across seeds.",
        "",
    ]
    lines += tests_table(tests, grid) + [""]
    if controls:
        lines += [
            "### Against the size-matched control",
            "",
            "Each teacher-CoT student against its mode's gold student on the same questions "
            "(`vs`; `only baseline right` counts the control's), the same two tests.",
            "",
        ]
        lines += tests_table(controls, grid) + [""]
    lines += [
        "## The teacher",
        "",
        "On the train split of the student cells (what the cot students learn from). "
        "Yield: share of questions with at least one CoT right in every step (the dataset's step checker); "
        "precision: share of all samples right in every step. Rates in %, with their 95% Wilson intervals.",
        "",
    ]
    modes = list(grid.teachers)
    rows = sorted(res.teacher, key=lambda r: (r["task"], modes.index(r["mode"]), r["questions"], r["seed"]))
    lines += teacher_table(rows, "train") + [""]
    if res.levers:
        split = f"{grid.lever_split} questions of seed {grid.seeds[0]}"
        lines += [f"### Teacher levers, on {split} (no student trained)", ""]
        lines += ["| lever | settings |", "|---|---|"]
        lines += [
            f"| {name} | " + (", ".join(f"{k}={v}" for k, v in p.items()) or "the grid's params") + " |"
            for name, p in grid.levers.items()
        ]
        lines += [""] + teacher_table(res.levers, grid.lever_split) + [""]
    lines += ["## Wall time", ""]
    if res.walls:
        lines += ["| cell | teacher (s) | training (s) | evaluation (s) |", "|---|---|---|---|"]
        lines += [
            f"| {w['cell']} | {w['teacher_s'] if w['teacher_s'] is not None else ''} | "
            f"{w['train_s']:.0f} | {w['evaluate_s']:.0f} |"
            for w in res.walls
        ] + [""]
    if len(res.walls) < len(res.teacher):
        lines += [
            ("Cells not listed: n" if res.walls else "N") + "ot recorded in the experiments (wall seconds are "
            "no outcome: they go to `timings/`, outside git and DVC, on the machine that ran the cell).",
            "",
        ]
    lines += [
        "## Checking this page",
        "",
        f"Every table and test above is computed from two files committed beside this page, not from the "
        f"experiments. `{OUTCOMES}`: for each cell, each test split's question ids (sorted), then for each "
        "student, split and decoding one character per question in that order (`correct`: 1 right, 0 wrong; "
        "`invalid`: 1 when no answer could be extracted; `-`: not recorded). "
        f"`{CELLS}`: for each cell its experiment, the commit it ran from, the experiment's commit, the "
        "machine signature of each stage, the teacher's counts and the students' training-set sizes.",
        "",
        f"- re-render the page from them: `cotdistill study page {grid_file} --out-dir {out_dir}` "
        "(`--check`: compare with the committed page)",
        f"- rerun one cell from a clean clone and compare its predictions question by question: "
        f"`cotdistill study rerun-cell {grid_file} CELL --out-dir {out_dir}`",
    ]
    return "\n".join(lines) + "\n"


def render(grid: Grid, res: Results, root: str | Path, out_dir: str) -> Path:
    """Write root/out_dir/README.md and one accuracy PNG per task; returns the page's path."""
    folder = Path(root) / out_dir
    runs = select_runs(res.runs, next(iter(grid.teachers)))[0]
    summaries = summarise(runs)
    for task in grid.tasks:
        if any(x.task == task for x in summaries):
            plot_accuracy(summaries, grid, task, folder / f"accuracy_{task}.png")
            plot_curve(grid, runs, task, folder / f"quality_{task}.png", res.levers)
    page = folder / "README.md"
    write_text(page, page_text(grid, res, out_dir))
    return page
