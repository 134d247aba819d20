"""`cotdistill study rerun-cell`: one declared cell rerun from a clean clone, its predictions
compared question by question with the committed ones; a difference fails only where the
code and the float signature are the same."""

import json

import pytest
import yaml

from cotdistill.study.committed import CELLS, OUTCOMES, parse_outcomes, read
from cotdistill.study.rerun import Rerun, compare, made_by, report

from .conftest import run_cmd, venv_bin
from .test_study_committed import SIG

A = {("gold", "test", "plain"): {"q1": (True, False), "q2": (False, True), "q3": (True, False)}}


def rerun(made, committed=A, old=SIG, new=SIG, code_changed=()):
    machine = {"train/gold": old} if old else {}
    return Rerun(
        "c",
        "a" * 40,
        "b" * 40,
        compare(committed, made),
        machine,
        {"train/gold": new},
        None if code_changed is None else list(code_changed),
    )


def test_counts_per_variant_split_and_decoding():
    made = {("gold", "test", "plain"): {"q1": (True, False), "q2": (False, False), "q4": (True, False)}}
    (c,) = compare(A, made)
    assert (c.identical, c.different, c.only_committed, c.only_new) == (1, ["q2"], 1, 1)
    # an outcome committed without its invalid flag (`-`) is compared on right or wrong alone
    old = {("gold", "test", "plain"): {"q1": (True, None), "q2": (False, None)}}
    assert compare(old, A)[0].different == [] and compare(old, made)[0].identical == 2


@pytest.mark.parametrize(
    "change, failed, says",
    [
        ({}, False, "identical: every question has the committed outcome"),
        ({"made": "flip"}, True, "FAILED: outcomes differ although the code and the float signature are the same"),
        ({"made": "flip", "new": {**SIG, "threads": 2}}, False, "another float signature (train/gold)"),
        (
            {"made": "flip", "new": {**SIG, "cpu": "GenuineIntel Xeon"}},
            True,
            "FAILED",
        ),  # portable: the cpu decides nothing
        ({"made": "flip", "old": None}, False, "the committed cell has no signature"),
        ({"made": "flip", "code_changed": ["src/x.py"]}, False, "the code changed since the cell ran"),
        ({"made": "flip", "code_changed": None}, False, "the cell's commit is unknown here"),
    ],
)
def test_a_difference_fails_only_with_the_same_code_and_float_signature(change, failed, says):
    made = {k: dict(v) for k, v in A.items()}
    if change.pop("made", None):
        made[("gold", "test", "plain")]["q1"] = (False, False)
    r = rerun(made, **change)
    assert r.failed is failed and says in report(r)
    if change.get("new", {}).get("threads") == 2:
        assert "committed torch=2.13.0+cpu, threads=1" in report(r)


STUDY = {
    "name": "tiny",
    "seeds": [0],
    "threads": 1,
    "jobs": 1,
    # one teacher request per split; 40 steps, because fewer leave every answer invalid, and
    # two all-invalid runs would match whatever the floats did
    "params": {"train.max_steps": 40, "generate.max_questions": 1},
    "tasks": {"coin": {"dataset": "coin_flip"}},
    "variants": ["answer", "gold"],
    "teachers": {"hint": {"generate.answer_hint": True}},
}


@pytest.mark.slow
def test_a_cell_reruns_from_a_clean_clone_and_matches_its_committed_outcomes(tmp_path):
    from .test_pipeline import _copy_repo

    root, env = _copy_repo(tmp_path / "repo")
    (root / "studies/tiny.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "tiny study"], root, env)
    cli, out = venv_bin("cotdistill"), "metrics/study_tiny"
    run_cmd([cli, "study", "studies/tiny.yaml", "--out-dir", out], root, env, timeout=1500)
    cells, tables = read(root / out)
    rec = cells["tiny-coin-hint-s0"]
    assert rec["commit"] == run_cmd(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert {"train/answer", "evaluate/answer", "train/gold", "evaluate/gold", "generate"} <= set(rec["machine"])
    assert rec["machine"]["train/gold"]["threads"] == 1
    assert {k[:2] for k in tables["tiny-coin-hint-s0"]} == {
        (v, s) for v in ("answer", "gold") for s in ("test", "test_ood")
    }
    gold = tables["tiny-coin-hint-s0"][("gold", "test", "plain")].values()
    assert any(ok for ok, _ in gold) and not all(invalid for _, invalid in gold)  # not a trivial match
    run_cmd([cli, "study", "page", "studies/tiny.yaml", "--out-dir", out, "--check"], root, env)
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "the tiny study's page and outcomes"], root, env)

    work = tmp_path / "work"
    proc = run_cmd(
        [
            cli,
            "study",
            "rerun-cell",
            "studies/tiny.yaml",
            "tiny-coin-hint-s0",
            "--out-dir",
            out,
            "--workdir",
            str(work),
        ],
        root,
        env,
        timeout=1500,
    )
    assert "rerun-cell: identical" in proc.stdout and "| answer | test | plain | 8 | 0 | 0 | 0 |" in proc.stdout
    assert "teacher" in proc.stderr and "checkpoints" not in proc.stderr.split("shared from")[1].split(";")[0]
    # the same predictions against a hand-edited committed outcome: a failure (same code, same signature)
    lines = [json.loads(x) for x in (root / out / OUTCOMES).read_text().splitlines()]
    edit = next(x for x in lines if x.get("variant") == "gold" and x.get("split") == "test")
    edit["correct"] = ("1" if edit["correct"][0] == "0" else "0") + edit["correct"][1:]
    from cotdistill.study.grid import load_grid

    cell = load_grid(root / "studies/tiny.yaml", {}, check_cells=False).cells()[0]
    table, machine = made_by(work / "repo", cell)
    r = Rerun(
        cell.name,
        rec["commit"],
        rec["commit"],
        compare(parse_outcomes(lines)[cell.name], table),
        rec["machine"],
        machine,
        [],
    )
    assert r.failed and "gold | test | plain | 7 | 1 |" in report(r)
    assert json.loads((root / out / CELLS).read_text())["study"] == "tiny"
