"""Unit tests of the pure pieces: data, prompts, filter, cache, atomic writes."""

import json

import pytest

from cotdistill.core.io import atomic_path, read_jsonl, write_jsonl
from cotdistill.evaluate.evaluation import score
from cotdistill.filter.filtering import filter_generations
from cotdistill.generate.prompts import load_prompt_file, prompt_path, render
from cotdistill.generate.teachers import Completion, Sampling, cut_at_stop
from cotdistill.generate.teachers.cache import RequestCache, request_key
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.prepare.datasets.synthetic import GENERATORS, coin_flip_example
from cotdistill.report.stats import wilson_interval
from cotdistill.text.answers import extract
from cotdistill.text.rationale import close_rationale

from .conftest import make_params


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


def test_prompt_renders_with_and_without_hint():
    pf = load_prompt_file(prompt_path("coin_flip"))
    hinted = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", "no", 2)
    plain = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", None, 2)
    assert hinted.endswith("Correct answer: no\nReasoning:")
    assert plain.endswith("Is the coin still heads up?\nReasoning:")
    assert "Correct answer" not in plain
    assert hinted.count("Question:") == 3 and plain.count("Question:") == 3
    with pytest.raises(ValueError, match="only 5 exemplars"):
        render(pf, "q", None, 9)


def test_prompt_file_errors_name_file_and_exemplar(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("instruction: x\nexemplars:\n  - question: q\n    answer: 'yes'\n    rationale: no ending\n")
    with pytest.raises(ValueError, match=r"p.yaml: exemplars\[0\]: rationale must end with 'The answer is yes.'"):
        load_prompt_file(bad)


RECS = [
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
    kept, m = filter_generations(RECS, gens, "strict", max_per_question=1)
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
    kept, m = filter_generations(RECS, gens, "strict")
    assert [k["target"] for k in kept] == ["It flips. The answer is no."]
    # the first stated answer is the one checked: a later correct one does not rescue it
    wrong_first = [{"id": "b", "sample": 0, "text": "It flips. The answer is yes. Oops, the answer is no."}]
    assert filter_generations(RECS, wrong_first, "strict")[1]["dropped_by_reason"]["wrong_answer"] == 1
    with pytest.raises(ValueError, match="ids not in the train split"):
        filter_generations(RECS, [{"id": "zz", "text": "x"}])


def test_close_rationale_ends_with_canonical_sentence():
    assert close_rationale("A.\n B.  The answer is YES. extra", "yes") == "A. B. The answer is yes."
    assert close_rationale("no marker", "7") == "no marker. The answer is 7."


def test_wilson_and_score():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing known: the whole range
    preds, m = score(RECS, ["The answer is yes.", "yes", "maybe"], "flexible")
    assert m["correct"] == 1 and m["n"] == 3 and m["invalid_rate"] == pytest.approx(0.3333)
    assert [p["correct"] for p in preds] == [True, False, False]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_jsonl(target, [{"a": 1}])
    assert read_jsonl(target) == [{"a": 1}]


def test_read_jsonl_names_bad_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"x.jsonl:2: not valid JSON"):
        read_jsonl(p)


class CountingBackend:
    """A deterministic stand-in for a teacher, to test the cache loop without a model."""

    identity = {"backend": "counting", "model": "m"}

    def __init__(self):
        self.calls = []

    def complete(self, prompts, sampling):
        self.calls += prompts
        return [Completion(f"{p[::-1]} The answer is yes.", "stop", len(p), 5) for p in prompts]


def test_generate_all_pays_once(tmp_path):
    prompts = [f"prompt {i}" for i in range(7)]
    sampling = Sampling(16, stop=("\n",))
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = CountingBackend()
    first, stats = generate_all(backend, prompts, sampling, cache, batch_size=3, num_samples=2, progress=False)
    assert stats.sent == 14 and stats.cache_hits == 0 and len(backend.calls) == 14
    again, stats2 = generate_all(backend, prompts, sampling, RequestCache(tmp_path / "c.sqlite"), 3, 2, False)
    assert stats2.sent == 0 and stats2.cache_hits == 14 and again == first
    # a different sampling setting is a different request
    _, stats3 = generate_all(backend, prompts[:1], Sampling(32), cache, 3, 1, False)
    assert stats3.sent == 1
    assert request_key({"m": 1}, "p", sampling, 0) != request_key({"m": 1}, "p", sampling, 1)
    assert json.dumps(stats.outcome()) and json.dumps(stats.costs())


def test_cut_at_stop():
    assert cut_at_stop("abc\n\nQuestion: x", ("\nQuestion:", "\n\n")) == ("abc", True)
    assert cut_at_stop("abc", ("\n\n",)) == ("abc", False)
