"""End to end: `cotdistill study` runs a tiny declared grid as queued DVC experiments and
writes its page, and `cotdistill study rerun-cell` reruns one of its cells from a clean
clone and compares it question by question. One study, run once, serves both tests."""

import json

import pytest
import yaml

from cotdistill.study.committed import CELLS, OUTCOMES, parse_outcomes, read
from cotdistill.study.rerun import Rerun, compare, made_by, report

from .conftest import run_cmd, venv_bin
from .test_pipeline import _copy_repo

pytestmark = pytest.mark.slow

STUDY = {
    "name": "tiny",
    "description": "A smoke study of the pipeline's own machinery.",
    "seeds": [0],
    "threads": 1,
    "jobs": 1,
    # 40 steps, because fewer leave every answer invalid, and two all-invalid runs would
    # match in the rerun whatever the floats did
    "params": {"train.max_steps": 40},
    "tasks": {"coin": {"dataset": "coin_flip"}},
    "variants": ["answer", "gold", "cot"],
    "teachers": {"hint": {"generate.answer_hint": True}, "no_hint": {"generate.answer_hint": False}},
    "levers": {"k2": {"generate.num_samples": 2, "generate.temperature": 0.7}},
    "lever_questions": 4,
}
OUT = "metrics/study_tiny"
CELL = "tiny-coin-hint-s0"  # the first teacher mode's cell: answer, gold and cot


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A tiny repository whose study has run once: (root, env, the study command, its run)."""
    root, env = _copy_repo(tmp_path_factory.mktemp("study") / "repo")
    (root / "studies").mkdir(exist_ok=True)
    (root / "studies/tiny.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "tiny study"], root, env)
    cmd = [venv_bin("cotdistill"), "study", "studies/tiny.yaml", "--out-dir", OUT]
    return root, env, cmd, run_cmd(cmd, root, env, timeout=1500)


def test_study_runs_the_declared_grid_and_writes_its_page(studied):
    root, env, cmd, proc = studied
    assert "phase 1: 1 of 1 cells to run" in proc.stderr and "phase 2: 2 of 2 cells to run" in proc.stderr
    page = (root / OUT / "README.md").read_text()
    for text in (
        "## Test accuracy",
        "| coin | answer | 1 |",
        "| coin | cot[no_hint] | 1 |",
        "## Paired tests against the answer-only baseline",
        "### Teacher levers",
        "torch threads: 1",
        "identical, example for example",
    ):
        assert text in page, text
    assert "Missing cells" not in page
    assert (root / OUT / "accuracy_coin.png").stat().st_size > 1000
    # the later teacher mode found the answer and gold students in DVC's run cache
    logs = run_cmd([venv_bin("dvc"), "queue", "logs", "tiny-coin-no_hint-s0"], root, env).stdout
    assert "Stage 'train@answer' is cached" in logs and "Running stage 'train@cot'" in logs
    # a rerun finds every cell finished and runs nothing
    again = run_cmd(cmd, root, env)
    assert "phase 1: 0 of 1 cells to run" in again.stderr and "phase 2: 0 of 2 cells to run" in again.stderr


def test_a_cell_reruns_from_a_clean_clone_and_matches_its_committed_outcomes(studied, tmp_path):
    root, env, _, _ = studied
    cli = venv_bin("cotdistill")
    cells, tables = read(root / OUT)
    rec = cells[CELL]
    assert rec["commit"] == run_cmd(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert {"train/answer", "evaluate/answer", "train/gold", "evaluate/gold", "generate"} <= set(rec["machine"])
    assert rec["machine"]["train/gold"]["threads"] == 1
    assert {k[:2] for k in tables[CELL]} == {(v, s) for v in ("answer", "gold", "cot") for s in ("test", "test_ood")}
    gold = tables[CELL][("gold", "test", "plain")].values()
    assert any(ok for ok, _ in gold) and not all(invalid for _, invalid in gold)  # not a trivial match
    run_cmd([cli, "study", "page", "studies/tiny.yaml", "--out-dir", OUT, "--check"], root, env)
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "the tiny study's page and outcomes"], root, env)

    work = tmp_path / "work"
    proc = run_cmd(
        [
            cli,
            "study",
            "rerun-cell",
            "studies/tiny.yaml",
            CELL,
            "--out-dir",
            OUT,
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
    lines = [json.loads(x) for x in (root / OUT / OUTCOMES).read_text().splitlines()]
    edit = next(x for x in lines if x.get("variant") == "gold" and x.get("split") == "test")
    edit["correct"] = ("1" if edit["correct"][0] == "0" else "0") + edit["correct"][1:]
    from cotdistill.study.grid import load_grid

    cell = next(c for c in load_grid(root / "studies/tiny.yaml", {}, check_cells=False).cells() if c.name == CELL)
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
    assert json.loads((root / OUT / CELLS).read_text())["study"] == "tiny"
