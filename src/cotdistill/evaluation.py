"""Batched decoding, answer extraction and accuracy with a confidence interval."""

from __future__ import annotations

import math

from .answers import extract, normalise_gold


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials (0, 0 when n = 0)."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def decode(model, tokenizer, questions: list[str], batch_size: int, max_new_tokens: int,
           num_beams: int = 1, max_source_length: int = 512, progress: bool = True) -> list[str]:
    """Greedy (or beam) decoding in batches of similar length; outputs in input order."""
    import torch
    from tqdm import tqdm

    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    outputs: list[str] = [""] * len(questions)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for b in tqdm(range(0, len(order), batch_size), desc="decode", unit="batch", disable=not progress):
            idx = order[b : b + batch_size]
            enc = tokenizer([questions[i] for i in idx], return_tensors="pt", padding=True,
                            truncation=True, max_length=max_source_length).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
            for i, text in zip(idx, tokenizer.batch_decode(out, skip_special_tokens=True)):
                outputs[i] = text.strip()
    return outputs


def score(records: list[dict], outputs: list[str], mode: str) -> tuple[list[dict], dict]:
    """Per-example predictions and split metrics (accuracy, n, 95% CI, invalid rate)."""
    predictions = []
    correct = invalid = 0
    for rec, out in zip(records, outputs, strict=True):
        pred = extract(out, rec["answer_type"], mode)
        gold = normalise_gold(rec["answer"], rec["answer_type"])
        ok = pred is not None and pred == gold
        correct += ok
        invalid += pred is None
        predictions.append({
            "id": rec["id"], "question": rec["question"], "gold": rec["answer"],
            "output": out, "extracted": pred, "correct": ok,
        })
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
