"""multistep_arith: short arithmetic word problems with one operation per sentence.

Each question starts from a count and applies 2-4 operations (add, subtract, multiply,
divide), one sentence each; the gold rationale writes one equation per operation
("7 + 5 = 12. 12 - 3 = 9. The answer is 9."). `test_ood` asks for more operations
than training ever shows (prepare.multistep_arith.ood_min_ops..ood_max_ops), so a student
that learned to work one step at a time can go on, and one that learned to map a whole
question to its answer cannot.

This is the task on which CoT can matter for a student trained on the CPU: the
answer-only student must do every operation at once, the CoT student one at a time,
and the external calculator can fix every step it writes. Values stay within
[1, max_value]; operands of + and - within [1, max_operand]; multiply and divide by 2-4.

`parse_question` reads a question back into (start, [(op, operand), ...]), so that the
step checker (steps/) can verify a teacher's CoT against the true chain. The splits are
drawn in synthetic.py.
"""

from __future__ import annotations

import random
import re
from typing import Optional

from cotdistill.text.sentence import answer_sentence

# Given names with the pronoun their sentences use.
PEOPLE = {
    "Ana": "She",
    "Mia": "She",
    "Eva": "She",
    "Ivy": "She",
    "Kim": "She",
    "Uma": "She",
    "Zoe": "She",
    "Pam": "She",
    "Fay": "She",
    "Liv": "She",
    "Ben": "He",
    "Dan": "He",
    "Gus": "He",
    "Hal": "He",
    "Ned": "He",
    "Raj": "He",
    "Sam": "He",
    "Tom": "He",
    "Wes": "He",
    "Leo": "He",
}
ITEMS = ("apples", "marbles", "stickers", "coins", "cards", "books", "pens", "shells", "stamps", "beads")

# One sentence per operation. {p}: pronoun, {n}: operand, {q}: another person.
TEMPLATES = {
    "+": ("{p} buys {n} more.", "{p} finds {n} more.", "{p} gets {n} more from {q}."),
    "-": ("{p} gives {n} to {q}.", "{p} loses {n}.", "{p} sells {n}."),
    "*": ("Then {pl} has {n} times as many.",),
    "/": ("{p} shares them equally among {n} friends and keeps one share.",),
}
FACTORS = (2, 3, 4)
_START = re.compile(r"^([A-Z][a-z]+) has (\d+) ([a-z]+)\.")
_SENTENCES = [
    (
        op,
        re.compile(
            "^"
            + re.escape(t)
            .replace(r"\{p\}", r"(?:She|He)")
            .replace(r"\{pl\}", r"(?:she|he)")
            .replace(r"\{q\}", r"[A-Z][a-z]+")
            .replace(r"\{n\}", r"(\d+)")
            + "$"
        ),
    )
    for op, ts in TEMPLATES.items()
    for t in ts
]


def apply(value: int, op: str, n: int) -> int:
    return {"+": value + n, "-": value - n, "*": value * n, "/": value // n}[op]


def equation(value: int, op: str, n: int) -> str:
    """The gold step for one operation: '12 - 3 = 9.'"""
    return f"{value} {op} {n} = {apply(value, op, n)}."


def _choose(rng: random.Random, v: int, max_value: int, max_operand: int) -> tuple[str, int]:
    """One operation whose result stays a whole number in [1, max_value]."""
    options = []
    if v < max_value:
        options.append("+")
    if v > 1:
        options.append("-")
    if any(v * f <= max_value for f in FACTORS):
        options.append("*")
    if any(v % f == 0 and v > f for f in FACTORS):
        options.append("/")
    op = rng.choice(options)
    if op == "+":
        return op, rng.randint(1, min(max_operand, max_value - v))
    if op == "-":
        return op, rng.randint(1, min(max_operand, v - 1))
    if op == "*":
        return op, rng.choice([f for f in FACTORS if v * f <= max_value])
    return op, rng.choice([f for f in FACTORS if v % f == 0 and v > f])


def multistep_example(rng: random.Random, n_ops: int, max_value: int = 100, max_operand: int = 10) -> dict:
    """One question with `n_ops` operations, its answer and the one-equation-per-step rationale."""
    person = rng.choice(sorted(PEOPLE))
    other = rng.choice([q for q in sorted(PEOPLE) if q != person])
    item = rng.choice(ITEMS)
    pron = PEOPLE[person]
    v = rng.randint(2, min(20, max_value))
    sentences, steps = [f"{person} has {v} {item}."], []
    for _ in range(n_ops):
        op, n = _choose(rng, v, max_value, max_operand)
        sentences.append(rng.choice(TEMPLATES[op]).format(p=pron, pl=pron.lower(), n=n, q=other))
        steps.append(equation(v, op, n))
        v = apply(v, op, n)
    question = " ".join(sentences) + f" How many {item} does {person} have now?"
    rationale = " ".join(steps) + " " + answer_sentence(str(v))
    return {"question": question, "answer": str(v), "answer_type": "number", "gold_rationale": rationale}


def parse_question(question: str) -> Optional[tuple[int, list[tuple[str, int]]]]:
    """(start value, [(op, operand), ...]) of a multistep_arith question, or None."""
    m = _START.match(question)
    if not m:
        return None
    body = question[m.end() :].rsplit(" How many ", 1)[0].strip()
    ops: list[tuple[str, int]] = []
    for sentence in re.split(r"(?<=\.)\s+", body) if body else []:
        for op, pattern in _SENTENCES:
            hit = pattern.match(sentence)
            if hit:
                ops.append((op, int(hit.group(1))))
                break
        else:
            return None
    return int(m.group(2)), ops
