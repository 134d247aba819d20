"""Step checkers: verify the intermediate claims of a CoT on tasks whose steps are checkable.

The answer filter only checks a CoT's final answer; a small teacher that is shown the
answer often copies it and rationalises with wrong steps. A step checker reads the claims a CoT
makes along the way (a coin's state after each person, the last letter of each word) and
returns a one-line description of the first wrong or missing step, or None when every
step is right, so that a kept CoT can be wholly correct.

Checkers are registered per dataset name: `STEP_CHECKERS.get(name)(question, cot)`; the
datasets with one are marked `step_checker` in catalog/datasets.py (params validation
reads that table, not this module).
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from .registry import Registry

StepChecker = Callable[[str, str], Optional[str]]
STEP_CHECKERS: Registry[StepChecker] = Registry("step checker")

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_STATE = re.compile(r"\b(heads|tails)\b", re.IGNORECASE)
_NO_FLIP = re.compile(r"\b(?:does\s*n[o']t|did\s*n[o']t|do\s*n[o']t|not|never)\b[^.]*?\bflip", re.IGNORECASE)
_FLIP = re.compile(r"\bflip(?:s|ped)?\b|\bturns?\b", re.IGNORECASE)
_PERSON_Q = re.compile(r"([A-Z][\w'-]*) (does not flip|flips) the coin\.")


def check_coin_flip(question: str, cot: str) -> Optional[str]:
    """Every person in the question's order, with the right action and the right state.

    Rationale format (datasets/synthetic.py, prompts/coin_flip.yaml): "The coin starts
    heads up. Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up."
    Wording may vary; what is checked is: the persons named, in order, each once; the
    action if one is stated; a heads/tails state for every person, equal to the true one;
    and any other heads/tails claim equal to the state at that point.
    """
    people = _PERSON_Q.findall(question)
    if not people:
        return "cannot read the people of the question"
    names = [p for p, _ in people]
    name_re = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) + r")\b")
    heads = True  # "A coin is heads up."
    seen = 0  # persons claimed so far
    for sentence in _SENTENCE.split(cot):
        if "?" in sentence or "whether" in sentence.lower():
            continue  # a restated question is not a claim
        marks = list(name_re.finditer(sentence))
        head = sentence[: marks[0].start()] if marks else sentence
        for m in _STATE.finditer(head):
            if (m.group(1).lower() == "heads") != heads:
                return f"says the coin is {m.group(1).lower()} before {names[seen] if seen < len(names) else 'the end'}"
        for k, mark in enumerate(marks):
            seg = sentence[mark.start(): marks[k + 1].start() if k + 1 < len(marks) else len(sentence)]
            name = mark.group(1)
            if seen >= len(names) or name != names[seen]:
                expected = names[seen] if seen < len(names) else "no one"
                return f"names {name} where {expected} comes next"
            flips = people[seen][1] == "flips"
            rest = seg[mark.end() - mark.start():]
            stated_no = _NO_FLIP.search(rest)
            if stated_no and flips:
                return f"says {name} does not flip the coin"
            if not stated_no and _FLIP.search(rest) and not flips:
                return f"says {name} flips the coin"
            heads = heads != flips
            states = _STATE.findall(rest)
            if not states:
                return f"states no coin state after {name}"
            if any((s.lower() == "heads") != heads for s in states):
                return f"says {states[-1].lower()} after {name}, the coin is {'heads' if heads else 'tails'} up"
            seen += 1
    if seen < len(names):
        return f"skips {names[seen]}"
    return None


_LAST_LETTER = re.compile(
    r"the\s+last\s+letter\s+of\s+[\"“']?([^\s\"”']+?)[\"”']?\s+is\s+[\"“']?([^\s\"”'.,]+)[\"”']?",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_CONCAT = re.compile(r"concatenat\w*[^\"“.]*?\bis\s+[\"“']?([A-Za-z]+)[\"”']?", re.IGNORECASE)


def _word(w: str) -> str:
    return w.strip(".,;:!?()[]").lower()


def check_last_letters(question: str, cot: str) -> Optional[str]:
    """Every word's last letter, stated as 'the last letter of X is Y', in order.

    When the question quotes its words ('... the words in "Elon Musk" ...'), each of them
    must be claimed once in order; a stated concatenation must join the claimed letters.
    """
    claims = [(_word(w), y) for w, y in _LAST_LETTER.findall(cot)]
    if not claims:
        return "states no last letter"
    for word, letter in claims:
        if not word or len(letter) != 1 or not letter.isalpha():
            return f"states {letter!r} as the last letter of {word!r}"
        if word[-1] != letter.lower():
            return f"says the last letter of {word!r} is {letter!r}"
    quoted = _QUOTED.search(question)
    if quoted:
        words = [_word(w) for w in quoted.group(1).split() if _word(w)]
        claimed = [w for w, _ in claims]
        if claimed != words:
            return f"claims letters for {claimed}, the question's words are {words}"
    joined = "".join(y.lower() for _, y in claims)
    concat = _CONCAT.search(cot)
    if concat and concat.group(1).lower() != joined:
        return f"concatenates to {concat.group(1)!r}, the letters give {joined!r}"
    return None


STEP_CHECKERS.register("coin_flip", check_coin_flip)
STEP_CHECKERS.register("last_letters", check_last_letters)


_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/×x÷−])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
_OP_SYMBOL = {"×": "*", "x": "*", "÷": "/", "−": "-"}


def check_multistep_arith(question: str, cot: str) -> Optional[str]:
    """One equation per operation of the question, in order, each true and starting from
    the previous result: "7 + 5 = 12. 12 - 3 = 9." (operands of + and * in either order).

    Words around the equations are free; an equation that is false, out of order, uses
    a number the question does not give at that step, or is one too many is a wrong step.
    """
    from .datasets.arithmetic import apply, parse_question

    parsed = parse_question(question)
    if parsed is None:
        return "cannot read the operations of the question"
    value, ops = parsed
    found = [(float(a), _OP_SYMBOL.get(op, op), float(b), float(c)) for a, op, b, c in _EQUATION.findall(cot)]
    for k, (op, n) in enumerate(ops):
        if k >= len(found):
            return f"stops after {k} of {len(ops)} operations"
        a, got_op, b, c = found[k]
        result = apply(value, op, n)
        if got_op != op:
            return f"step {k + 1} uses {got_op} where the question asks for {op}"
        if (a, b) != (value, n) and not (op in "+*" and (b, a) == (value, n)):
            return f"step {k + 1} computes {a:g} {got_op} {b:g}; the question gives {value} {op} {n}"
        if c != result:
            return f"step {k + 1} says {a:g} {got_op} {b:g} = {c:g}; it is {result}"
        value = result
    if len(found) > len(ops):
        return f"writes {len(found)} equations for {len(ops)} operations"
    return None


STEP_CHECKERS.register("multistep_arith", check_multistep_arith)
