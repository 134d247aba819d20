"""Rationales of a chosen quality, made from right ones: the rationale-quality curve's
controls (`filter.gold_noise`, `filter.gold_coverage`, `filter.gold_questions`) on the gold
variant's targets.

- coverage c: a share c of the questions keeps its gold rationale; the others get the
  answer target ("The answer is X."), as `filter.missing_cot: answer` gives questions
  the teacher has no kept CoT for;
- questions: all, or only those the teacher has a kept CoT for (the size-matched control
  of the teacher-CoT student; the others as filter.missing_cot says);
- noise f: a share f of those rationales is replaced by one that keeps the right final
  answer and is wrong in at least one step, the way the offline teacher is wrong when it
  is shown the answer: a wrong intermediate value that the following steps build on, or a
  skipped step, with the (hinted) answer copied at the end all the same.

Which questions are covered and which rationales are corrupted is drawn per seed and is
nested: raising f corrupts a superset, lowering c uncovers a superset. Each corruption
edits the gold format its dataset's generator writes (prepare/datasets/), one function per
dataset in CORRUPTERS; the dataset's step checker then confirms every corrupted rationale
is wrong and every kept one right, or the filter stops.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections import Counter
from typing import Callable, Optional

from cotdistill.core.errors import DataError
from cotdistill.core.registry import Registry
from cotdistill.prepare.datasets.arithmetic import apply
from cotdistill.text.sentence import answer_sentence

from .steps import STEP_CHECKERS

# (gold target, rng) -> (a wrong-in-a-step target with the same final answer, its kind)
Corrupter = Callable[[str, random.Random], tuple[str, str]]
CORRUPTERS: Registry[Corrupter] = Registry("rationale corrupter")

WRONG_VALUE = "wrong_value"  # one intermediate result is wrong; later steps build on it
SKIPPED_STEP = "skipped_step"  # one step is left out; later steps follow from the one before


def _split(target: str, dataset: str) -> tuple[list[str], str]:
    """A gold target -> (its sentences before the answer sentence, the answer sentence)."""
    m = re.fullmatch(r"(.*?)\s*(The answer is .+\.)", target.strip(), re.DOTALL)
    if not m:
        raise DataError(f"{dataset}: a gold rationale does not end in 'The answer is X.': {target!r}")
    return re.findall(r"[^.]+\.", m.group(1)), m.group(2)


def _unreadable(dataset: str, target: str) -> DataError:
    return DataError(
        f"{dataset}: filter.gold_noise cannot corrupt this gold rationale (not in the format the "
        f"dataset's generator writes): {target!r}"
    )


def _kind(rng: random.Random, steps: int) -> tuple[str, int]:
    kind = rng.choice((WRONG_VALUE, SKIPPED_STEP)) if steps > 1 else WRONG_VALUE
    return kind, rng.randrange(steps)


_EQUATION = re.compile(r"\s*(-?\d+) ([-+*/]) (\d+) = (-?\d+)\.")


def corrupt_multistep_arith(target: str, rng: random.Random) -> tuple[str, str]:
    """'10 / 2 = 5. 5 - 3 = 2. 2 + 9 = 11.' -> '10 / 2 = 5. 5 - 3 = 4. 4 + 9 = 13.' (a wrong
    value) or '10 / 2 = 5. 5 + 9 = 14.' (a skipped step), closed by the right answer."""
    sentences, close = _split(target, "multistep_arith")
    found = [_EQUATION.fullmatch(s) for s in sentences]
    if not found or not all(found):
        raise _unreadable("multistep_arith", target)
    ops = [(m.group(2), int(m.group(3))) for m in found]
    kind, k = _kind(rng, len(ops))
    value, out = int(found[0].group(1)), []
    for i, (op, n) in enumerate(ops):
        if kind == SKIPPED_STEP and i == k:
            continue
        result = apply(value, op, n)
        if kind == WRONG_VALUE and i == k:
            off = rng.randint(1, 9)
            result = result - off if result - off >= 0 and rng.random() < 0.5 else result + off
        out.append(f"{value} {op} {n} = {result}.")
        value = result
    return " ".join(out + [close]), kind


_COIN_START = re.compile(r"\s*The coin starts (heads|tails) up\.")
_COIN_STEP = re.compile(r"\s*(\S+) (flips it, so it is|does not flip it, so it stays) (heads|tails) up\.")
_FLIP = {"heads": "tails", "tails": "heads"}


def corrupt_coin_flip(target: str, rng: random.Random) -> tuple[str, str]:
    """'Sam flips it, so it is tails up.' says heads instead, and every later state follows
    from the wrong one (a wrong value); or one person's sentence is left out and the later
    states follow without it (a skipped step). The answer sentence stays."""
    sentences, close = _split(target, "coin_flip")
    start = _COIN_START.fullmatch(sentences[0]) if sentences else None
    steps = [_COIN_STEP.fullmatch(s) for s in sentences[1:]]
    if start is None or not steps or not all(steps):
        raise _unreadable("coin_flip", target)
    kind, k = _kind(rng, len(steps))
    state, out = start.group(1), [sentences[0].strip()]
    for i, m in enumerate(steps):
        flips = m.group(2).startswith("flips")
        if kind == SKIPPED_STEP and i == k:
            continue
        state = _FLIP[state] if flips else state
        if kind == WRONG_VALUE and i == k:
            state = _FLIP[state]
        out.append(f"{m.group(1)} {m.group(2)} {state} up.")
    return " ".join(out + [close]), kind


_LETTER = re.compile(r'\s*The last letter of "([^"]+)" is "([a-z])"\.')
_JOINED = re.compile(r'\s*Concatenating them is "([a-z]*)"\.')


def corrupt_last_letters(target: str, rng: random.Random) -> tuple[str, str]:
    """One word's last letter is claimed wrong (and joined as claimed), or one word is left
    out of the claims and the join; the answer sentence stays."""
    sentences, close = _split(target, "last_letters")
    claims = [_LETTER.fullmatch(s) for s in sentences[:-1]]
    joined = _JOINED.fullmatch(sentences[-1]) if sentences else None
    if not claims or not all(claims) or joined is None:
        raise _unreadable("last_letters", target)
    kind, k = _kind(rng, len(claims))
    out, letters = [], []
    for i, m in enumerate(claims):
        word, letter = m.group(1), m.group(2)
        if kind == SKIPPED_STEP and i == k:
            continue
        if kind == WRONG_VALUE and i == k:
            letter = rng.choice([c for c in string.ascii_lowercase if c != letter])
        out.append(f'The last letter of "{word}" is "{letter}".')
        letters.append(letter)
    out.append(f'Concatenating them is "{"".join(letters)}".')
    return " ".join(out + [close]), kind


CORRUPTERS.register("coin_flip", corrupt_coin_flip)
CORRUPTERS.register("last_letters", corrupt_last_letters)
CORRUPTERS.register("multistep_arith", corrupt_multistep_arith)


def _order(ids: list[str], seed: int, purpose: str) -> list[str]:
    """`ids` in an order drawn from (seed, purpose), the same whatever else the split holds."""
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{purpose}:{i}".encode()).hexdigest())


def degrade(
    rows: list[dict],
    dataset: str,
    noise: float,
    coverage: float,
    seed: int,
    teacher_kept: Optional[set[str]] = None,
    missing: str = "answer",
) -> tuple[list[dict], dict]:
    """The gold variant's target rows of one split at rationale noise `noise` and coverage
    `coverage` (see the module's docstring), and what was done: counts of rationales,
    corrupted ones by kind and answer-only targets. Rows that change are marked: `fallback`
    (answer target) or `corrupted` (its kind). At noise 0 and coverage 1 the rows are
    returned as they are.

    `teacher_kept` (filter.gold_questions: teacher_kept): only these questions, those the
    teacher has a kept CoT for, keep a rationale, and the others are treated as the cot
    variant treats them (`missing`, filter.missing_cot: `drop` leaves them out, `answer`
    gives them the answer target): the size-matched control of the teacher-CoT student."""
    if teacher_kept is not None and missing == "drop":
        rows = [r for r in rows if r["id"] in teacher_kept]
    ids = [r["id"] for r in rows]
    covered = set(_order(ids, seed, "coverage")[: round(coverage * len(ids))])
    if teacher_kept is not None:
        covered &= teacher_kept
    kept = [i for i in ids if i in covered]
    corrupted = set(_order(kept, seed, "noise")[: round(noise * len(kept))])
    corrupt = CORRUPTERS.get(dataset) if corrupted else None
    check = STEP_CHECKERS.get(dataset) if corrupted else None
    kinds: Counter[str] = Counter()
    out = []
    for r in rows:
        if r["id"] not in covered:
            out.append({**r, "target": answer_sentence(r["answer"]), "fallback": True})
        elif r["id"] in corrupted:
            target, kind = corrupt(r["target"], random.Random(f"{seed}:corrupt:{r['id']}"))
            if check(r["question"], target) is None:
                raise DataError(f"{dataset}: the corrupted rationale of {r['id']} passes the step checker: {target!r}")
            kinds[kind] += 1
            out.append({**r, "target": target, "corrupted": kind})
        else:
            if check is not None and (wrong := check(r["question"], r["target"])) is not None:
                raise DataError(f"{dataset}: the gold rationale of {r['id']} fails the step checker ({wrong})")
            out.append(r)
    return out, {
        "noise": noise,
        "coverage": coverage,
        "questions": "all" if teacher_kept is None else "teacher_kept",
        "rows": len(rows),
        "rationales": len(kept),
        "corrupted": len(corrupted),
        "corrupted_by_kind": dict(sorted(kinds.items())),
        "answer_only": len(rows) - len(kept),
    }
