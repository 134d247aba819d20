"""multistep_arith: the generator, the question parser and the step checker."""

import random

import pytest

from cotdistill.filter.steps import STEP_CHECKERS, check_multistep_arith
from cotdistill.generate.prompts import load_prompt_file, prompt_path
from cotdistill.prepare.datasets.arithmetic import apply, multistep_example, parse_question


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


def test_gold_rationales_and_exemplars_pass_the_step_checker():
    for ex in examples():
        assert check_multistep_arith(ex["question"], ex["gold_rationale"]) is None
    for ex in load_prompt_file(prompt_path("multistep_arith")).exemplars:
        assert STEP_CHECKERS.get("multistep_arith")(ex.question, ex.rationale) is None, ex.question


Q = (
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
    got = check_multistep_arith(Q, cot)
    assert (got is None) if verdict is None else got.startswith(verdict), got


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
