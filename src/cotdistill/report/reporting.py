"""The report: a Markdown table in the paper's shape (dataset x variant, with and without
the calculator, with 95% CIs), paired McNemar tests between variants, and the data for
the `dvc plots` accuracy chart.

It takes any list of evaluation files (metrics/evaluate/<variant>.json), so the set of
variants is whatever the pipeline evaluated; a multitask student's rationale task gets a
table of its own.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from cotdistill.core import machine
from cotdistill.core.io import read_jsonl
from cotdistill.core.splits import PREFIX_LABELS, TEST_SPLITS

from .stats import mcnemar_exact, rate_text

ACCURACY_FIELDS = ("run", "variant", "split", "calculator", "accuracy", "ci95_low", "ci95_high")


def _cell(m: dict | None) -> str:
    if not m:
        return "n/a"
    if m.get("n") == 0:  # no questions: no accuracy, and its interval would be all of [0, 100]
        return "n/a (n=0)"
    return f"{100 * m['accuracy']:.1f} [{100 * m['ci95_low']:.1f}, {100 * m['ci95_high']:.1f}]"


def _columns(evaluations: list[dict]) -> list[tuple[str, bool]]:
    """(split prefix, with calculator) for every column some evaluation has."""
    cols = [(s, False) for s in PREFIX_LABELS if any(s in e for e in evaluations)]
    cols += [(s, True) for s in PREFIX_LABELS if any(s in e.get("calculator", {}) for e in evaluations)]
    return cols


def _metrics(e: dict, split: str, calc: bool) -> dict | None:
    return (e.get("calculator", {}) if calc else e).get(split)


def _fmt_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def paired_tests(predictions: dict[str, list[dict]]) -> list[dict]:
    """Exact McNemar tests: every pair of variants on every split (and decoding mode),
    and each variant with against without the calculator. Items are paired by id."""

    def outcomes(rows, split, calc):
        return {
            r["id"]: bool(r["correct"])
            for r in rows
            if r.get("split") == split and bool(r.get("calculator", False)) == calc
        }

    tests = []
    modes = [(split, calc) for split in TEST_SPLITS for calc in (False, True)]
    for split, calc in modes:
        for a, b in itertools.combinations(predictions, 2):
            oa, ob = outcomes(predictions[a], split, calc), outcomes(predictions[b], split, calc)
            ids = sorted(oa.keys() & ob.keys())
            if ids:
                t = mcnemar_exact([oa[i] for i in ids], [ob[i] for i in ids])
                tests.append({"a": a, "b": b, "split": split, "calculator": calc, **t})
    for v, rows in predictions.items():
        for split in TEST_SPLITS:
            plain, calc = outcomes(rows, split, False), outcomes(rows, split, True)
            ids = sorted(plain.keys() & calc.keys())
            if ids:
                t = mcnemar_exact([plain[i] for i in ids], [calc[i] for i in ids])
                tests.append({"a": v, "b": f"{v} +calculator", "split": split, "calculator": None, **t})
    return tests


def load_predictions(eval_root: str | Path, variants: list[str]) -> dict[str, list[dict]]:
    """<eval_root>/<variant>/predictions.jsonl for each variant that has one."""
    out = {}
    for v in variants:
        path = Path(eval_root) / v / "predictions.jsonl"
        if path.exists():
            out[v] = read_jsonl(path)
    return out


def render_report(
    params, evaluations: list[dict], filter_metrics: dict, predictions: dict[str, list[dict]] | None = None
) -> str:
    """The Markdown report (metrics/report.md)."""
    cols = _columns(evaluations)
    head = [f"{PREFIX_LABELS[s]}{' +calculator' if c else ''}" for s, c in cols]
    inv_splits = [s for s in PREFIX_LABELS if any(s in e for e in evaluations)]
    lines = [
        f"# Results: {params.dataset}, student {params.model}, teacher {params.teacher}",
        "",
        "Test accuracy in % with a 95% Wilson interval; exact match of the extracted answer. "
        "ID: in-distribution test split; OOD: out-of-distribution (longer) test split. "
        "+calculator: decoded with the external calculator forcing every 'a op b =' result.",
        "",
        "| dataset | variant | n | "
        + " | ".join(head)
        + " | "
        + " | ".join(f"invalid {PREFIX_LABELS[s]}" for s in inv_splits)
        + " |",
        "|---|---|---|" + "---|" * (len(head) + len(inv_splits)),
    ]
    for e in evaluations:
        n = "/".join(str(e[s]["n"]) for s in inv_splits if s in e)
        cells = " | ".join(_cell(_metrics(e, s, c)) for s, c in cols)
        inv = " | ".join(f"{100 * e[s]['invalid_rate']:.1f}%" if s in e else "n/a" for s in inv_splits)
        lines.append(f"| {params.dataset} | {e['variant']} | {n} | {cells} | {inv} |")
    lines += _rationale_table(params, evaluations)
    if predictions:
        tests = paired_tests(predictions)
        if tests:
            lines += [
                "",
                "## Paired comparisons (exact McNemar test)",
                "",
                "Same test questions, paired by id; 'only A' / 'only B' count the questions only "
                "that system gets right.",
                "",
                "| A | B | split | decoding | n | only A | only B | p-value |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for t in tests:
                mode = {None: "-", False: "plain", True: "+calculator"}[t["calculator"]]
                lines.append(
                    f"| {t['a']} | {t['b']} | {t['split']} | {mode} | {t['n']} | "
                    f"{t['only_a']} | {t['only_b']} | {_fmt_p(t['p_value'])} |"
                )
    drops = filter_metrics.get("dropped_by_reason", {})
    lines += [
        "",
        f"Teacher CoTs kept by the filter: {filter_metrics['kept']} of {filter_metrics['generations']} "
        f"({100 * filter_metrics['keep_rate']:.1f}%); dropped by reason: "
        + ", ".join(f"{k} {v}" for k, v in drops.items())
        + (
            f"; {filter_metrics['fallbacks']} questions without one trained on the answer alone"
            if filter_metrics.get("fallbacks")
            else ""
        ),
    ]
    steps = filter_metrics.get("steps")
    if steps:
        asked = filter_metrics.get("questions_asked") or 0
        found = round(steps["yield"] * asked)
        cost = steps.get("samples_per_step_correct")
        lines.append(
            f"Kept CoTs right in every step (the dataset's step checker): {steps['kept_step_correct']} "
            f"of {filter_metrics['kept']}; questions with at least one step-correct CoT (yield): "
            f"{rate_text(found, asked)}%; samples right in every step (precision): "
            f"{rate_text(round(steps['precision'] * filter_metrics['generations']), filter_metrics['generations'])}%"
            + (f"; {cost} samples per step-correct question." if cost is not None else ".")
        )
    labels = filter_metrics.get("labels")
    if labels:
        lines.append(f"Answer labels: train split {_shares(labels['split'])}; kept CoTs {_shares(labels['kept'])}.")
    made = sorted({machine.describe(e["machine"]) for e in evaluations if "machine" in e})
    if made:
        lines.append("Made with " + "; ".join(made) + " (float results depend on these: README, Reproducibility).")
    lines.append("")
    return "\n".join(lines)


def _rationale_table(params, evaluations: list[dict]) -> list[str]:
    """The multitask students' rationale task: the answer read from the rationale each
    writes after the [rationale] prefix. A diagnostic: at test time it answers with its
    label task, which the table above scores."""
    rationale = [(e["variant"], e["rationale"]) for e in evaluations if e.get("rationale")]
    if not rationale:
        return []
    cols = _columns([m for _, m in rationale])
    lines = [
        "",
        "## The multitask student's rationale task",
        "",
        "Accuracy of the answer extracted from the rationale the multitask student writes when asked for "
        "one ([rationale] prefix); its test-time answers (label task) are in the table above.",
        "",
        "| dataset | variant | task | "
        + " | ".join(f"{PREFIX_LABELS[s]}{' +calculator' if c else ''}" for s, c in cols)
        + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for variant, m in rationale:
        lines.append(
            f"| {params.dataset} | {variant} | rationale | "
            + " | ".join(_cell(_metrics(m, s, c)) for s, c in cols)
            + " |"
        )
    return lines


def _shares(counts: dict) -> str:
    total = sum(counts.values())
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in counts.items()) if total else "none"


def accuracy_table(evaluations: list[dict]) -> list[dict]:
    """One row per (variant, split, decoding) for the `dvc plots` accuracy chart."""
    rows = []
    for e in evaluations:
        for s, c in _columns(evaluations):
            m = _metrics(e, s, c)
            if m and m.get("n") != 0:
                rows.append(
                    {
                        "run": f"{e['variant']} {PREFIX_LABELS[s]}{' +calc' if c else ''}",
                        "variant": e["variant"],
                        "split": s,
                        "calculator": c,
                        "accuracy": m["accuracy"],
                        "ci95_low": m["ci95_low"],
                        "ci95_high": m["ci95_high"],
                    }
                )
    return rows
