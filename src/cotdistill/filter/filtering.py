"""Keep teacher CoTs whose final answer is right; count every drop by reason.

Optionally also drop CoTs whose arithmetic is false (`verify_equations`, checked with the
calculator's safe parser) or whose intermediate steps are wrong (`verify_steps`, with the
dataset's step checker from steps/).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Optional

from cotdistill.core.errors import DataError
from cotdistill.text.answers import extract, matches, reasoning_before_answer, through_first_answer
from cotdistill.text.calculator import false_equations
from cotdistill.text.rationale import close_rationale
from cotdistill.text.sentence import answer_sentence

from .steps import STEP_CHECKERS, StepChecker

ANSWER_DROPS = ("empty", "truncated", "no_answer", "wrong_answer")
DROP_REASONS = (
    "empty",
    "truncated",
    "no_answer",
    "wrong_answer",
    "no_reasoning",
    "false_equation",
    "wrong_step",
    "over_limit",
)


def cot_text(generation: dict) -> str:
    """The teacher's CoT as the filter reads it: up to the end of its first final answer."""
    return through_first_answer(generation["text"].strip())


def classify(
    generation: dict,
    record: dict,
    mode: str,
    verify_equations: bool = False,
    step_checker: Optional[StepChecker] = None,
) -> str | None:
    """The drop reason for one generation, or None to keep it."""
    text = cot_text(generation)
    if not text:
        return "empty"
    predicted = extract(text, record["answer_type"], mode, choices=record.get("choices"))
    if predicted is None:
        return "truncated" if generation.get("finish_reason") == "length" else "no_answer"
    if not matches(predicted, record["answer"], record["answer_type"]):
        return "wrong_answer"
    if not reasoning_before_answer(text).strip():
        return "no_reasoning"  # only "The answer is X.": nothing for a student to learn to reason with
    if verify_equations and false_equations(text):
        return "false_equation"
    if step_checker is not None and step_checker(record["question"], text) is not None:
        return "wrong_step"
    return None


def verifier(
    records: list[dict], dataset: str, mode: str, verify_equations: bool = False
) -> Callable[[int, Any], bool]:
    """(record index, completion) -> whether the filter keeps that completion as right: its
    final answer (extraction `mode`), its equations with `verify_equations`, and every step
    where `dataset` has a step checker. The stop rule of verified sampling (generate.k_max),
    for the generate stage and the lever benchmark alike."""
    checker = STEP_CHECKERS.get(dataset) if dataset in STEP_CHECKERS else None

    def verified(i: int, completion: Any) -> bool:
        gen = {"text": completion.text, "finish_reason": completion.finish_reason}
        return classify(gen, records[i], mode, verify_equations, checker) is None

    return verified


def filter_generations(
    records: list[dict],
    generations: list[dict],
    mode: str = "strict",
    max_per_question: int = 1,
    verify_equations: bool = False,
    step_checker: Optional[StepChecker] = None,
    verify_steps: bool = True,
) -> tuple[list[dict], dict]:
    """Return (kept training rows, metrics). Generations are matched to records by id.

    `verify_equations` drops CoTs with a false equation; `step_checker` (a function of
    question and CoT, see steps/) drops CoTs with a wrong intermediate step when
    `verify_steps`, and otherwise only audits them: the metrics then say how many of the
    CoTs the answer filter keeps are right step by step.
    """
    by_id = {r["id"]: r for r in records}
    drops: Counter[str] = Counter()
    kept_per_id: Counter[str] = Counter()
    kept: list[dict] = []
    unknown = [g["id"] for g in generations if g["id"] not in by_id]
    if unknown:
        raise DataError(f"{len(unknown)} generations have ids not in the train split, e.g. {unknown[:3]}")
    answer_right = step_right = kept_step_right = 0
    step_right_ids: set[str] = set()
    for gen in generations:
        rec = by_id[gen["id"]]
        reason = classify(gen, rec, mode, verify_equations, step_checker if verify_steps else None)
        steps_ok = None
        if reason not in ANSWER_DROPS:
            answer_right += 1
            if step_checker is not None:
                steps_ok = step_checker(rec["question"], cot_text(gen)) is None
                step_right += steps_ok
                if steps_ok:
                    step_right_ids.add(rec["id"])
        if reason is None and kept_per_id[gen["id"]] >= max_per_question:
            reason = "over_limit"
        if reason is not None:
            drops[reason] += 1
            continue
        kept_per_id[gen["id"]] += 1
        kept_step_right += bool(steps_ok)
        kept.append(
            {
                "id": rec["id"],
                "sample": gen.get("sample", 0),
                "question": rec["question"],
                "answer": rec["answer"],
                "answer_type": rec["answer_type"],
                "target": close_rationale(cot_text(gen), rec["answer"]),
            }
        )
    n = len(generations)
    asked = len({g["id"] for g in generations})
    metrics = {
        "generations": n,
        "kept": len(kept),
        "dropped": sum(drops.values()),
        "keep_rate": _share(len(kept), n),
        "questions": len(records),
        "questions_asked": asked,
        "questions_with_cot": len(kept_per_id),
        "dropped_by_reason": {r: drops.get(r, 0) for r in DROP_REASONS},
        "answer_correct_rate": _share(answer_right, n),
    }
    if step_checker is not None:
        metrics["steps"] = {
            # per sample: the share of all generations that are right in every step
            "precision": _share(step_right, n),
            # per question: the share of questions with at least one step-correct CoT
            "yield": _share(len(step_right_ids), asked),
            "kept_step_correct": kept_step_right,
            "kept_step_correct_rate": _share(kept_step_right, len(kept)),
            # the cost of a right CoT: samples drawn per question with one (verified sampling)
            "samples_per_step_correct": round(n / len(step_right_ids), 2) if step_right_ids else None,
        }
    metrics["labels"] = label_counts(records, kept)
    return kept, metrics


# What to change when every CoT is dropped for one reason.
_REMEDY = {
    "empty": "the teacher wrote nothing after the prompt: check the prompt file and generate.prompt_format",
    "truncated": "the CoTs were cut off: raise generate.max_new_tokens",
    "no_answer": "the CoTs state no final answer: check the prompt file's exemplars",
    "wrong_answer": "set generate.answer_hint: true, or use a stronger teacher",
    "no_reasoning": "the CoTs give only the answer: check the prompt file's exemplars",
    "false_equation": "set filter.verify_equations: false, or use a stronger teacher",
    "wrong_step": "set filter.verify_steps: false, or use a stronger teacher",
}


def require_kept(metrics: dict) -> None:
    """Fail (DataError) when the filter kept no CoT: the cot variant would have nothing to
    learn. The message gives the drops by reason and what to change for the main one."""
    if metrics["kept"]:
        return
    drops = {r: n for r, n in metrics["dropped_by_reason"].items() if n}
    main = max(drops, key=drops.get) if drops else None
    reasons = ", ".join(f"{r} {n}" for r, n in drops.items()) or "no generations"
    raise DataError(
        f"filter: kept no CoT of {metrics['generations']} train generations ({reasons}); "
        + (_REMEDY.get(main, "see metrics/filter.json") if main else "did the teacher run?")
    )


def _share(k: int, n: int) -> float:
    return round(k / n, 4) if n else 0.0


def label_counts(records: list[dict], kept: list[dict]) -> dict:
    """Answer label counts of the split and of the kept CoTs (yes/no and choice answers):
    filtering a biased teacher's output can unbalance the labels the student sees."""
    if not records or records[0]["answer_type"] not in ("yes_no", "choice"):
        return {}
    return {
        "split": dict(sorted(Counter(str(r["answer"]) for r in records).items())),
        "kept": dict(sorted(Counter(str(k["answer"]) for k in kept).items())),
    }


def add_missing_cot(records: list[dict], kept: list[dict]) -> list[dict]:
    """`kept` plus, for every question with no kept CoT, an answer-only target
    ("The answer is X.", marked `fallback`): the `filter.missing_cot: answer` policy."""
    have = {k["id"] for k in kept}
    extra = [
        {
            "id": r["id"],
            "sample": None,
            "question": r["question"],
            "answer": r["answer"],
            "answer_type": r["answer_type"],
            "target": answer_sentence(r["answer"]),
            "fallback": True,
        }
        for r in records
        if r["id"] not in have
    ]
    return kept + extra
