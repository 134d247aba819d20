"""From finished cells to the study's numbers: mean and sd over seeds per (task, student),
pooled paired tests against the answer-only baseline, the teacher's yield.

A student is a variant, with the teacher mode for the variants built from the teacher's
CoTs: `answer`, `gold`, `cot[hint]`, `multitask[hint]`, ... The answer and gold students
do not depend on the teacher, so they are taken from the first teacher mode's cells;
`baseline_stable` says whether every other mode's cells reproduced them exactly (the
controlled comparison).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional

from cotdistill.core.splits import PREFIX_LABELS, TEST_SPLITS
from cotdistill.report.stats import mcnemar_exact
from cotdistill.train.variants import BASELINE, GOLD, VARIANTS

from .seeds import paired_t_test

# metric prefix, and with the calculator: "id", "ood", "id_calc", "ood_calc"
SPLITS = tuple(PREFIX_LABELS) + tuple(f"{p}_calc" for p in PREFIX_LABELS)
SPLIT_NAMES = {**PREFIX_LABELS, **{f"{p}_calc": f"{label} +calc" for p, label in PREFIX_LABELS.items()}}


@dataclass
class StudentRun:
    """One trained student of one cell: its accuracy per split and per-example outcomes."""

    task: str
    mode: str
    seed: int
    variant: str
    accuracy: dict[str, float]  # split -> accuracy
    outcomes: dict[str, dict[str, bool]]  # split -> example id -> correct
    train_examples: Optional[int] = None
    wall_s: Optional[float] = None
    cell: str = ""  # the study cell (DVC experiment) it was trained in
    # the mode's own student (grid.per_mode); None: when trained on the teacher's CoTs
    mode_own: Optional[bool] = None

    @property
    def label(self) -> str:
        return f"{self.variant}[{self.mode}]" if self.per_mode else self.variant

    @property
    def per_mode(self) -> bool:
        """A student per teacher mode, not one for all: trained on the teacher's kept CoTs,
        or on rationales of the quality the mode sets."""
        return VARIANTS.get(self.variant).from_teacher if self.mode_own is None else self.mode_own


@dataclass
class Summary:
    task: str
    label: str
    seeds: list[int]
    mean: dict[str, float]
    sd: dict[str, float]
    per_seed: dict[str, list[float]]
    train_examples: list[int] = field(default_factory=list)
    # split -> (right, questions) of every seed's test questions together
    pooled: dict[str, tuple[int, int]] = field(default_factory=dict)


def split_key(split: str, calculator: bool) -> str:
    """A prepared test split and its decoding -> its key in SPLITS ("id", "ood_calc", ...)."""
    return TEST_SPLITS.get(split, split) + ("_calc" if calculator else "")


def outcomes_from_predictions(rows: list[dict]) -> dict[str, dict[str, bool]]:
    """predictions.jsonl rows -> split -> id -> correct (split keys as in SPLITS)."""
    out: dict[str, dict[str, bool]] = {}
    for r in rows:
        out.setdefault(split_key(r["split"], bool(r.get("calculator"))), {})[str(r["id"])] = bool(r["correct"])
    return out


def accuracy_from_metrics(m: dict) -> dict[str, float]:
    """metrics/evaluate/<variant>.json -> split -> accuracy."""
    acc = {}
    for split in ("id", "ood"):
        if isinstance(m.get(split), dict):
            acc[split] = m[split]["accuracy"]
        calc = (m.get("calculator") or {}).get(split)
        if isinstance(calc, dict):
            acc[f"{split}_calc"] = calc["accuracy"]
    return acc


def select_runs(runs: list[StudentRun], first_mode: str) -> tuple[list[StudentRun], dict[str, bool]]:
    """The runs that define each student: those of variants the mode does not change
    (answer; gold at the dataset's quality) from the first teacher mode, the others (cot,
    multitask; gold at a quality the mode sets) from every mode.
    Also task -> whether the former were identical in every mode."""
    chosen = [r for r in runs if r.per_mode or r.mode == first_mode]
    stable: dict[str, bool] = {}
    ref = {(r.task, r.variant, r.seed): r for r in runs if r.mode == first_mode and not r.per_mode}
    for r in runs:
        if r.per_mode or r.mode == first_mode:
            continue
        base = ref.get((r.task, r.variant, r.seed))
        same = base is not None and base.outcomes == r.outcomes
        stable[r.task] = stable.get(r.task, True) and same
    return chosen, stable


def summarise(runs: list[StudentRun]) -> list[Summary]:
    groups: dict[tuple[str, str], list[StudentRun]] = {}
    for r in runs:
        groups.setdefault((r.task, r.label), []).append(r)
    out = []
    for (task, label), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.seed)
        per = {s: [r.accuracy[s] for r in rs if s in r.accuracy] for s in SPLITS}
        per = {s: v for s, v in per.items() if v}
        out.append(
            Summary(
                task,
                label,
                [r.seed for r in rs],
                mean={s: statistics.fmean(v) for s, v in per.items()},
                sd={s: statistics.stdev(v) if len(v) > 1 else math.nan for s, v in per.items()},
                per_seed=per,
                train_examples=[r.train_examples for r in rs if r.train_examples is not None],
                pooled={s: kn for s in per if (kn := pooled_counts(rs, s))},
            )
        )
    return out


def pooled_counts(runs: list[StudentRun], split: str) -> Optional[tuple[int, int]]:
    """(right, questions) of `runs` on one split, every seed's questions together; None
    where none of them has per-question outcomes of it."""
    outs = [r.outcomes[split] for r in runs if r.outcomes.get(split)]
    if not outs:
        return None
    return sum(sum(o.values()) for o in outs), sum(len(o) for o in outs)


def pooled_test(a: list[StudentRun], b: list[StudentRun], split: str) -> Optional[dict]:
    """A against B on one split, two ways. Pooled: exact McNemar on the discordant pairs of
    every seed together (A and B are paired on the same test questions within a seed; each
    seed draws its own test set); it treats every question as independent. Across seeds:
    the per-seed accuracy differences (`seed_diffs`) and a paired t-test of them
    (`seed_p_value`, None with fewer than 2 seeds), whose noise is how much a difference
    moves from seed to seed (data, initialisation, order)."""
    by_seed = {r.seed: r for r in b}
    xs: list[bool] = []
    ys: list[bool] = []
    seeds = []
    seed_diffs = []
    for ra in sorted(a, key=lambda r: r.seed):
        rb = by_seed.get(ra.seed)
        if rb is None or split not in ra.outcomes or split not in rb.outcomes:
            continue
        ids = sorted(set(ra.outcomes[split]) & set(rb.outcomes[split]))
        x = [ra.outcomes[split][i] for i in ids]
        y = [rb.outcomes[split][i] for i in ids]
        xs += x
        ys += y
        seeds.append(ra.seed)
        seed_diffs.append((sum(x) - sum(y)) / len(ids) if ids else 0.0)
    if not seeds:
        return None
    res = mcnemar_exact(xs, ys)
    return {
        "seeds": seeds,
        "n": res["n"],
        "only_a": res["only_a"],
        "only_b": res["only_b"],
        "p_value": res["p_value"],
        "diff": (sum(xs) - sum(ys)) / len(xs) if xs else 0.0,
        "seed_diffs": seed_diffs,
        "seed_p_value": paired_t_test(seed_diffs)["p_value"] if len(seed_diffs) > 1 else None,
    }


def comparisons(runs: list[StudentRun], baseline: str = BASELINE) -> list[dict]:
    """Every student against the baseline, per task and split, pooled over seeds."""
    by = _by_label(runs)
    pairs = [(task, label, baseline) for task, label in sorted(by) if label != baseline]
    return _tests(by, pairs)


def control_comparisons(runs: list[StudentRun], modes: set[str]) -> list[dict]:
    """In each teacher mode of `modes` (those that set filter.gold_questions: teacher_kept:
    gold rationales on exactly the questions whose teacher CoT was kept), each student made
    from the teacher's CoTs against the mode's gold student, the size-matched control: the
    teacher's rationales against right ones, with the questions and their number fixed."""
    by = _by_label(runs)
    own_gold = {(r.task, r.mode): r.label for r in runs if r.variant == GOLD and r.per_mode and r.mode in modes}
    pairs = sorted(
        {
            (r.task, r.label, own_gold[(r.task, r.mode)])
            for r in runs
            if VARIANTS.get(r.variant).from_teacher and (r.task, r.mode) in own_gold
        }
    )
    return _tests(by, pairs)


def _by_label(runs: list[StudentRun]) -> dict[tuple[str, str], list[StudentRun]]:
    by: dict[tuple[str, str], list[StudentRun]] = {}
    for r in runs:
        by.setdefault((r.task, r.label), []).append(r)
    return by


def _tests(by: dict[tuple[str, str], list[StudentRun]], pairs: list[tuple[str, str, str]]) -> list[dict]:
    """(task, student, against) -> the pooled test of each split both have."""
    out = []
    for task, label, other in pairs:
        base = by.get((task, other))
        if not base:
            continue
        for split in SPLITS:
            t = pooled_test(by[(task, label)], base, split)
            if t is not None:
                out.append({"task": task, "student": label, "baseline": other, "split": split, **t})
    return out


def teacher_row(task: str, mode: str, filter_metrics: dict, split: str = "train") -> dict:
    """The teacher's yield in one cell, from metrics/filter.json (train or validation)."""
    m = filter_metrics if split == "train" else filter_metrics.get("validation", {})
    steps = m.get("steps") or {}
    labels = m.get("labels") or {}
    asked = m.get("questions_asked") or m.get("questions") or 0
    gens = m.get("generations") or 0
    return {
        "task": task,
        "mode": mode,
        "questions": asked,
        "samples_per_question": round(gens / asked, 2) if asked else None,
        "answer_correct": m.get("answer_correct_rate"),
        "kept": m.get("kept"),
        "keep_rate": m.get("keep_rate"),
        "step_yield": steps.get("yield"),
        "step_precision": steps.get("precision"),
        "kept_step_correct": steps.get("kept_step_correct_rate"),
        "labels_split": labels.get("split"),
        "labels_kept": labels.get("kept"),
        "dropped": m.get("dropped_by_reason") or {},
    }
