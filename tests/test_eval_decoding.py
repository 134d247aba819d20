"""Batched decoding and the calculator on a real (tiny) T5 trained for a few steps.

The student is taught to write "a + b = c." with c often wrong, so the calculator has
something to fix: plainly decoded outputs carry false equations, calculator outputs none.
"""

import random
import re

import pytest
import torch

from cotdistill.evaluate.decoding import DecodeOptions, decode
from cotdistill.evaluate.evaluation import evaluate_splits
from cotdistill.text.calculator import find_equations
from cotdistill.train.students.toy import ToyTrainingError, addition_pair, toy_arithmetic_student

pytestmark = pytest.mark.slow

GREEDY = DecodeOptions(max_new_tokens=24)


@pytest.fixture(scope="module")
def student():
    """The toy t5-mini, trained to a stated loss (toy.py): on every CPU it has learnt the
    format when a test gets it, whatever number of steps that took there."""
    # One thread: on a shared 2-core machine two torch threads per process thrash (10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield toy_arithmetic_student()
    finally:
        torch.set_num_threads(threads)


def test_a_toy_that_misses_its_target_loss_says_so(student):
    """A clear error, not a half-trained model (`student` holds torch at one thread here)."""
    with pytest.raises(ToyTrainingError, match=r"after 12 steps, above the target 0\.01: it has not learnt"):
        toy_arithmetic_student(target_loss=0.01, max_steps=12)


@pytest.fixture(scope="module")
def questions():
    rng = random.Random(1)
    qs = [addition_pair(rng)[0] for _ in range(24)]
    # very different lengths in one batch: padding must not change any output
    return qs + ["What is 5 plus 7? Please add them, it is easy, the numbers are small and friendly."]


def test_batched_equals_one_at_a_time(student, questions):
    model, tok = student
    batched = decode(model, tok, questions, 32, GREEDY, progress=False)
    single = [decode(model, tok, [q], 1, GREEDY, progress=False)[0] for q in questions[::3]]
    assert batched[::3] == single
    assert any("=" in o for o in batched)  # the student learnt the format


def closed(text: str) -> str:
    """A pattern for `text` not followed by more of its last number ("= 13" in "= 130")."""
    return re.escape(text) + r"(?!\d|[.,/]\d)"


def same_before_first_eq(unaided: str, calc: str) -> bool:
    """The calculator's mechanism, whatever the student learnt: it changes nothing before
    the student's first '=' (nothing at all where there is none)."""
    cut = unaided.find("=") + 1 if "=" in unaided else None
    return calc[:cut] == unaided[:cut]


def forced_equations(out: str) -> list:
    """The computations a calculator forced in `out`: "a + b = c", the value right after
    the '=' (a student may chain its own claim onto it, "2 + 2 = 4 = 78": that link is
    the student's, and the equation checker flags it), leaving out a value that the
    token budget cut off at the very end of the output. The value must be closed: in
    "37 + 93 = 130 = 13" the student's "37 + 93 = 13" is not a forced one."""
    return [
        e
        for e in find_equations(out)
        if re.search(closed(f"{e.expression} = {e.stated}"), out) and not out.rstrip().endswith(e.stated)
    ]


def test_calculator_forces_true_values(student, questions):
    model, tok = student
    plain = decode(model, tok, questions, 32, GREEDY, progress=False)
    calc = decode(model, tok, questions, 32, GREEDY, progress=False, calculator=True)
    plain_eqs = [e for o in plain for e in find_equations(o)]
    calc_eqs = [e for o in calc for e in forced_equations(o)]
    assert len(calc_eqs) >= len(questions) // 2
    assert not all(e.holds for e in plain_eqs)  # the student's own sums are often wrong
    assert all(e.holds for e in calc_eqs), [e for e in calc_eqs if not e.holds]
    assert any(p != c for p, c in zip(plain, calc))
    assert all(same_before_first_eq(p, c) for p, c in zip(plain, calc))
    # batching does not change what the calculator does
    assert [decode(model, tok, [q], 1, GREEDY, progress=False, calculator=True)[0] for q in questions[:6]] == calc[:6]


def test_beam_search_and_sampling_options(student, questions):
    model, tok = student
    beams = decode(
        model, tok, questions, 8, DecodeOptions(max_new_tokens=24, num_beams=3), progress=False, calculator=True
    )
    assert all(e.holds for o in beams for e in forced_equations(o))
    sample = DecodeOptions(max_new_tokens=24, do_sample=True, temperature=1.5, top_p=0.95, seed=3)
    a = decode(model, tok, questions, 8, sample, progress=False)
    b = decode(model, tok, questions, 8, sample, progress=False)
    greedy = decode(model, tok, questions, 8, GREEDY, progress=False)
    assert a == b and a != greedy  # seeded, and really sampling


def test_evaluate_splits_scores_both_modes(student):
    model, tok = student
    rng = random.Random(2)
    rows = []
    for i in range(12):
        q, t = addition_pair(rng)
        rows.append({"id": f"t{i}", "question": q, "answer": t.rsplit(" ", 1)[1].rstrip("."), "answer_type": "number"})
    preds, m = evaluate_splits(
        model,
        tok,
        {"test": rows, "test_ood": rows[:5]},
        DecodeOptions(max_new_tokens=24),
        8,
        "flexible",
        calculator=True,
        progress=False,
    )
    assert m["id"]["n"] == 12 and m["ood"]["n"] == 5 and m["calculator"]["id"]["n"] == 12
    assert 0 <= m["calculator"]["id"]["changed_outputs"] <= 12
    assert len(preds) == 2 * (12 + 5) and {p["calculator"] for p in preds} == {False, True}
    assert {"id", "question", "gold", "output", "extracted", "correct", "split"} <= set(preds[0])


def test_processor_forces_value_then_closes_the_number(student):
    """The mechanism under controlled scores: after '2 + 3 =' the only allowed token is the
    value's; once it is written, digits that would extend it are banned."""
    from cotdistill.text.calculator_processor import calculator_processor

    _, tok = student
    proc = calculator_processor(tok, forcing="ids")
    start = [tok.pad_token_id]  # T5's decoder start token
    ids = torch.tensor([start + tok.encode("12 + 30 =", add_special_tokens=False)])
    forced = tok.encode(" 42", add_special_tokens=False)
    scores = proc(ids, torch.zeros(1, len(tok)))
    assert torch.isfinite(scores[0]).sum() == 1 and scores[0, forced[0]] == 0
    written = torch.tensor([ids[0].tolist() + forced])
    digit = tok.convert_tokens_to_ids("5")
    after = proc(written, torch.zeros(1, len(tok)))
    assert after[0, digit] == float("-inf") and torch.isfinite(after[0]).sum() > len(tok) // 2
    # no expression before '=': nothing is forced
    plain = torch.tensor([start + tok.encode("The answer =", add_special_tokens=False)])
    assert torch.isfinite(proc(plain, torch.zeros(1, len(tok)))[0]).all()


def test_generate_goes_on_where_the_calculator_cannot_help(student):
    """Inside `generate`: after '(2^64)^17/3 =' (a CalcError, that was an OverflowError which
    aborted the evaluation) nothing is forced and decoding goes on; after '12 + 30 =' the
    value is forced and stays closed."""
    from transformers import LogitsProcessorList

    from cotdistill.text.calculator_processor import calculator_processor

    model, tok = student
    procs = LogitsProcessorList([calculator_processor(tok, forcing="ids")])
    enc = tok(["What is 12 plus 30?"], return_tensors="pt")
    for text in ["(2^64)^17/3 =", "Monday - 12 + 30 ="]:
        prefix = torch.tensor([[tok.pad_token_id] + tok.encode(text, add_special_tokens=False)])
        plain = model.generate(**enc, decoder_input_ids=prefix, max_new_tokens=8, do_sample=False)
        calc = model.generate(
            **enc, decoder_input_ids=prefix, max_new_tokens=8, do_sample=False, logits_processor=procs
        )
        new = tok.decode(calc[0, prefix.shape[1] :], skip_special_tokens=True)
        if text.startswith("("):
            # nothing forced: the same tokens up to the student's own next '=', which the
            # calculator may answer (a toy can write "80 + 30 =" within the 8 tokens)
            assert new and same_before_first_eq(tok.decode(plain[0, prefix.shape[1] :], skip_special_tokens=True), new)
        else:
            assert re.match(r" 42(?!\d|[.,/]\d)", new), new
