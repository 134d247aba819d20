"""The generated datasets: coin_flip (deterministic, disjoint splits, longer OOD questions,
right answers and rationales) and multistep_arith (the generator and the question parser)."""

import random

from cotdistill.filter.steps import check_multistep_arith
from cotdistill.prepare.datasets.arithmetic import apply, multistep_example, parse_question
from cotdistill.prepare.datasets.synthetic import GENERATORS, coin_flip_example
from cotdistill.text.answers import extract

from .conftest import make_params


def examples(n=300, seed=3, lo=2, hi=6, **kw):
    rng = random.Random(seed)
    return [multistep_example(rng, rng.randint(lo, hi), **kw) for _ in range(n)]


def test_questions_parse_back_to_their_answer_and_stay_in_range():
    for ex in examples(max_value=60, max_operand=7):
        start, ops = parse_question(ex["question"])
        value = start
        for op, n in ops:
            value = apply(value, op, n)
            assert 1 <= value <= 60
            assert n <= 7 if op in "+-" else n in (2, 3, 4)
        assert str(value) == ex["answer"] and ex["gold_rationale"].endswith(f"The answer is {value}.")
        assert len(ops) == ex["gold_rationale"].count("=")


def test_unreadable_question_is_reported():
    assert check_multistep_arith("What is 2 + 2?", "2 + 2 = 4.") == "cannot read the operations of the question"


def test_splits_are_distinct_and_ood_has_more_operations(base_params):
    from cotdistill.core.config import parse_params
    from cotdistill.prepare.datasets.synthetic import load_multistep_arith

    base_params["dataset"] = "multistep_arith"
    base_params["prepare"].update(n_train=50, n_validation=10, n_test=20, n_test_ood=20)
    splits = load_multistep_arith(parse_params(base_params))
    questions = [r["question"] for rows in splits.values() for r in rows]
    assert len(questions) == len(set(questions)) == 100
    assert all(len(parse_question(r["question"])[1]) in (5, 6) for r in splits["test_ood"])
    assert all(2 <= len(parse_question(r["question"])[1]) <= 4 for r in splits["train"])


def _coin(seed=0, **prepare):
    return GENERATORS.get("coin_flip")(make_params({"seed": seed, "prepare": prepare}))


def test_coin_flip_is_deterministic_and_disjoint():
    a, b = (
        _coin(0, n_train=50, n_test=20, n_test_ood=20, n_validation=10),
        _coin(0, n_train=50, n_test=20, n_test_ood=20, n_validation=10),
    )
    assert a == b
    assert _coin(1, n_train=50)["train"] != a["train"]
    questions = [r["question"] for split in a.values() for r in split]
    assert len(questions) == len(set(questions))  # no question in two splits
    assert {len(a[s]) for s in ("train", "test", "test_ood")} == {50, 20}


def test_coin_flip_ood_is_longer():
    splits = _coin(0, n_train=40, n_test=20, n_test_ood=20)
    people = lambda r: r["question"].count("the coin.")  # noqa: E731  one sentence per person
    assert max(map(people, splits["train"])) <= 4
    assert min(map(people, splits["test_ood"])) >= 5


def test_coin_flip_answers_and_rationales_are_right():
    import random

    rng = random.Random(3)
    for _ in range(200):
        ex = coin_flip_example(rng, rng.randint(1, 6))
        flips = ex["question"].count(" flips the coin.")
        assert ex["answer"] == ("yes" if flips % 2 == 0 else "no")
        assert extract(ex["gold_rationale"], "yes_no", "strict") == ex["answer"]
