"""Evaluation of a student: decode the test splits and score the extracted answers.

Decoding itself (batched greedy / beam / sampling, the calculator) lives in decoding.py,
the intervals and paired tests in stats.py.
"""

from __future__ import annotations

from typing import Callable

from cotdistill.core.splits import TEST_SPLITS
from cotdistill.report.stats import wilson_interval
from cotdistill.text.answers import extract, matches
from cotdistill.train.variants import DIAGNOSTIC_TASKS

from .decoding import DecodeOptions, decode


def score(records: list[dict], outputs: list[str], mode: str) -> tuple[list[dict], dict]:
    """Per-example predictions and split metrics (accuracy, n, 95% CI, invalid rate)."""
    predictions = []
    correct = invalid = 0
    for rec, out in zip(records, outputs, strict=True):
        pred = extract(out, rec["answer_type"], mode, choices=rec.get("choices"))
        ok = matches(pred, rec["answer"], rec["answer_type"])
        correct += ok
        invalid += pred is None
        predictions.append(
            {
                "id": rec["id"],
                "question": rec["question"],
                "gold": rec["answer"],
                "output": out,
                "extracted": pred,
                "correct": ok,
            }
        )
    n = len(records)
    lo, hi = wilson_interval(correct, n)
    metrics = {
        "accuracy": round(correct / n, 4) if n else 0.0,
        "n": n,
        "correct": correct,
        "ci95_low": round(lo, 4),
        "ci95_high": round(hi, 4),
        "invalid_rate": round(invalid / n, 4) if n else 0.0,
    }
    return predictions, metrics


def evaluate_splits(
    model,
    tokenizer,
    splits: dict[str, list[dict]],
    options: DecodeOptions,
    batch_size: int,
    extraction: str,
    calculator: bool,
    progress: bool = True,
    source: Callable[[str], str] | None = None,
    stop_strings: tuple[str, ...] = (),
) -> tuple[list[dict], dict]:
    """Decode and score every test split, plainly and (if asked) with the calculator.

    `source` turns a question into what the student reads (a causal student's prompt, a
    multitask student's task prefix); `stop_strings` end a causal student's output.

    Returns (prediction rows, metrics): metrics[prefix] for plain decoding and
    metrics["calculator"][prefix] for calculator decoding, prefix in TEST_SPLITS' values.
    """
    rows: list[dict] = []
    metrics: dict = {}
    for stem, records in splits.items():
        prefix = TEST_SPLITS.get(stem, stem)
        questions = [(source or str)(r["question"]) for r in records]
        plain = decode(
            model, tokenizer, questions, batch_size, options=options, progress=progress, stop_strings=stop_strings
        )
        preds, m = score(records, plain, extraction)
        rows += [{"split": stem, "calculator": False, **p} for p in preds]
        metrics[prefix] = m
        if calculator:
            calc = decode(
                model,
                tokenizer,
                questions,
                batch_size,
                options=options,
                calculator=True,
                progress=progress,
                stop_strings=stop_strings,
            )
            preds, m = score(records, calc, extraction)
            m["changed_outputs"] = sum(x != y for x, y in zip(plain, calc))
            rows += [{"split": stem, "calculator": True, **p} for p in preds]
            metrics.setdefault("calculator", {})[prefix] = m
    return rows, metrics


def tracked_metrics(metrics: dict) -> dict[str, float]:
    """An evaluate metrics file as MLflow metric names: `<split>/<key>` per test split,
    `calculator/<split>/<key>` for calculator decoding, `<task>/<split>/accuracy` for a
    task decoded as a diagnostic (a multitask student's rationale task)."""
    splits = list(TEST_SPLITS.values())
    flat = {f"{prefix}/{k}": v for prefix in splits if prefix in metrics for k, v in metrics[prefix].items()}
    flat.update(
        {f"calculator/{prefix}/{k}": v for prefix, m in metrics.get("calculator", {}).items() for k, v in m.items()}
    )
    flat.update(
        {
            f"{task}/{prefix}/accuracy": m["accuracy"]
            for task in DIAGNOSTIC_TASKS
            for prefix, m in metrics.get(task, {}).items()
            if prefix in splits
        }
    )
    return flat
