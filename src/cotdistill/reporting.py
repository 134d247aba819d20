"""The report: a Markdown table in the paper's shape (dataset x variant, with 95% CIs)."""

from __future__ import annotations

SPLIT_NAMES = {"id": "test (in-distribution)", "ood": "test (out-of-distribution)"}


def _cell(m: dict | None) -> str:
    if not m:
        return "n/a"
    return f"{100 * m['accuracy']:.1f} [{100 * m['ci95_low']:.1f}, {100 * m['ci95_high']:.1f}] (n={m['n']})"


def render_report(params, evaluations: list[dict], filter_metrics: dict) -> str:
    splits = [s for s in SPLIT_NAMES if any(s in e for e in evaluations)]
    lines = [
        f"# Results: {params.dataset}, student {params.model}, teacher {params.teacher}",
        "",
        "Accuracy in % with a 95% Wilson interval; exact match of the extracted answer.",
        "",
        "| dataset | variant | " + " | ".join(SPLIT_NAMES[s] for s in splits) + " | invalid answers (ID) |",
        "|---|---|" + "---|" * len(splits) + "---|",
    ]
    for e in evaluations:
        cells = " | ".join(_cell(e.get(s)) for s in splits)
        inv = e.get("id", {}).get("invalid_rate")
        lines.append(f"| {params.dataset} | {e['variant']} | {cells} | {'' if inv is None else f'{100 * inv:.1f}%'} |")
    lines += [
        "",
        f"Teacher CoTs kept by the filter: {filter_metrics['kept']} of {filter_metrics['generations']} "
        f"({100 * filter_metrics['keep_rate']:.1f}%); dropped by reason: "
        + ", ".join(f"{k} {v}" for k, v in filter_metrics["dropped_by_reason"].items()),
        "",
    ]
    return "\n".join(lines)
