"""Step checkers, every dataset's in this file: the reviewer's cases, then seeded property
tests; multistep_arith's checker against a table of cases and its gold rationales.

The property tests render the synthetic tasks' gold reasoning through several paraphrase
templates (every one must pass) and through single-step corruptions (every one must
fail): one person's action or state flipped, a person skipped, repeated or renamed; one
letter wrong, one word skipped, repeated or renamed.
"""

from __future__ import annotations

import random
import re

import pytest

from cotdistill.filter.steps import STEP_CHECKERS, check_coin_flip, check_last_letters, check_multistep_arith
from cotdistill.generate.prompts import load_prompt_file, prompt_path
from cotdistill.prepare.datasets.synthetic import (
    FIRST_NAMES,
    LAST_NAMES,
    NAMES,
    coin_flip_example,
    last_letters_example,
)

from .test_dataset_synthetic import examples

# ------------------------------------------------------------------ coin flip: review cases

Q2 = "A coin is heads up. Mia flips the coin. Tom does not flip the coin. Is the coin still heads up?"
Q_ANA = "A coin is heads up. Ana flips the coin. Raj flips the coin. Is the coin still heads up?"
Q_THREE = "A coin is heads up. Mia flips the coin. Tom flips the coin. Ana flips the coin. Is the coin still heads up?"

COIN_ACCEPT = [
    (
        Q2,
        "The coin starts heads up. Mia flips it, so it is tails up. Tom skips his turn, so it stays tails up. "
        "The answer is no.",
    ),
    (Q2, "Mia flips it, so it is tails up. Tom doesn't flip it; it stays tails. The answer is no."),
    (
        Q2,
        "Mia flips the coin, so it is no longer heads up. Tom does not flip it, so it is still tails up. "
        "The answer is no.",
    ),
    (Q_ANA, "Two people flip the coin, an even number, so it stays heads up. The answer is yes."),
    (Q_THREE, "3 flips: odd, so tails up. The answer is no."),
    (Q_THREE, "Everyone flips the coin: three flips, an odd number, so it ends tails up."),
    (Q_THREE, "The coin is flipped 3 times, an odd number of times, so it ends tails up. The answer is no."),
    (
        Q2,
        "Mia flips it from heads to tails. Tom leaves it alone, so it stays the same. So the coin ends tails up. "
        "The answer is no.",
    ),
    (Q2, "It is tails up after Mia flips it. Then it is Tom's turn. He does not flip it, so it remains tails up."),
    (Q2, "The coin is flipped by Mia, so it shows tails. The coin is not flipped by Tom, so it is still tails up."),
    (Q2, "- Mia: flips -> tails up\n- Tom: no flip -> tails up\nThe answer is no."),
    (
        Q2,
        "Mia flips it. Tom does not flip it. So the coin was flipped once, an odd number of times, so it is tails "
        "up. The answer is no.",
    ),
    (
        Q2,
        "We need to find whether the coin is still heads up. Mia flips it, so it is tails up. Tom passes, so it "
        "is still tails up. No, the coin is tails up.",
    ),
    # phrasings of larger instruction-tuned teachers
    (
        Q2,
        "Initially, the coin is heads up. Mia flips the coin, so it becomes tails up. Tom does not flip the coin, "
        "so it remains tails up. Therefore, the coin is not heads up. The answer is no.",
    ),
    (
        Q2,
        "Let's think step by step. The coin starts heads up. 1. Mia flips the coin → tails. 2. Tom doesn't flip → "
        "still tails. So the coin is tails up, not heads up. The answer is no.",
    ),
    (
        Q2,
        "Mia flips the coin once and Tom doesn't flip it, so the coin has been flipped 1 time. An odd number of "
        "flips means the coin is tails up. So no.",
    ),
    (
        Q2,
        "Step 1: Mia flips the coin. The coin is now tails up.\nStep 2: Tom does not flip the coin. The coin stays "
        "tails up.\nAnswer: no",
    ),
    (
        Q2,
        "The coin starts heads up. Mia flips it (heads -> tails). Tom does not flip it (stays tails). "
        "The answer is no.",
    ),
]

COIN_REJECT = [
    # vacuous: the claim ignores what Ana does (the coin's state depends on it)
    (
        Q_ANA,
        "Whether Ana flips or not, the coin ends tails up. Raj flips it, so it is heads up. The answer is yes.",
        "makes a claim that ignores",
    ),
    (
        Q2,
        "Mia flips it, so it is tails up. Whether Tom flips or not, the coin ends tails up. The answer is no.",
        "makes a claim that ignores",
    ),
    (
        Q2,
        "Regardless of what Tom does, it stays tails up. Mia flips it, so it is tails up. The answer is no.",
        "makes a claim that ignores",
    ),
    # parity with a wrong count or a wrong parity
    (Q_ANA, "One person flips the coin, an odd number, so it is tails up. The answer is no.", "says 1"),
    (Q_ANA, "Two people flip the coin, an odd number, so it is tails up. The answer is no.", "says 2 is odd"),
    (Q_ANA, "Two people flip the coin, an even number, so it is tails up. The answer is no.", "says tails"),
    (Q2, "Everyone flips the coin, so it is heads up.", "says 2"),
    # negated states read right
    (Q2, "Mia flips it, so it is no longer tails up. Tom does not flip it, so it stays tails up.", "says heads"),
    (Q2, "Mia flips it, so it is not heads up. Tom skips his turn, so it is not tails up.", "says heads"),
    # unread claims and persons the question does not have
    (Q2, "Mia flips it, so it is tails up. It is not true that Tom flips it, so it stays tails up.", "cannot read"),
    (
        Q2,
        "Mia flips it, so it is tails up. Max flips it, so it is heads up. Tom does not flip it, so it stays heads up.",
        "names Max",
    ),
    (
        Q2,
        "Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up. The answer is yes.",
        "answers yes",
    ),
    (
        Q2,
        "Mia flips it, so it is tails up. Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up.",
        "repeats Mia",
    ),
]


@pytest.mark.parametrize("question,cot", COIN_ACCEPT)
def test_coin_flip_accepts_right_reasoning(question, cot):
    assert check_coin_flip(question, cot) is None


@pytest.mark.parametrize("question,cot,error", COIN_REJECT)
def test_coin_flip_rejects_wrong_claims(question, cot, error):
    got = check_coin_flip(question, cot)
    assert got is not None and got.startswith(error), got


# ------------------------------------------------------------------ coin flip: properties


def _updown(heads: bool) -> str:
    return "heads" if heads else "tails"


_NUMBER = ["No one", "One person", "Two people", "Three people", "Four people", "Five people", "Six people"]


def _render_coin(
    template: str, steps: list[tuple[str, bool, bool, bool]], final: bool, n_flips: int, pronouns: dict[str, str]
) -> str:
    """steps: (name, flips as said, state before as said, state after as said)."""
    out: list[str] = []
    if template == "gold":
        out.append("The coin starts heads up.")
        for name, flip, _, after in steps:
            out.append(
                f"{name} flips it, so it is {_updown(after)} up."
                if flip
                else f"{name} does not flip it, so it stays {_updown(after)} up."
            )
    elif template == "past":
        for name, flip, _, after in steps:
            out.append(
                f"{name} flipped the coin, so it is now {_updown(after)} up."
                if flip
                else f"{name} didn't flip it, so it is still {_updown(after)} up."
            )
    elif template == "skip":
        for name, flip, _, after in steps:
            out.append(
                f"{name} flips it, so it is no longer {_updown(not after)} up."
                if flip
                else f"{name} skips {pronouns[name]} turn, so the coin stays {_updown(after)} up."
            )
    elif template == "semicolon":
        for name, flip, _, after in steps:
            out.append(
                f"{name} flips it; it is {_updown(after)}."
                if flip
                else f"{name} doesn't flip it; it stays {_updown(after)}."
            )
    elif template == "after":
        out.append("At first the coin is heads up.")
        for name, flip, _, after in steps:
            out.append(
                f"After {name} flips it, the coin is {_updown(after)} up."
                if flip
                else f"After {name} passes, the coin is still {_updown(after)} up."
            )
    elif template == "postfix":
        for name, flip, _, after in steps:
            out.append(
                f"It is {_updown(after)} up after {name} flips it."
                if flip
                else f"It is still {_updown(after)} up after {name} leaves it alone."
            )
    elif template == "transition":
        for name, flip, before, after in steps:
            out.append(
                f"{name} flips it from {_updown(before)} to {_updown(after)}."
                if flip
                else f"{name} does not flip it, so it stays {_updown(after)} up."
            )
    elif template == "bullets":
        for name, flip, _, after in steps:
            out.append(f"- {name}: {'flips' if flip else 'no flip'} -> {_updown(after)} up")
        return "\n".join(out) + f"\nThe answer is {'yes' if final else 'no'}."
    elif template == "actions_then_state":
        for name, flip, _, _ in steps:
            out.append(f"{name} flips the coin." if flip else f"{name} does not flip the coin.")
        out.append(f"So the coin ends {_updown(final)} up.")
    elif template == "actions_then_parity":
        for name, flip, _, _ in steps:
            out.append(f"{name} flips it." if flip else f"{name} does not flip it.")
        out.append(
            f"That makes {n_flips} flips, an {'odd' if n_flips % 2 else 'even'} number, so it is {_updown(final)} up."
        )
    elif template == "parity":
        out.append(
            f"{_NUMBER[n_flips]} {'flips' if n_flips <= 1 else 'flip'} the coin, an "
            f"{'odd' if n_flips % 2 else 'even'} number, "
            f"so it {'stays' if final else 'is'} {_updown(final)} up."
        )
    elif template == "parity_colon":
        out.append(f"The coin is flipped {n_flips} times: {'odd' if n_flips % 2 else 'even'}, so {_updown(final)} up.")
    else:
        raise ValueError(template)
    return " ".join(out) + f" The answer is {'yes' if final else 'no'}."


COIN_TEMPLATES = [
    "gold",
    "past",
    "skip",
    "semicolon",
    "after",
    "postfix",
    "transition",
    "bullets",
    "actions_then_state",
    "actions_then_parity",
    "parity",
    "parity_colon",
]
# Templates that name no person: a persons corruption shows only through the count.
COUNT_ONLY = {"parity", "parity_colon"}
STATE_EACH = {"gold", "past", "skip", "semicolon", "after", "postfix", "transition", "bullets"}


def _coin_steps(people: list[str], said: list[bool], truth: list[bool]) -> list[tuple[str, bool, bool, bool]]:
    """Steps whose states follow the TRUE actions (a corrupted action is said, not done)."""
    out, heads = [], True
    for name, s, t in zip(people, said, truth):
        before = heads
        heads = heads != t
        out.append((name, s, before, heads))
    return out


def _coin_cases(rng: random.Random):
    ex = coin_flip_example(rng, rng.randint(1, 6))
    pairs = re.findall(r"([A-Z]\w+) (does not flip|flips) the coin\.", ex["question"])
    people, truth = [p for p, _ in pairs], [a == "flips" for _, a in pairs]
    pronouns = {p: rng.choice(["his", "her", "their"]) for p in people}
    return ex, people, truth, pronouns


def test_coin_flip_gold_and_paraphrases_pass():
    rng = random.Random(11)
    for _ in range(100):
        ex, people, truth, pronouns = _coin_cases(rng)
        assert check_coin_flip(ex["question"], ex["gold_rationale"]) is None, ex["gold_rationale"]
        final = sum(truth) % 2 == 0
        for template in COIN_TEMPLATES:
            cot = _render_coin(template, _coin_steps(people, truth, truth), final, sum(truth), pronouns)
            assert check_coin_flip(ex["question"], cot) is None, (template, ex["question"], cot)


def _coin_corruptions(people, truth, template, pronouns, rng):
    """(what, cot) for every single-step corruption of one question under one template."""
    final = sum(truth) % 2 == 0
    stranger = rng.choice([n for n in NAMES if n not in people])
    for i in range(len(people)):
        said = list(truth)
        said[i] = not said[i]
        if template in COUNT_ONLY:
            # the persons are not named: a flipped action shows as a count one off, with a
            # parity and a state that follow from it
            wrong = sum(said)
            yield "action", _render_coin(template, [], wrong % 2 == 0, wrong, pronouns)
            continue
        yield "action", _render_coin(template, _coin_steps(people, said, truth), final, sum(truth), pronouns)
        steps = _coin_steps(people, truth, truth)
        if template in STATE_EACH:
            bad = list(steps)
            name, flip, before, after = bad[i]
            bad[i] = (name, flip, before, not after)
            if template == "transition" and flip:
                bad[i] = (name, flip, not before, after) if rng.random() < 0.5 else bad[i]
            yield "state", _render_coin(template, bad, final, sum(truth), pronouns)
        if len(people) > 1 or template != "actions_then_parity":
            # (leaving out the only person leaves a right parity argument that names no one)
            yield "skip", _render_coin(template, steps[:i] + steps[i + 1 :], final, sum(truth), pronouns)
        yield "repeat", _render_coin(template, steps[: i + 1] + steps[i:], final, sum(truth), pronouns)
        renamed = list(steps)
        renamed[i] = (stranger,) + renamed[i][1:]
        pronouns[stranger] = "her"
        yield "rename", _render_coin(template, renamed, final, sum(truth), pronouns)
    steps = _coin_steps(people, truth, truth)
    if template not in STATE_EACH:  # the final state is the one state claim
        yield "state", _render_coin(template, steps, not final, sum(truth), pronouns)


def test_coin_flip_single_step_corruptions_fail():
    rng = random.Random(12)
    counted = {}
    for _ in range(50):
        ex, people, truth, pronouns = _coin_cases(rng)
        right = {
            t: _render_coin(t, _coin_steps(people, truth, truth), sum(truth) % 2 == 0, sum(truth), pronouns)
            for t in COIN_TEMPLATES
        }
        for template in COIN_TEMPLATES:
            for what, cot in _coin_corruptions(people, truth, template, dict(pronouns), rng):
                if cot == right[template]:
                    continue  # e.g. a person who does not flip, left out of a count
                counted[what] = counted.get(what, 0) + 1
                assert check_coin_flip(ex["question"], cot) is not None, (template, what, ex["question"], cot)
    assert min(counted.values()) > 100 and set(counted) == {"action", "state", "skip", "repeat", "rename"}


# ------------------------------------------------------------------ last letters: review cases

LQ = 'Take the last letters of each word in "Elon Musk" and concatenate them.'

LETTERS_ACCEPT = [
    "Elon's last letter is n. Musk's last letter is k. The answer is nk.",
    "The last letter of Elon is n. The last letter of Musk is k. So the answer is nk.",
    "Elon ends with n. Musk ends with k. Putting them together gives nk. The answer is nk.",
    "Elon -> n\nMusk -> k\nn + k = nk\nThe answer is nk.",
    '"n" is the last letter of "Elon". "k" is the last letter of "Musk". Concatenating them gives "nk". '
    "The answer is nk.",
    'We take the last letter of each word. Elon ends with "n". Musk ends with "k". The letters are n and k. '
    "The answer is nk.",
    "Elon: n\nMusk: k\nConcatenation: nk\nAnswer: nk",
    # the offline teacher's wording without exemplars
    'The last letters of "Elon" are "n". The last letters of "Musk" are "k". Concatenating them is "nk". '
    'The answer is "nk".',
]
LETTERS_REJECT = [
    ("Elon's last letter is o. Musk's last letter is k. The answer is ok.", "says the last letter of 'elon' is 'o'"),
    ("Elon ends with n. Musk ends with k. The answer is kn.", "answers 'kn'"),
    ("Elon -> n\nMusk -> k\nn + k = kn\nThe answer is nk.", "concatenates to 'kn'"),
    ("Elon ends with n. Musk ends with k. The letters are n and s. The answer is nk.", "lists the letters 'ns'"),
    ("Elon ends with n. The answer is n.", "claims letters for ['elon']"),
    ("Elon ends with n. Elon ends with n. Musk ends with k. The answer is nnk.", "repeats 'elon'"),
    ("Elan ends with n. Musk ends with k. The answer is nk.", "claims a letter for 'elan'"),
    ("The last letter of each word is n. The answer is nk.", "cannot read"),
    ("Elon ends with n, and so does Musk. The answer is nk.", "cannot read"),
    ("Elon: n\nMusk: k\nAnswer: kn", "answers 'kn'"),
]


@pytest.mark.parametrize("cot", LETTERS_ACCEPT)
def test_last_letters_accepts_right_reasoning(cot):
    assert check_last_letters(LQ, cot) is None


@pytest.mark.parametrize("cot,error", LETTERS_REJECT)
def test_last_letters_rejects_wrong_claims(cot, error):
    got = check_last_letters(LQ, cot)
    assert got is not None and got.startswith(error), got


# ------------------------------------------------------------------ last letters: properties


def _render_letters(template: str, pairs: list[tuple[str, str]]) -> str:
    joined = "".join(letter for _, letter in pairs)
    if template == "gold":
        body = " ".join(f'The last letter of "{w}" is "{ch}".' for w, ch in pairs)
        return body + f' Concatenating them is "{joined}". The answer is {joined}.'
    if template == "plain":
        return " ".join(f"The last letter of {w} is {ch}." for w, ch in pairs) + f" So the answer is {joined}."
    if template == "possessive":
        body = " ".join(f"{w}'s last letter is {ch}." for w, ch in pairs)
        return body + f" Putting them together gives {joined}. The answer is {joined}."
    if template == "ends_with":
        body = " ".join(f'{w} ends with "{ch}".' for w, ch in pairs)
        letters = [ch for _, ch in pairs]
        listed = ", ".join(letters[:-1]) + f" and {letters[-1]}" if len(letters) > 1 else letters[0]
        return body + f" The letters are {listed}. The answer is {joined}."
    if template == "arrows":
        body = "\n".join(f"{w} -> {ch}" for w, ch in pairs)
        return body + "\n" + " + ".join(ch for _, ch in pairs) + f" = {joined}\nThe answer is {joined}."
    if template == "reversed":
        body = " ".join(f'"{ch}" is the last letter of "{w}".' for w, ch in pairs)
        return body + f' Concatenating them gives "{joined}". The answer is {joined}.'
    raise ValueError(template)


LETTER_TEMPLATES = ["gold", "plain", "possessive", "ends_with", "arrows", "reversed"]


def _letters_case(rng: random.Random):
    ex = last_letters_example(rng, rng.randint(2, 6), FIRST_NAMES, LAST_NAMES)
    words = re.search(r'"([^"]+)"', ex["question"]).group(1).split()
    return ex, words


def test_last_letters_gold_and_paraphrases_pass():
    rng = random.Random(13)
    for _ in range(200):
        ex, words = _letters_case(rng)
        assert check_last_letters(ex["question"], ex["gold_rationale"]) is None, ex["gold_rationale"]
        pairs = [(w, w[-1].lower()) for w in words]
        for template in LETTER_TEMPLATES:
            cot = _render_letters(template, pairs)
            assert check_last_letters(ex["question"], cot) is None, (template, cot)


def test_last_letters_single_step_corruptions_fail():
    rng = random.Random(14)
    counted = {}
    for _ in range(150):
        ex, words = _letters_case(rng)
        pairs = [(w, w[-1].lower()) for w in words]
        i = rng.randrange(len(pairs))
        wrong_letter = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != pairs[i][1]])
        stranger = rng.choice([w for w in FIRST_NAMES + LAST_NAMES if w not in words])
        variants = {
            "letter": pairs[:i] + [(pairs[i][0], wrong_letter)] + pairs[i + 1 :],
            "skip": pairs[:i] + pairs[i + 1 :],
            "repeat": pairs[: i + 1] + pairs[i:],
            # a renamed word, with its own (right) last letter
            "rename": pairs[:i] + [(stranger, stranger[-1].lower())] + pairs[i + 1 :],
        }
        for template in LETTER_TEMPLATES:
            for what, bad in variants.items():
                cot = _render_letters(template, bad)  # the join and answer follow the bad letters
                counted[what] = counted.get(what, 0) + 1
                assert check_last_letters(ex["question"], cot) is not None, (template, what, cot)
    assert min(counted.values()) >= 150 * len(LETTER_TEMPLATES)


COIN = [
    (
        "The coin starts heads up. Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up. "
        "The answer is no.",
        None,
    ),
    (
        "Mia flipped the coin, so it is now tails up. Tom didn't flip it, so it is still tails up. The answer is no.",
        None,
    ),
    (
        "The coin starts heads up. Mia flips it, so it is tails up. Tom does not flip it, so it stays heads up. "
        "The answer is no.",
        "says heads after Tom",
    ),
    (
        "The coin starts tails up. Mia flips it, so it is heads up. Tom does not flip it, so it stays heads up. "
        "The answer is no.",
        "says the coin is tails before Mia",
    ),
    (
        "The coin starts heads up. Mia does not flip it, so it stays heads up. Tom does not flip it, so it stays "
        "tails up. The answer is no.",
        "says Mia does not flip",
    ),
    (
        "The coin starts heads up. Tom does not flip it, so it stays heads up. The answer is no.",
        "names Tom where Mia comes next",
    ),
    ("The coin starts heads up. Mia flips it, so it is tails up. The answer is no.", "skips Tom"),
    (
        "The coin starts heads up. Mia flips it. Tom does not flip it. The answer is no.",
        "states no coin state after Tom",
    ),
    (
        "The coin starts heads up. Mia flips it, so it is tails up. Tom flips it, so it is tails up. The answer is no.",
        "says Tom flips",
    ),
    (
        "Is the coin still heads up? Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up. "
        "So the coin is tails up. The answer is no.",
        None,
    ),
]


@pytest.mark.parametrize("cot,error", COIN)
def test_coin_flip_steps(cot, error):
    got = check_coin_flip(Q2, cot)
    assert (got is None) if error is None else (got is not None and got.startswith(error)), got


def test_coin_flip_gold_rationales_pass_and_corruptions_fail():
    rng = random.Random(5)
    for _ in range(300):
        ex = coin_flip_example(rng, rng.randint(1, 6))
        assert check_coin_flip(ex["question"], ex["gold_rationale"]) is None
        flipped = ex["gold_rationale"].replace("heads", "TMP").replace("tails", "heads").replace("TMP", "tails")
        assert check_coin_flip(ex["question"], flipped) is not None


LQ_THE_WORDS = 'Take the last letters of the words in "Elon Musk" and concatenate them.'

LETTERS = [
    (
        'The last letter of "Elon" is "n". The last letter of "Musk" is "k". Concatenating them is "nk". '
        "The answer is nk.",
        None,
    ),
    ("The last letter of Elon is n. The last letter of Musk is k. The answer is nk.", None),
    (
        'The last letter of "Elon" is "o". The last letter of "Musk" is "k". The answer is ok.',
        "says the last letter of 'elon' is 'o'",
    ),
    ('The last letter of "Elon" is "n". The answer is n.', "claims letters for ['elon']"),
    ('The last letter of "Musk" is "k". The last letter of "Elon" is "n". The answer is kn.', "claims letters for"),
    (
        'The last letter of "Elon" is "n". The last letter of "Musk" is "k". Concatenating them is "kn". '
        "The answer is kn.",
        "concatenates to 'kn'",
    ),
    ("The answer is nk.", "states no last letter"),
    ('The last letter of "Elon" is "on". The last letter of "Musk" is "k".', "states 'on' as the last letter"),
]


@pytest.mark.parametrize("cot,error", LETTERS)
def test_last_letters_steps(cot, error):
    got = check_last_letters(LQ_THE_WORDS, cot)
    assert (got is None) if error is None else (got is not None and got.startswith(error)), got


def test_last_letters_gold_rationales_pass_and_corruptions_fail():
    from cotdistill.prepare.datasets.synthetic import last_letters_example

    rng = random.Random(4)
    first, last = ["Elon", "Ada", "Grace", "Alan", "Kurt"], ["Musk", "Lovelace", "Hopper", "Turing", "Godel"]
    for _ in range(100):
        ex = last_letters_example(rng, rng.randint(2, 4), first, last)
        assert check_last_letters(ex["question"], ex["gold_rationale"]) is None
        wrong = re.sub(
            r'is "([a-z])"', lambda m: 'is "z"' if m.group(1) != "z" else 'is "y"', ex["gold_rationale"], count=1
        )
        assert check_last_letters(ex["question"], wrong) is not None
        skipped = ex["gold_rationale"].split(". ", 1)[1]  # drop the first word's step
        assert check_last_letters(ex["question"], skipped) is not None


def test_gold_rationales_and_exemplars_pass_the_step_checker():
    for ex in examples():
        assert check_multistep_arith(ex["question"], ex["gold_rationale"]) is None
    for ex in load_prompt_file(prompt_path("multistep_arith")).exemplars:
        assert STEP_CHECKERS.get("multistep_arith")(ex.question, ex.rationale) is None, ex.question


ARITH_Q = (
    "Mia has 7 apples. She buys 5 more. She gives 3 to Tom. Then she has 2 times as many. "
    "How many apples does Mia have now?"
)


@pytest.mark.parametrize(
    "cot, verdict",
    [
        ("7 + 5 = 12. 12 - 3 = 9. 9 * 2 = 18. The answer is 18.", None),
        ("She has 7. 5 + 7 = 12 apples, then 12 - 3 = 9, and 9 × 2 = 18. The answer is 18.", None),
        ("7+5=12. 12-3=9. 9*2=18.", None),
        # equations as the calculator reads them: '12 − 3 = 9 * 2 = 18' runs on, '7 + 5 - 3' is two operations in one
        ("7 + 5 = 12. 12 − 3 = 9 * 2 = 18. The answer is 18.", None),
        ("7 + 5 - 3 = 9. 9 * 2 = 18.", "step 1 computes 7 + 5 - 3, not one operation"),
        ("7 + 5 = 12. 12 - 3 = 9. The answer is 18.", "stops after 2 of 3 operations"),
        ("7 + 5 = 13. 13 - 3 = 10. 10 * 2 = 20.", "step 1 says 7 + 5 = 13; it is 12"),
        ("7 + 5 = 12. 12 - 2 = 10. 10 * 2 = 20.", "step 2 computes 12 - 2; the question gives 12 - 3"),
        ("7 + 5 = 12. 12 + 3 = 15. 15 * 2 = 30.", "step 2 uses + where the question asks for -"),
        ("7 + 5 = 12. 3 - 12 = -9. -9 * 2 = -18.", "step 2 computes 3 - 12"),
        ("7 + 5 = 12. 12 - 3 = 9. 9 * 2 = 18. 18 + 0 = 18.", "writes 4 equations for 3 operations"),
        ("The answer is 18.", "stops after 0 of 3 operations"),
    ],
)
def test_step_checker_table(cot, verdict):
    got = check_multistep_arith(ARITH_Q, cot)
    assert (got is None) if verdict is None else got.startswith(verdict), got
