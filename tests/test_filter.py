"""The filter: which CoTs are kept and why each drop is counted (answers, false equations,
wrong steps), and the filter stage with step checks."""

import json

import pytest
import yaml

from cotdistill.filter.filtering import DROP_REASONS, filter_generations, verifier
from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.generate.teachers import Completion
from cotdistill.text.rationale import close_rationale

from .conftest import REPO, qa_records, run_cmd
from .test_steps import COIN

Q2 = "A coin is heads up. Mia flips the coin. Tom does not flip the coin. Is the coin still heads up?"


RECS = qa_records([(Q2, "no")] * 3, "yes_no")
NUM = qa_records([("q", "-23"), ("q", "27")], "number")


def test_verified_sampling_stops_on_what_the_filter_keeps():
    """The stop rule of generate.k_max is the filter's own verdict: the final answer, the
    equations where asked, the steps where the dataset has a step checker."""

    def c(text, finish="stop"):
        return Completion(text, finish, 0, 0)

    coin = verifier(RECS, "coin_flip", "strict")
    assert coin(0, c(COIN[0][0])) and not coin(1, c(COIN[2][0]))  # COIN[2]: the right answer, a wrong step
    num = verifier(NUM, "gsm8k", "strict")  # no step checker: the answer alone
    assert num(0, c("42 - 65 = 25, so -23. The answer is -23.")) and not num(1, c("3 * 9 = 28. The answer is 28."))
    assert not verifier(NUM, "gsm8k", "strict", verify_equations=True)(0, c("42 - 65 = 25, so -23. The answer is -23."))


def test_filter_drops_false_equations_and_wrong_steps():
    gens = [
        {"id": "q0", "text": "42 - 65 = 25, so -23. The answer is -23.", "finish_reason": "stop"},
        {"id": "q1", "text": "3 * 9 = 27. The answer is 27.", "finish_reason": "stop"},
    ]
    kept, m = filter_generations(NUM, gens, "strict")
    assert len(kept) == 2 and m["dropped_by_reason"]["false_equation"] == 0
    kept, m = filter_generations(NUM, gens, "strict", verify_equations=True)
    assert [k["id"] for k in kept] == ["q1"] and m["dropped_by_reason"]["false_equation"] == 1
    assert list(m["dropped_by_reason"]) == list(DROP_REASONS)

    coin = [{"id": "q0", "text": COIN[0][0]}, {"id": "q1", "text": COIN[2][0]}, {"id": "q2", "text": COIN[6][0]}]
    kept, m = filter_generations(RECS, coin, "strict", step_checker=STEP_CHECKERS.get("coin_flip"))
    assert [k["id"] for k in kept] == ["q0"] and m["dropped_by_reason"]["wrong_step"] == 2


def test_filter_keeps_paraphrased_steps_and_drops_vacuous_ones():
    gens = [
        {
            "id": "q0",
            "text": "Mia flips it, so it is no longer heads up. Tom skips his turn; it stays tails. The answer is no.",
        },
        {"id": "q1", "text": "One person flips the coin, an odd number, so it ends tails up. The answer is no."},
        {
            "id": "q2",
            "text": "Mia flips it, so it is tails up. Whether Tom flips or not, the coin ends tails up. "
            "The answer is no.",
        },
    ]
    kept, m = filter_generations(RECS, gens, "strict", step_checker=STEP_CHECKERS.get("coin_flip"))
    assert [k["id"] for k in kept] == ["q0", "q1"] and m["dropped_by_reason"]["wrong_step"] == 1


def test_filter_stage_with_checks(tmp_path, python):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split, rows in (("train", RECS[:2]), ("validation", RECS[2:])):
        (prepared / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gens = tmp_path / "gens.jsonl"
    gens.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "sample": 0, "text": COIN[k][0], "finish_reason": "stop"}) + "\n"
            for i, k in enumerate((0, 2, 0))
        )
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["filter"].update(verify_steps=True, verify_equations=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(
        [
            python,
            str(REPO / "stages/filter.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--prepared",
            str(prepared),
            "--generations",
            str(gens),
            "--out",
            str(tmp_path / "filtered"),
            "--metrics",
            str(tmp_path / "filter.json"),
        ],
        tmp_path,
    )
    m = json.loads((tmp_path / "filter.json").read_text())
    assert m["kept"] == 1 and m["dropped_by_reason"]["wrong_step"] == 1 and m["validation"]["kept"] == 1
    assert m["fallbacks"] == 0 and m["steps"]["samples_per_step_correct"] == 2.0
    params["filter"]["verify_step"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    bad = run_cmd(
        [
            python,
            str(REPO / "stages/filter.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--prepared",
            str(prepared),
            "--generations",
            str(gens),
            "--out",
            str(tmp_path / "f2"),
            "--metrics",
            str(tmp_path / "f2.json"),
        ],
        tmp_path,
        check=False,
    )
    assert bad.returncode == 2 and "unknown key 'filter.verify_step' (did you mean 'verify_steps'?)" in bad.stderr
    assert not (tmp_path / "f2").exists()


def test_filter_that_keeps_nothing_fails_in_the_filter_stage(tmp_path, python):
    """max_new_tokens too short: every CoT is cut off. The filter stage fails (exit 2, one
    line with the drops and the remedy), after writing its metrics and before its output."""
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split, rows in (("train", RECS[:2]), ("validation", RECS[2:])):
        (prepared / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gens = tmp_path / "gens.jsonl"
    gens.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "sample": 0, "text": "The coin starts heads up. Mia", "finish_reason": "length"})
            + "\n"
            for i in range(3)
        )
    )
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    args = [
        python,
        str(REPO / "stages/filter.py"),
        "--params",
        str(tmp_path / "params.yaml"),
        "--prepared",
        str(prepared),
        "--generations",
        str(gens),
        "--out",
        str(tmp_path / "filtered"),
        "--metrics",
        str(tmp_path / "filter.json"),
    ]
    bad = run_cmd(args, tmp_path, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1:] == [
        "error: filter: kept no CoT of 2 train generations (truncated 2); the CoTs were cut off: "
        "raise generate.max_new_tokens"
    ]
    assert json.loads((tmp_path / "filter.json").read_text())["dropped_by_reason"]["truncated"] == 2
    assert not (tmp_path / "filtered").exists()
    # without the cot variant nothing needs a CoT: answer-only targets are written
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["variants"] = ["answer"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(args, tmp_path)
    assert sorted(p.name for p in (tmp_path / "filtered").iterdir()) == ["answer"]


YES_NO_RECS = [
    {"id": "a", "question": "qa", "answer": "yes", "answer_type": "yes_no"},
    {"id": "b", "question": "qb", "answer": "no", "answer_type": "yes_no"},
    {"id": "c", "question": "qc", "answer": "no", "answer_type": "yes_no"},
]


def test_filter_counts_every_drop():
    gens = [
        {"id": "a", "sample": 0, "text": "It stays up. The answer is Yes.", "finish_reason": "stop"},
        {"id": "a", "sample": 1, "text": "Again. The answer is yes.", "finish_reason": "stop"},
        {"id": "b", "sample": 0, "text": "The answer is yes.", "finish_reason": "stop"},
        {"id": "c", "sample": 0, "text": "The coin goes round and round", "finish_reason": "length"},
        {"id": "c", "sample": 1, "text": "", "finish_reason": "stop"},
        {"id": "c", "sample": 2, "text": "I think so", "finish_reason": "stop"},
        {
            "id": "c",
            "sample": 3,
            "text": "The answer is no. Next, it stays. The answer is no.",
            "finish_reason": "length",
        },
    ]
    kept, m = filter_generations(YES_NO_RECS, gens, "strict", max_per_question=1)
    assert [k["id"] for k in kept] == ["a"]
    assert kept[0]["target"] == "It stays up. The answer is yes."
    assert m["dropped_by_reason"] == {
        "empty": 1,
        "truncated": 1,
        "no_answer": 1,
        "wrong_answer": 1,
        "no_reasoning": 1,
        "false_equation": 0,
        "wrong_step": 0,
        "over_limit": 1,
    }
    assert m["kept"] + m["dropped"] == m["generations"] == 7


def test_kept_cot_ends_at_its_first_final_answer():
    gens = [
        {
            "id": "b",
            "sample": 0,
            "finish_reason": "length",
            "text": "It flips. The answer is no. The answer is no.\nQuestion: another one? The answer is yes.",
        }
    ]
    kept, m = filter_generations(YES_NO_RECS, gens, "strict")
    assert [k["target"] for k in kept] == ["It flips. The answer is no."]
    # the first stated answer is the one checked: a later correct one does not rescue it
    wrong_first = [{"id": "b", "sample": 0, "text": "It flips. The answer is yes. Oops, the answer is no."}]
    assert filter_generations(YES_NO_RECS, wrong_first, "strict")[1]["dropped_by_reason"]["wrong_answer"] == 1
    with pytest.raises(ValueError, match="ids not in the train split"):
        filter_generations(YES_NO_RECS, [{"id": "zz", "text": "x"}])


def test_close_rationale_ends_with_canonical_sentence():
    assert close_rationale("A.\n B.  The answer is YES. extra", "yes") == "A. B. The answer is yes."
    assert close_rationale("no marker", "7") == "no marker. The answer is 7."
