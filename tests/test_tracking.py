"""What the MLflow UI reads from the runs (tracking.py): the experiment's kind, the source
tags, the dataset inputs with DVC's hashes, and one parent run per DVC experiment.

Each test logs into its own SQLite store from inside a small git repository of its own.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from cotdistill.core import tracking
from cotdistill.core.io import dvc_md5

from .conftest import run_cmd, venv_bin

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A committed git repository with a dvc.yaml, a stage script and data, as cwd, and
    its own MLflow store."""
    root = tmp_path / "repo"
    (root / "stages").mkdir(parents=True)
    (root / "stages/train.py").write_text("print('train')\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: [a]\n    do:\n      cmd: python stages/train.py\n      outs:\n"
        "        - models/${item}\n      metrics:\n        - metrics/train/${item}.json:\n            cache: false\n"
    )
    (root / "params.yaml").write_text("model: t5-mini\n")
    (root / "data/cot").mkdir(parents=True)
    (root / "data/cot/train.jsonl").write_text('{"question": "q", "target": "t"}\n')
    (root / "data/cot/validation.jsonl").write_text('{"question": "v", "target": "t"}\n')
    (root / "data/test.jsonl").write_text('{"question": "q2"}\n')
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        run_cmd(["git", *args], root, GIT_ENV)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for var in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.argv", [str(root / "stages/train.py")])
    return root


def _client():
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    return mlflow.MlflowClient()


def test_the_experiment_opens_on_its_runs(repo):
    tracking.start_run("cot", {"model": "t5-mini"}, {})
    client = _client()
    assert client.get_experiment_by_name("cotdistill").tags["mlflow.experimentKind"] == "custom_model_development"
    # an experiment someone set to another kind keeps it
    client.set_experiment_tag(
        client.get_experiment_by_name("cotdistill").experiment_id, "mlflow.experimentKind", "genai_development"
    )
    tracking.start_run("answer", {"model": "t5-mini"}, {})
    assert client.get_experiment_by_name("cotdistill").tags["mlflow.experimentKind"] == "genai_development"
    exp_id = client.get_experiment_by_name("cotdistill").experiment_id
    assert tracking.ui_url() == f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning"


def test_source_tags_name_the_script_stage_commit_and_a_dirty_tree(repo, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@cot")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    tags = tracking.source_tags()
    assert tags == {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": "stages/train.py",
        "mlflow.project.entryPoint": "train@cot",
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.dirty": "false",
    }
    # what the pipeline writes itself (params from -S, dvc.lock, cache: false outputs) is not a dirty tree
    (repo / "params.yaml").write_text("model: t5-tiny\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    (repo / "metrics/train").mkdir(parents=True)  # a folder git does not know yet, as after a first repro
    (repo / "metrics/train/a.json").write_text('{"steps": 3}\n')
    assert tracking.source_tags()["mlflow.source.git.dirty"] == "false"
    # code that is not in the commit is
    (repo / "stages/train.py").write_text("print('changed')\n")
    (repo / "stages/new.py").write_text("")
    tags = tracking.source_tags()
    assert tags["mlflow.source.git.dirty"] == "true" and tags["git_dirty_files"] == "stages/train.py, stages/new.py"
    run = _client().get_run(tracking.start_run("cot", {}, {}))
    assert run.data.tags["mlflow.source.git.dirty"] == "true"
    assert run.data.tags["mlflow.source.name"] == "stages/train.py"


def test_dvc_md5_is_the_hash_in_dvc_lock(tmp_path):
    (tmp_path / "d/sub").mkdir(parents=True)
    (tmp_path / "d/x.jsonl").write_text("a\n")
    (tmp_path / "d/sub/y.txt").write_bytes(b"b\r\n")  # no dos2unix in DVC 3
    (tmp_path / "d/B.txt").write_text("c\n")
    (tmp_path / "f.txt").write_text("f\n")
    run_cmd(["git", "init", "-q"], tmp_path)
    run_cmd([venv_bin("dvc"), "init", "-q"], tmp_path)
    run_cmd([venv_bin("dvc"), "add", "-q", "d", "f.txt"], tmp_path)
    import yaml

    for name in ("d", "f.txt"):
        assert dvc_md5(tmp_path / name) == yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]


def test_a_run_names_its_data_with_dvc_hashes(repo):
    run_id = tracking.start_run(
        "cot", {}, {}, datasets=[tracking.DataInput("coin_flip/cot", "data/cot", "train", {"train_rows": 1})]
    )
    tracking.log_inputs(run_id, [tracking.DataInput("coin_flip/test", "data/test.jsonl", "test", {"rows": 1})])
    inputs = _client().get_run(run_id).inputs.dataset_inputs
    got = {(i.dataset.name, i.dataset.digest, i.tags[0].value, json.loads(i.dataset.source)["uri"]) for i in inputs}
    assert got == {
        ("coin_flip/cot", dvc_md5("data/cot"), "train", "data/cot"),
        ("coin_flip/test", dvc_md5("data/test.jsonl"), "test", "data/test.jsonl"),
    }
    assert dvc_md5("data/cot").endswith(".dir") and len(dvc_md5("data/cot")) == 36  # MLflow's digest column: 36
    # an evaluation rerun logs the same inputs again: no duplicates
    tracking.log_inputs(run_id, [tracking.DataInput("coin_flip/test", "data/test.jsonl", "test", {"rows": 1})])
    assert len(_client().get_run(run_id).inputs.dataset_inputs) == 2


def test_a_dvc_experiment_is_a_parent_run_with_a_child_per_variant(repo, monkeypatch):
    plain = tracking.start_run("cot", {}, {})  # dvc repro: no parent
    assert _client().get_run(plain).data.tags.get("mlflow.parentRunId") is None
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "b" * 40)
    runs = {}
    for exp in ("exp-one", "exp-two"):
        monkeypatch.setenv("DVC_EXP_NAME", exp)
        for variant in ("answer", "cot"):
            runs[exp, variant] = tracking.start_run(variant, {"variant": variant, "model": exp}, {"student": exp})
    client = _client()
    parents = {k: client.get_run(r).data.tags["mlflow.parentRunId"] for k, r in runs.items()}
    assert parents["exp-one", "answer"] == parents["exp-one", "cot"] != parents["exp-two", "cot"]
    parent = client.get_run(parents["exp-one", "cot"])
    assert parent.info.run_name == "exp-one" and parent.info.status == "FINISHED"
    assert parent.data.tags["run_role"] == "experiment" and parent.data.params == {"model": "exp-one"}
    tracking.log_metrics(runs["exp-one", "cot"], {"id/accuracy": 0.5})
    tracking.log_to_group(runs["exp-one", "cot"], "cot", {"id/accuracy": 0.5})
    assert client.get_run(parents["exp-one", "cot"]).data.metrics == {"cot/id/accuracy": 0.5}


_OPEN_AT_ONCE = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
from cotdistill.core import tracking
_, client = tracking._client()
print(len(client.search_experiments()))
"""


def test_queued_experiments_that_create_the_store_at_once_all_open_it(tmp_path):
    """Two queued experiments on a repository without mlflow.db once both ran MLflow's
    schema migrations and one died ("Online migration expected to match one row")."""
    go = tmp_path / "go"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, str(go)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    time.sleep(3)  # every process is waiting for the word, mlflow not yet imported
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in results if err]
