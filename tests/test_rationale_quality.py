"""The rationale-quality controls (filter.gold_noise, filter.gold_coverage): corrupted gold
rationales are wrong in a step by the dataset's own checker and keep the right answer,
the draws are nested and seeded, and the filter stage writes them."""

import json
import random

import pytest
import yaml

from cotdistill.core.config import ConfigError
from cotdistill.core.errors import DataError
from cotdistill.filter.rationale_quality import CORRUPTERS, SKIPPED_STEP, WRONG_VALUE, degrade
from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.prepare.datasets.arithmetic import multistep_example
from cotdistill.prepare.datasets.synthetic import FIRST_NAMES, LAST_NAMES, coin_flip_example, last_letters_example
from cotdistill.text.answers import extract
from cotdistill.text.rationale import close_rationale

from .conftest import REPO, make_params, run_cmd

EXAMPLES = {
    "multistep_arith": lambda rng: multistep_example(rng, rng.randint(1, 6)),
    "coin_flip": lambda rng: coin_flip_example(rng, rng.randint(1, 6)),
    "last_letters": lambda rng: last_letters_example(rng, rng.randint(1, 6), list(FIRST_NAMES), list(LAST_NAMES)),
}


def gold_rows(dataset: str, n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        e = EXAMPLES[dataset](rng)
        out.append(
            {
                "id": f"{dataset}-{i:04d}",
                "question": e["question"],
                "answer": e["answer"],
                "answer_type": e["answer_type"],
                "target": close_rationale(e["gold_rationale"], e["answer"]),
            }
        )
    return out


@pytest.mark.parametrize("dataset", sorted(EXAMPLES))
def test_every_corrupted_rationale_fails_the_step_checker_and_keeps_the_answer(dataset):
    assert set(CORRUPTERS.names()) == set(STEP_CHECKERS.names())
    rows = gold_rows(dataset, 400)
    check = STEP_CHECKERS.get(dataset)
    assert all(check(r["question"], r["target"]) is None for r in rows)
    out, stats = degrade(rows, dataset, 1.0, 1.0, seed=3)
    assert stats["corrupted"] == stats["rationales"] == 400 and stats["answer_only"] == 0
    assert set(stats["corrupted_by_kind"]) == {WRONG_VALUE, SKIPPED_STEP}
    for before, after in zip(rows, out):
        assert after["corrupted"] in (WRONG_VALUE, SKIPPED_STEP) and after["target"] != before["target"]
        assert check(after["question"], after["target"]) is not None, after["target"]
        assert extract(after["target"], after["answer_type"], "strict") == before["answer"]
        assert after["target"].endswith(f"The answer is {before['answer']}.")


def test_a_wrong_value_is_built_on_and_a_skipped_step_is_left_out():
    target = "10 / 2 = 5. 5 - 3 = 2. 2 + 9 = 11. The answer is 11."
    seen = {}
    for s in range(40):
        text, kind = CORRUPTERS.get("multistep_arith")(target, random.Random(s))
        seen.setdefault(kind, text)
    wrong = seen[WRONG_VALUE].split(". ")
    assert len(wrong) == 4 and sum(a != b for a, b in zip(wrong, target.split(". "))) >= 1
    # each equation starts from the result the one before states
    steps = [s.split(" = ") for s in seen[WRONG_VALUE].split(". ")[:3]]
    assert all(steps[i + 1][0].startswith(steps[i][1].rstrip(".")) for i in range(2))
    assert seen[SKIPPED_STEP].count("=") == 2 and seen[SKIPPED_STEP].endswith("The answer is 11.")


def test_draws_are_nested_seeded_and_off_by_default():
    rows = gold_rows("coin_flip", 200)
    assert degrade(rows, "coin_flip", 0.0, 1.0, seed=0)[0] == rows

    def corrupted(f, seed=0, c=1.0):
        return {r["id"] for r in degrade(rows, "coin_flip", f, c, seed)[0] if "corrupted" in r}

    def uncovered(c, seed=0):
        return {r["id"] for r in degrade(rows, "coin_flip", 0.0, c, seed)[0] if r.get("fallback")}

    assert corrupted(0.25) < corrupted(0.5) < corrupted(0.9) < corrupted(1.0)
    assert [len(corrupted(f)) for f in (0.25, 0.5, 0.75, 0.9)] == [50, 100, 150, 180]
    assert uncovered(0.25) < uncovered(0.05) and len(uncovered(0.05)) == 190
    assert corrupted(0.5) == corrupted(0.5) and corrupted(0.5) != corrupted(0.5, seed=1)
    # crossed: the noise falls on the covered rationales only
    out, stats = degrade(rows, "coin_flip", 0.5, 0.25, seed=0)
    assert stats == {
        "noise": 0.5,
        "coverage": 0.25,
        "questions": "all",
        "rows": 200,
        "rationales": 50,
        "corrupted": 25,
        "corrupted_by_kind": stats["corrupted_by_kind"],
        "answer_only": 150,
    }
    answer_only = [r for r in out if r.get("fallback")]
    assert all(r["target"] == f"The answer is {r['answer']}." and "corrupted" not in r for r in answer_only)


def test_gold_on_the_teachers_questions_is_the_cot_students_size_matched_control():
    rows = gold_rows("coin_flip", 40)
    kept = {r["id"] for r in rows[::4]}  # the teacher has a kept CoT for 10 of 40 questions
    dropped, stats = degrade(rows, "coin_flip", 0.0, 1.0, 0, teacher_kept=kept, missing="drop")
    assert [r["id"] for r in dropped] == [r["id"] for r in rows[::4]] and dropped == rows[::4]
    assert (stats["questions"], stats["rows"], stats["rationales"], stats["answer_only"]) == ("teacher_kept", 10, 10, 0)
    answered, stats = degrade(rows, "coin_flip", 0.0, 1.0, 0, teacher_kept=kept, missing="answer")
    assert len(answered) == 40 and (stats["rationales"], stats["answer_only"]) == (10, 30)
    assert all(bool(r.get("fallback")) == (r["id"] not in kept) for r in answered)
    # with noise, only the kept questions' rationales can be corrupted
    noisy, stats = degrade(rows, "coin_flip", 0.5, 1.0, 0, teacher_kept=kept, missing="answer")
    assert stats["corrupted"] == 5 and all(r["id"] in kept for r in noisy if "corrupted" in r)


def test_a_rationale_in_another_format_is_refused_with_its_text():
    rows = [{"id": "x", "question": "q", "answer": "3", "target": "Two and one make 3. The answer is 3."}]
    with pytest.raises(DataError, match="multistep_arith: filter.gold_noise cannot corrupt this gold rationale"):
        degrade(rows, "multistep_arith", 1.0, 1.0, seed=0)


@pytest.mark.parametrize(
    "filter_, variants, dataset, message",
    [
        ({"gold_noise": 0.5}, ["answer", "cot"], "coin_flip", "filter.gold_noise: sets the quality of the gold"),
        ({"gold_coverage": 0.25}, ["answer", "cot"], "coin_flip", "filter.gold_coverage: sets the quality of"),
        ({"gold_coverage": 0.0}, ["answer", "gold"], "coin_flip", "filter.gold_coverage: must be > 0 and <= 1"),
        ({"gold_noise": 1.5}, ["answer", "gold"], "coin_flip", "filter.gold_noise"),
        ({"gold_noise": 0.5}, ["answer", "gold"], "gsm_symbolic", "dataset 'gsm_symbolic' has none"),
        ({"gold_questions": "teacher_kept"}, ["answer", "cot"], "coin_flip", "filter.gold_questions: sets"),
        ({"gold_questions": "kept"}, ["answer", "gold"], "coin_flip", "filter.gold_questions"),
    ],
)
def test_impossible_quality_params_are_refused(filter_, variants, dataset, message):
    with pytest.raises(ConfigError, match=message):
        make_params({"dataset": dataset, "filter": filter_, "train": {"variants": variants}})


def test_the_filter_stage_writes_gold_rows_of_the_asked_quality(tmp_path, python):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    rows = gold_rows("multistep_arith", 48)
    records = [
        {
            "id": r["id"],
            "question": r["question"],
            "answer": r["answer"],
            "answer_type": "number",
            "gold_rationale": r["target"],
        }
        for r in rows
    ]
    for split, part in (("train", records[:40]), ("validation", records[40:])):
        (prepared / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    gens = tmp_path / "gens.jsonl"
    gens.write_text("")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"] = "multistep_arith"
    params["train"]["variants"] = ["answer", "gold"]
    params["filter"].update(gold_noise=0.5, gold_coverage=0.5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    argv = ["--params", str(tmp_path / "params.yaml"), "--prepared", str(prepared), "--generations", str(gens)]
    run_cmd(
        [
            python,
            str(REPO / "stages/filter.py"),
            *argv,
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        tmp_path,
    )
    m = json.loads((tmp_path / "m.json").read_text())
    assert {k: m["gold"][k] for k in ("rows", "rationales", "corrupted", "answer_only")} == {
        "rows": 40,
        "rationales": 20,
        "corrupted": 10,
        "answer_only": 20,
    }
    assert m["validation"]["gold"]["rows"] == 8
    written = [json.loads(x) for x in (tmp_path / "out/gold/train.jsonl").read_text().splitlines()]
    assert sum("corrupted" in r for r in written) == 10 and sum(bool(r.get("fallback")) for r in written) == 20
    answer = [json.loads(x) for x in (tmp_path / "out/answer/train.jsonl").read_text().splitlines()]
    assert all(r["target"] == rec["answer"] for r, rec in zip(answer, records))
    # the size-matched control: the teacher kept no CoT here, so every gold row is the answer
    params["filter"].update(gold_noise=0.0, gold_coverage=1.0, gold_questions="teacher_kept", missing_cot="answer")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(
        [
            python,
            str(REPO / "stages/filter.py"),
            *argv,
            "--out",
            str(tmp_path / "o2"),
            "--metrics",
            str(tmp_path / "m2.json"),
        ],
        tmp_path,
    )
    m = json.loads((tmp_path / "m2.json").read_text())
    assert (m["gold"]["questions"], m["gold"]["rationales"], m["gold"]["answer_only"]) == ("teacher_kept", 0, 40)
