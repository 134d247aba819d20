"""Preparing a dataset: splits, the size ablation, decontamination, the synthetic datasets,
the prepare config keys, the `datasets` and `show-prompt` commands and the stage's errors."""

from __future__ import annotations

import copy
import json
import re

import pytest

from cotdistill.core.config import ConfigError
from cotdistill.prepare.datasets.decontam import decontaminate, ngrams, normalise_question
from cotdistill.prepare.datasets.prepare import prepare_dataset
from cotdistill.prepare.datasets.splitting import make_splits, subset_train
from cotdistill.prepare.datasets.synthetic import GENERATORS, last_letters_example

from .conftest import REPO, make_params
from .dataset_helpers import make_targz, offline_hf  # noqa: F401  (offline_hf is an autouse fixture)

# ------------------------------------------------------------------ splits and the size ablation


def _rows(n, prefix="r"):
    return [{"id": f"{prefix}{i}", "question": f"question number {i}"} for i in range(n)]


def test_make_splits_deterministic_and_disjoint():
    pools = {"all": _rows(50)}
    a = make_splits(pools, 100, 5, 10, seed=1, name="x")
    assert a == make_splits(pools, 100, 5, 10, seed=1, name="x")
    assert a != make_splits(pools, 100, 5, 10, seed=2, name="x")
    ids = [set(r["id"] for r in a[s]) for s in ("train", "validation", "test")]
    assert [len(s) for s in ids] == [35, 5, 10] and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # a source's own test split is used as is (capped); validation is carved from train
    b = make_splits({"train": _rows(20), "test": _rows(8, "t")}, 100, 4, 5, seed=0, name="x")
    assert {r["id"][0] for r in b["test"]} == {"t"} and len(b["test"]) == 5
    assert len(b["validation"]) == 4 and len(b["train"]) == 16


def test_subset_train_nested_and_capped():
    train = _rows(100)
    assert subset_train(train, None, 1.0, 0) is train
    half, quarter = subset_train(train, None, 0.5, 0), subset_train(train, None, 0.25, 0)
    assert len(half) == 50 and len(quarter) == 25
    assert {r["id"] for r in quarter} <= {r["id"] for r in half}
    assert subset_train(train, 10, 0.5, 0) == subset_train(train, 10, 1.0, 0)[:10]
    assert len(subset_train(train, 10, 1.0, 0)) == 10


def test_prepare_applies_max_train_and_keeps_coin_flip_data():
    p = make_params({"prepare": {"n_train": 40, "n_validation": 5, "n_test": 10, "n_test_ood": 10}})
    raw = GENERATORS.get("coin_flip")(p)
    out = prepare_dataset(p, ["A coin is heads up. Mia flips the coin. Is the coin still heads up?"])
    assert out.splits == raw  # the default pipeline's data is unchanged
    small = prepare_dataset(
        make_params({"prepare": {"n_train": 40, "n_validation": 5, "n_test": 10, "n_test_ood": 10, "max_train": 7}}), []
    )
    assert small.metrics["n_train"] == 7 and small.metrics["n_train_before_subset"] == 40
    assert {r["id"] for r in small.splits["train"]} <= {r["id"] for r in raw["train"]}


# ------------------------------------------------------------------ decontamination

LONG = "Janet has seventeen ducks that lay eggs every single morning and she sells the rest at the market"


def test_decontaminate_exact_ngram_and_exemplars():
    splits = {
        "train": [
            {"id": "tr0", "question": "JANET has   seventeen ducks!"},  # exact after normalising
            {"id": "tr1", "question": "Intro words. " + LONG + " for two dollars."},  # 13-gram
            {"id": "tr2", "question": "Something else entirely."},
        ],
        "validation": [{"id": "va0", "question": LONG}],
        "test": [
            {"id": "te0", "question": "Janet has seventeen ducks."},
            {"id": "te1", "question": LONG + "?"},
            {"id": "te2", "question": 'Take the last letters of each word in "Ezra Flynn" and concatenate them.'},
        ],
        "test_ood": [],
    }
    exemplars = ['Take the last letters of each word in "Ezra Flynn" and concatenate them.']
    out, counts, hits = decontaminate(copy.deepcopy(splits), exemplars, use_ngrams=True, action="drop")
    assert {(h.test_id, h.other_id, h.kind) for h in hits} == {
        ("te0", "tr0", "exact"),
        ("te1", "tr1", "ngram"),
        ("te1", "va0", "exact"),
        ("te2", "exemplar[0]", "exact"),
    }
    assert [r["id"] for r in out["train"]] == ["tr2"] and out["validation"] == []
    assert [r["id"] for r in out["test"]] == ["te0", "te1"]
    assert counts["exact_train"] == 1 and counts["ngram_train"] == 1 and counts["exact_exemplars"] == 1
    assert counts["dropped_train"] == 2 and counts["dropped_test"] == 1
    # templated tasks: only exact matches count
    _, counts, hits = decontaminate(copy.deepcopy(splits), [], use_ngrams=False, action="drop")
    assert counts["ngram_train"] == 0 and {h.kind for h in hits} == {"exact"}
    with pytest.raises(ValueError, match=r"contamination hits .* te0~tr0 \(exact\)"):
        decontaminate(copy.deepcopy(splits), exemplars, use_ngrams=True, action="fail")


def test_ngrams_need_13_words():
    assert normalise_question("It's 5 o'clock, Bob!") == "it s 5 o clock bob"
    assert ngrams("one two three") == set()
    assert len(ngrams(" ".join(str(i) for i in range(14)))) == 2


# ------------------------------------------------------------------ synthetic datasets


def test_last_letters_deterministic_with_ood():
    p = make_params(
        {"dataset": "last_letters", "prepare": {"n_train": 30, "n_validation": 5, "n_test": 10, "n_test_ood": 10}}
    )
    a = GENERATORS.get("last_letters")(p)
    assert a == GENERATORS.get("last_letters")(p)
    qs = [r["question"] for s in a.values() for r in s]
    assert len(qs) == len(set(qs)) == 55
    for r in a["train"] + a["test"]:
        words = r["question"].split('"')[1].split()
        assert 2 <= len(words) <= 4 and r["answer"] == "".join(w[-1] for w in words).lower()
        assert r["gold_rationale"].endswith(f"The answer is {r['answer']}.")
    assert all(5 <= len(r["question"].split('"')[1].split()) <= 6 for r in a["test_ood"])


def test_last_letters_census_names_from_the_names_sdist(tmp_path):
    import random

    make_targz(
        tmp_path / "names-0.3.0.tar.gz",
        "names-0.3.0",
        {
            "names/dist.female.first": "MARY 2.629 2.629 1\nPATRICIA 1.073 3.702 2\n",
            "names/dist.male.first": "JAMES 3.318 3.318 1\n",
            "names/dist.all.last": "SMITH 1.006 1.006 1\nJOHNSON 0.810 1.816 2\n",
        },
    )
    p = make_params(
        {
            "dataset": "last_letters",
            "prepare": {
                "n_train": 5,
                "n_validation": 1,
                "n_test": 2,
                "n_test_ood": 0,
                "package_cache": str(tmp_path),
                "last_letters": {"names": "names_package", "min_words": 2, "max_words": 3},
            },
        }
    )
    rows = [r for s in GENERATORS.get("last_letters")(p).values() for r in s]
    for r in rows:
        *first, last = r["question"].split('"')[1].split()
        assert set(first) <= {"Mary", "Patricia", "James"} and last in {"Smith", "Johnson"}
    ex = last_letters_example(random.Random(0), 2, ["Elon"], ["Musk"])
    assert ex["answer"] == "nk" and ex["question"] == (
        'Take the last letters of each word in "Elon Musk" and concatenate them.'
    )


def test_gsm_symbolic_offline_disjoint_with_held_out_templates():
    from cotdistill.prepare.datasets.gsm_symbolic import split_templates, template_generators

    p = make_params(
        {"dataset": "gsm_symbolic", "prepare": {"n_train": 6, "n_validation": 2, "n_test": 4, "n_test_ood": 3}}
    )
    out = prepare_dataset(p, [])
    assert out.splits == prepare_dataset(p, []).splits
    assert {k: len(v) for k, v in out.splits.items()} == {"train": 6, "validation": 2, "test": 4, "test_ood": 3}
    qs = [r["question"] for v in out.splits.values() for r in v]
    assert len(set(qs)) == 15 and not any("Do not include units" in q for q in qs)
    for r in out.splits["train"]:
        assert r["gold_rationale"].endswith(f"The answer is {r['answer']}.") and "####" not in r["gold_rationale"]
    ids = list(template_generators())
    keep, held = split_templates(ids, 0.2, 0, want_ood=True)
    assert len(held) == round(0.2 * len(ids)) and not set(keep) & set(held) and sorted(keep + held) == sorted(ids)
    assert split_templates(ids, 0.2, 0, want_ood=False) == (sorted(ids), [])
    with pytest.raises(ValueError, match="ood_template_fraction 0.0 holds out 0"):
        split_templates(ids, 0.0, 0, want_ood=True)


# ------------------------------------------------------------------ config, CLI and the stage


@pytest.mark.parametrize(
    "prepare, expected",
    [
        ({"data_fraction": 0.0}, "prepare.data_fraction: must be > 0 and <= 1"),
        ({"data_fraction": 1.5}, "prepare.data_fraction: must be <= 1.0"),
        ({"max_train": 0}, "prepare.max_train: must be >= 1"),
        ({"source": "web"}, "prepare.source: got 'web'; allowed: synthetic, hub, packaged, local"),
        ({"decontaminate": "ignore"}, "prepare.decontaminate: got 'ignore'; allowed: drop, fail"),
        ({"last_letters": {"min_words": 4, "max_words": 2}}, "prepare.last_letters.min_words must be <= max_words"),
        ({"last_letters": {"names": "census"}}, "allowed: project, names_package"),
        ({"local": {"colum": "q"}}, "unknown key 'prepare.local.colum'"),
    ],
)
def test_prepare_config_errors_name_the_key(prepare, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        make_params({"prepare": prepare}, "params.yaml")


def test_cli_datasets_table_and_offline_prompt(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cotdistill.cli import main

    monkeypatch.chdir(tmp_path)  # no params.yaml here: no archive counts as fetched
    out = CliRunner().invoke(main, ["datasets"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    for name in (
        "gsm8k",
        "mawps",
        "asdiv",
        "svamp",
        "strategyqa",
        "commonsenseqa",
        "last_letters",
        "coin_flip",
        "gsm_symbolic",
    ):
        assert any(line.startswith(name + " ") for line in lines), name
    assert "openai/gsm8k (main)" in out.output and "358 MB, opt-in" in out.output
    row = next(line for line in lines if line.startswith("gsm8k "))
    assert "number" in row and "hub" in row and "no (Hub or local file)" in row and "7,473 train" in row

    out = CliRunner().invoke(main, ["show-prompt", "--dataset", "gsm8k", "--shots", "2"])
    assert out.exit_code == 2 and "params.yaml: file not found" in out.output
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    out = CliRunner().invoke(main, ["show-prompt", "--dataset", "gsm8k", "--shots", "2"])
    assert out.exit_code == 0, out.output
    hinted, plain = out.output.split("=== plain CoT prompt (generate.answer_hint: false) ===")
    assert "Correct answer: 230" in hinted and "Correct answer:" not in plain
    assert hinted.count("Question:") == plain.count("Question:") == 3
    out = CliRunner().invoke(main, ["show-prompt", "--dataset", "gsm9k"])
    assert out.exit_code == 2 and "did you mean 'gsm8k'" in out.output


def test_prepare_stage_fails_cleanly_on_bad_rows(tmp_path, repo_root, python, base_params):
    import yaml

    from .conftest import run_cmd

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "".join(json.dumps({"question": f"Q {i}?", "answer": "7" if i % 2 else "seven"}) + "\n" for i in range(10))
    )
    data = copy.deepcopy(base_params)
    data["dataset"] = "gsm8k"
    data["prepare"].update(source="local", local={**data["prepare"]["local"], "path": str(bad)})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    proc = run_cmd(
        [
            python,
            str(repo_root / "stages/prepare.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--prompt",
            str(repo_root / "src/cotdistill/generate/prompts/gsm8k.yaml"),
            "--out",
            str(tmp_path / "prepared"),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "gsm8k: 5 of 10 rows are malformed (50.0% > prepare.max_malformed 2.0%)" in err[0]
    assert f"{bad}:1: unparseable number gold 'seven'" in err[0]
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "m.json").exists()
