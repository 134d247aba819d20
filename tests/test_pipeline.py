"""End to end: the real stage commands through `dvc repro` on a tiny configuration.

Runs in a temporary copy of the repository (its own git + DVC repo and MLflow store),
then checks the no-op rerun, a change that must rerun only evaluate, and a queued
two-model sweep that lands in `dvc exp show` and in MLflow.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, run_cmd, venv_bin

pytestmark = pytest.mark.slow

TINY = {
    "model": "t5-mini",
    "prepare": {"n_train": 12, "n_validation": 4, "n_test": 8, "n_test_ood": 8},
    "generate": {"batch_size": 8, "max_new_tokens": 48, "shots": 2},
    "train": {"max_steps": 6, "eval_steps": 3, "save_steps": 3, "logging_steps": 1},
    "evaluate": {"max_new_tokens": 40},
}


def _deep_update(d, u):
    for k, v in u.items():
        if isinstance(v, dict):
            _deep_update(d.setdefault(k, {}), v)
        else:
            d[k] = v
    return d


def _ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


def _copy_repo(root: Path) -> tuple[Path, dict]:
    """A copy of the repository as a fresh git + DVC repo with the TINY params, nothing run."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest)
    for stale in ("dvc.lock",):
        (root / stale).unlink(missing_ok=True)
    shutil.rmtree(root / "metrics", ignore_errors=True)
    params = _deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        "PATH": f"{Path(venv_bin('dvc')).parent}:{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(var, None)
    run_cmd(["git", "init", "-q", "-b", "main"], root, env)
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "tiny"], root, env)
    return root, env


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    return _copy_repo(tmp_path_factory.mktemp("e2e") / "repo")


def _mlflow_runs(root: Path) -> list[dict]:
    db = sqlite3.connect(root / "mlflow.db")
    runs = {}
    for run_uuid, key, value in db.execute("SELECT run_uuid, key, value FROM tags"):
        runs.setdefault(run_uuid, {})[key] = value
    for run_uuid, key, value in db.execute("SELECT run_uuid, key, value FROM latest_metrics"):
        runs.setdefault(run_uuid, {})["metric:" + key] = value
    for run_uuid, key, value in db.execute("SELECT run_uuid, key, value FROM params"):
        runs.setdefault(run_uuid, {})["param:" + key] = value
    return list(runs.values())


def test_repro_runs_every_stage(tiny_repo):
    root, env = tiny_repo
    proc = run_cmd([venv_bin("dvc"), "repro"], root, env)
    assert _ran(proc.stdout) == {"check", "prepare", "generate", "filter", "train@answer", "train@cot",
                                 "evaluate@answer", "evaluate@cot", "report"}
    prep = json.loads((root / "metrics/prepare.json").read_text())
    assert prep["n_train"] == 12 and prep["n_test_ood"] == 8
    gen = json.loads((root / "metrics/generate.json").read_text())
    assert gen["requests"] == 16 and gen["requests_sent"] + gen["cache_hits"] == 16
    assert gen["generations"]["completion_tokens"] > 0 and gen["generations"]["backend"] == "hf"
    filt = json.loads((root / "metrics/filter.json").read_text())
    assert filt["kept"] + filt["dropped"] == filt["generations"] == 12
    for variant in ("answer", "cot"):
        m = json.loads((root / f"metrics/evaluate/{variant}.json").read_text())
        assert m["id"]["n"] == 8 and m["ood"]["n"] == 8 and 0 <= m["id"]["accuracy"] <= 1
        assert (root / f"models/{variant}/config.json").exists()
        preds = (root / f"data/eval/{variant}/predictions.jsonl").read_text().splitlines()
        assert len(preds) == 16
        assert json.loads((root / f"metrics/train/{variant}.json").read_text())["steps"] == 6
    report = (root / "metrics/report.md").read_text()
    assert "| coin_flip | answer |" in report and "| coin_flip | cot |" in report
    runs = _mlflow_runs(root)
    assert sorted(r["variant"] for r in runs) == ["answer", "cot"]
    for r in runs:
        assert r["dvc_experiment"] == "workspace" and r["dataset"] == "coin_flip"
        assert r["student"] == "t5-mini" and r["teacher"] == "smollm2-135m"
        assert re.fullmatch(r"[0-9a-f]{40}", r["git_commit"])
        assert "metric:id/accuracy" in r and "metric:train/loss" in r and r["param:train.max_steps"] == "6"
    assert not (root / ".cache/checkpoints").exists() or not any((root / ".cache/checkpoints").iterdir())


def test_second_repro_is_a_noop(tiny_repo):
    root, env = tiny_repo
    start = time.perf_counter()
    proc = run_cmd([venv_bin("dvc"), "repro"], root, env)
    assert _ran(proc.stdout) == {"check"}  # it validates params.yaml on every run; its output is unchanged
    assert "Stage 'prepare' didn't change, skipping" in proc.stdout
    assert time.perf_counter() - start < 30


def test_evaluate_param_reruns_only_evaluate(tiny_repo):
    root, env = tiny_repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"]["max_new_tokens"] = 32
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_cmd([venv_bin("dvc"), "repro"], root, env)
    ran = _ran(proc.stdout)
    assert {"check", "evaluate@answer", "evaluate@cot"} <= ran <= {"check", "evaluate@answer", "evaluate@cot", "report"}
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "baseline run"], root, env)


@pytest.fixture(scope="module")
def bare_repo(tmp_path_factory):
    """A second copy for the tests that only need the first stages."""
    return _copy_repo(tmp_path_factory.mktemp("e2e-bare") / "repo")


def _set(root: Path, **sections) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(_deep_update(params, sections), sort_keys=False))


@pytest.mark.parametrize("patch, line", [
    ({"sedd": 1}, "params.yaml: unknown key 'sedd' (did you mean 'seed'?)"),
    ({"train": {"max_step": 5}}, "params.yaml: unknown key 'train.max_step' (did you mean 'max_steps'?)"),
    ({"dataset": "coinflip"}, "params.yaml: dataset: unknown dataset 'coinflip' (did you mean 'coin_flip'?)"),
    ({"generate": {"num_samples": 2}}, "params.yaml: generate.num_samples: 2 samples at generate.temperature 0"),
])
def test_any_mistake_in_params_stops_repro_at_the_first_stage(bare_repo, patch, line):
    root, env = bare_repo
    saved = (root / "params.yaml").read_text()
    try:
        _set(root, **patch)
        proc = run_cmd([venv_bin("dvc"), "repro"], root, env, check=False)
    finally:
        (root / "params.yaml").write_text(saved)
    assert proc.returncode != 0
    assert _ran(proc.stdout) == {"check"}
    errors = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: " + line)


def test_an_edit_to_the_local_data_file_reruns_prepare(bare_repo):
    root, env = bare_repo
    rows = [{"question": f"Ann has {i} pens and buys {i + 2} more. How many pens does she have?",
             "answer": str(2 * i + 2)} for i in range(40)]
    data = root / "local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    saved = (root / "params.yaml").read_text()
    _set(root, dataset="svamp", prepare={"source": "local", "local": {"path": "local.jsonl"}})
    try:
        dvc = venv_bin("dvc")
        assert _ran(run_cmd([dvc, "repro", "prepare"], root, env).stdout) == {"check", "prepare"}
        assert _ran(run_cmd([dvc, "repro", "prepare"], root, env).stdout) == {"check"}
        data.write_text(data.read_text().replace("Ann has", "Bob has"))
        assert _ran(run_cmd([dvc, "repro", "prepare"], root, env).stdout) == {"check", "prepare"}
        assert "Bob has" in (root / "data/prepared/train.jsonl").read_text()
    finally:
        (root / "params.yaml").write_text(saved)


def test_queued_sweep_lands_in_dvc_and_mlflow(tiny_repo):
    root, env = tiny_repo
    dvc = venv_bin("dvc")
    run_cmd([dvc, "exp", "run", "--queue", "-S", "model=t5-mini,t5-tiny", "-S", "train.max_steps=4"], root, env)
    run_cmd([dvc, "queue", "start", "-j", "1"], root, env)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = run_cmd([dvc, "queue", "status"], root, env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    shown = json.loads(run_cmd([dvc, "exp", "show", "--json"], root, env).stdout)
    exps = [e for entry in shown for e in (entry.get("experiments") or [])]
    models = set()
    names = set()
    for exp in exps:
        for rev in exp["revs"]:
            data = rev.get("data") or {}
            p = data.get("params", {}).get("params.yaml", {}).get("data", {})
            if p.get("train", {}).get("max_steps") == 4:
                models.add(p["model"])
                names.add(rev["name"])
                assert "metrics/evaluate/cot.json" in data.get("metrics", {})
    assert models == {"t5-mini", "t5-tiny"}
    swept = [r for r in _mlflow_runs(root) if r.get("dvc_experiment") in names]
    assert sorted((r["student"], r["variant"]) for r in swept) == [
        ("t5-mini", "answer"), ("t5-mini", "cot"), ("t5-tiny", "answer"), ("t5-tiny", "cot")]
    assert all("metric:ood/accuracy" in r for r in swept)


STUDY = {
    "name": "tiny",
    "description": "A smoke study of the pipeline's own machinery.",
    "seeds": [0],
    "threads": 1,
    "jobs": 1,
    "params": {"train.max_steps": 4},
    "tasks": {"coin": {"dataset": "coin_flip"}},
    "variants": ["answer", "gold", "cot"],
    "teachers": {"hint": {"generate.answer_hint": True}, "no_hint": {"generate.answer_hint": False}},
    "levers": {"k2": {"generate.num_samples": 2, "generate.temperature": 0.7}},
    "lever_questions": 4,
}


def test_study_runs_the_declared_grid_and_writes_its_page(tiny_repo):
    root, env = tiny_repo
    (root / "studies").mkdir(exist_ok=True)
    (root / "studies/tiny.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "tiny study"], root, env)
    cmd = [venv_bin("cotdistill"), "study", "studies/tiny.yaml", "--out-dir", "metrics/study_tiny"]
    proc = run_cmd(cmd, root, env, timeout=1500)
    assert "phase 1: 1 of 1 cells to run" in proc.stderr and "phase 2: 2 of 2 cells to run" in proc.stderr
    page = (root / "metrics/study_tiny/README.md").read_text()
    for text in ("## Test accuracy", "| coin | answer | 1 |", "| coin | cot[no_hint] | 1 |",
                 "## Paired tests against the answer-only baseline", "### Teacher levers",
                 "torch threads: 1", "identical, example for example"):
        assert text in page, text
    assert "Missing cells" not in page
    assert (root / "metrics/study_tiny/accuracy_coin.png").stat().st_size > 1000
    # the later teacher mode found the answer and gold students in DVC's run cache
    logs = run_cmd([venv_bin("dvc"), "queue", "logs", "tiny-coin-no_hint-s0"], root, env).stdout
    assert "Stage 'train@answer' is cached" in logs and "Running stage 'train@cot'" in logs
    # a rerun finds every cell finished and runs nothing
    again = run_cmd(cmd, root, env)
    assert "phase 1: 0 of 1 cells to run" in again.stderr and "phase 2: 0 of 2 cells to run" in again.stderr


def test_causal_student_and_multitask_run_through_repro(tiny_repo):
    """The tiny Llama-config student through the real stages, with the multitask variant:
    the teacher's CoTs are reused, every student variant trains and is evaluated."""
    root, env = tiny_repo
    saved = (root / "params.yaml").read_text()
    _set(root, model="llama-tiny", train={"variants": ["answer", "cot", "multitask"], "max_steps": 6})
    try:
        proc = run_cmd([venv_bin("dvc"), "repro"], root, env)
    finally:
        (root / "params.yaml").write_text(saved)
    ran = _ran(proc.stdout)
    students = {f"{s}@{v}" for s in ("train", "evaluate") for v in ("answer", "cot", "multitask")}
    assert students | {"check", "filter", "report"} <= ran and "generate" not in ran
    assert json.loads((root / "data/filtered/multitask/tasks.json").read_text())["alpha"] == 0.5
    for variant in ("answer", "cot", "multitask"):
        run = json.loads((root / f"models/{variant}/run.json").read_text())
        assert run["architecture"] == "causal" and run["model"] == "llama-tiny"
        m = json.loads((root / f"metrics/evaluate/{variant}.json").read_text())
        assert m["id"]["n"] == 8 and m["ood"]["n"] == 8
    multitask = json.loads((root / "metrics/evaluate/multitask.json").read_text())
    assert multitask["rationale"]["id"]["n"] == 8
    report = (root / "metrics/report.md").read_text()
    assert "student llama-tiny" in report and "| coin_flip | multitask | rationale |" in report
    assert "| multitask | answer |" in report or "| answer | multitask |" in report  # paired tests
    runs = [r for r in _mlflow_runs(root) if r.get("student") == "llama-tiny"]
    assert sorted(r["variant"] for r in runs) == ["answer", "cot", "multitask"]
    assert all("metric:id/accuracy" in r for r in runs)
    assert any("metric:rationale/id/accuracy" in r for r in runs)
