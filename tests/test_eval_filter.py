"""The filter's equation check and the step checkers of the synthetic tasks."""

import json
import random
import re

import pytest
import yaml

from cotdistill.filter.filtering import DROP_REASONS, filter_generations
from cotdistill.filter.steps import STEP_CHECKERS, check_coin_flip, check_last_letters
from cotdistill.prepare.datasets.synthetic import coin_flip_example

from .conftest import REPO, run_cmd

Q2 = "A coin is heads up. Mia flips the coin. Tom does not flip the coin. Is the coin still heads up?"
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


LQ = 'Take the last letters of the words in "Elon Musk" and concatenate them.'
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
    got = check_last_letters(LQ, cot)
    assert (got is None) if error is None else (got is not None and got.startswith(error)), got


RECS = [{"id": f"q{i}", "question": Q2, "answer": "no", "answer_type": "yes_no"} for i in range(3)]
NUM = [
    {"id": "n0", "question": "q", "answer": "-23", "answer_type": "number"},
    {"id": "n1", "question": "q", "answer": "27", "answer_type": "number"},
]


def test_filter_drops_false_equations_and_wrong_steps():
    gens = [
        {"id": "n0", "text": "42 - 65 = 25, so -23. The answer is -23.", "finish_reason": "stop"},
        {"id": "n1", "text": "3 * 9 = 27. The answer is 27.", "finish_reason": "stop"},
    ]
    kept, m = filter_generations(NUM, gens, "strict")
    assert len(kept) == 2 and m["dropped_by_reason"]["false_equation"] == 0
    kept, m = filter_generations(NUM, gens, "strict", verify_equations=True)
    assert [k["id"] for k in kept] == ["n1"] and m["dropped_by_reason"]["false_equation"] == 1
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


@pytest.mark.parametrize("dataset", ["coin_flip", "last_letters", "multistep_arith"])
def test_prompt_exemplars_pass_their_step_checker(dataset):
    from cotdistill.generate.prompts import format_names, load_prompt_file, prompt_path

    for fmt in format_names(prompt_path(dataset)):
        for ex in load_prompt_file(prompt_path(dataset), fmt).exemplars:
            assert STEP_CHECKERS.get(dataset)(ex.question, ex.rationale) is None, (fmt, ex.question)


def test_prompt_formats_share_questions_and_unknown_format_is_named():
    from cotdistill.generate.prompts import exemplar_questions, load_prompt_file, prompt_path

    path = prompt_path("multistep_arith")
    default, echo = load_prompt_file(path), load_prompt_file(path, "echo")
    assert [e.question for e in default.exemplars] == [e.question for e in echo.exemplars]
    assert default.exemplars[0].rationale != echo.exemplars[0].rationale
    assert exemplar_questions(path) == [e.question for e in default.exemplars]
    with pytest.raises(ValueError, match="no format 'ech'; allowed: default, echo"):
        load_prompt_file(path, "ech")
