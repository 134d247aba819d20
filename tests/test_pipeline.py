"""End to end: the real stage commands through `dvc repro` on a tiny configuration.

Runs in a temporary copy of the repository (its own git + DVC repo and MLflow store),
then checks the no-op rerun, a change that must rerun only evaluate, and a queued
two-model sweep that lands in `dvc exp show` and in MLflow. The Hub and GGUF students are
in test_pipeline_students.py and the studies in test_study_pipeline.py, each on a copy of
its own, so that the three run side by side.
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
    # one torch thread: the stages of tests that run side by side do not fight over the cores
    "threads": 1,
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
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
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
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
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
    for run_uuid, r in runs.items():
        r["run_uuid"] = run_uuid
    return list(runs.values())


def _run_variants(root: Path) -> dict[str, str]:
    db = sqlite3.connect(root / "mlflow.db")
    return dict(db.execute("SELECT run_uuid, value FROM tags WHERE key = 'variant'"))


def _inputs(root: Path, run_id: str) -> set[tuple[str, str, str]]:
    """(dataset name, context, digest) of a run's dataset inputs."""
    db = sqlite3.connect(root / "mlflow.db")
    return set(
        db.execute(
            "SELECT d.name, t.value, d.digest FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
            "JOIN input_tags t ON t.input_uuid = i.input_uuid AND t.name = 'mlflow.data.context' "
            "WHERE i.destination_id = ?",
            (run_id,),
        )
    )


def test_repro_runs_every_stage(tiny_repo):
    root, env = tiny_repo
    proc = run_cmd([venv_bin("dvc"), "repro"], root, env)
    assert _ran(proc.stdout) == {
        "check",
        "prepare",
        "generate",
        "filter",
        "train@answer",
        "train@cot",
        "evaluate@answer",
        "evaluate@cot",
        "report",
    }
    prep = json.loads((root / "metrics/prepare.json").read_text())
    assert prep["n_train"] == 12 and prep["n_test_ood"] == 8
    gen = json.loads((root / "metrics/generate.json").read_text())
    assert gen["requests"] == 16 and gen["generations"]["completion_tokens"] > 0
    assert gen["generations"]["backend"] == "hf"
    assert gen["machine"]["float_paths"] == "portable" and gen["machine"]["cpu_capability"] == "AVX2"
    # how the run went is kept apart from what it made
    costs = json.loads((root / "timings/generate.json").read_text())
    assert costs["requests_sent"] + costs["cache_hits"] == 16 and "cache_hits" not in gen
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
        # what the MLflow UI's Source and Version columns read; a plain `dvc repro` has no parent run
        assert r["mlflow.source.name"] == "stages/train.py" and r["mlflow.source.git.commit"] == r["git_commit"]
        assert r["mlflow.project.entryPoint"] == f"train@{r['variant']}" and r["mlflow.source.git.dirty"] == "false"
        assert "mlflow.parentRunId" not in r
    assert not (root / ".cache/checkpoints").exists() or not any((root / ".cache/checkpoints").iterdir())
    # the data each run saw, by the hashes dvc.lock records for its stages' deps
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    md5 = {(stage, d["path"]): d["md5"] for stage, spec in lock.items() for d in spec.get("deps", [])}
    for run_id, variant in _run_variants(root).items():
        assert _inputs(root, run_id) == {
            ("coin_flip/" + variant, "train", md5[f"train@{variant}", f"data/filtered/{variant}"]),
            ("coin_flip/test", "test", md5[f"evaluate@{variant}", "data/prepared/test.jsonl"]),
            ("coin_flip/test_ood", "test_ood", md5[f"evaluate@{variant}", "data/prepared/test_ood.jsonl"]),
        }
    db = sqlite3.connect(root / "mlflow.db")
    assert db.execute("SELECT value FROM experiment_tags WHERE key = 'mlflow.experimentKind'").fetchall() == [
        ("custom_model_development",)
    ]


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


@pytest.mark.parametrize(
    "hub_env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}], ids=["HF_HUB_OFFLINE", "unreachable"]
)
def test_a_hub_preset_offline_fails_in_one_line_before_any_output_is_removed(tiny_repo, tmp_path, hub_env):
    """The README's headline command without the Hub: the check stage stops it, exit code
    2, one line; the outputs of the last run stay in the workspace."""
    root, env = tiny_repo
    kept = {
        p: (root / p).read_bytes()
        for p in (
            "metrics/train/answer.json",
            "metrics/train/answer_curve.csv",
            "data/external_inputs.json",
            "models/answer/config.json",
        )
    }
    saved = (root / "params.yaml").read_text()
    try:
        proc = run_cmd(
            [venv_bin("dvc"), "exp", "run", "-S", "model=t5-small"],
            root,
            {**env, "HF_HOME": str(tmp_path / "hf"), **hub_env},
            check=False,
            timeout=120,
        )
    finally:
        (root / "params.yaml").write_text(saved)  # a workspace exp run writes -S into params.yaml
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and _ran(proc.stdout) == {"check"}
    assert "failed to run: python stages/check.py --out data/external_inputs.json, exited with 2" in out
    errors = [x for x in out.splitlines() if x.startswith("error: ")]
    reason = "HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in hub_env else "cannot connect to http://127.0.0.1:9: "
    assert len(errors) == 1 and errors[0].startswith(
        f"error: model t5-small: checkpoint google/t5-v1_1-small is neither in the local Hugging Face cache "
        f"({tmp_path / 'hf' / 'hub'}) nor reachable ({reason}"
    )
    assert errors[0].endswith(
        "to use a local copy: -S train.model_path=DIR (a save_pretrained folder with its "
        "tokenizer), or HF_HOME=DIR whose hub/ cache holds it"
    )
    assert "Traceback" not in out
    assert all((root / p).read_bytes() == b for p, b in kept.items())


def test_a_mistake_in_params_removes_no_output(tiny_repo):
    """DVC deletes a stage's outputs before it runs it; a mistake in params stops the run
    in the first stage (check), whose own output persists, so every output stays."""
    root, env = tiny_repo
    outputs = [
        "data/external_inputs.json",
        "data/prepared/train.jsonl",
        "data/teacher/generations.jsonl",
        "data/filtered/cot/train.jsonl",
        "models/cot/model.safetensors",
        "data/eval/cot/predictions.jsonl",
        "metrics/report.md",
    ]
    before = {out: (root / out).read_bytes() for out in outputs}
    saved = (root / "params.yaml").read_text()
    try:
        _set(root, train={"max_steps": 0})
        proc = run_cmd([venv_bin("dvc"), "repro"], root, env, check=False)
    finally:
        (root / "params.yaml").write_text(saved)
    assert proc.returncode != 0 and _ran(proc.stdout) == {"check"}
    assert {out: (root / out).read_bytes() if (root / out).exists() else None for out in outputs} == before


@pytest.fixture(scope="module")
def bare_repo(tmp_path_factory):
    """A second copy for the tests that only need the first stages."""
    return _copy_repo(tmp_path_factory.mktemp("e2e-bare") / "repo")


def _set(root: Path, **sections) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(_deep_update(params, sections), sort_keys=False))


@pytest.mark.parametrize(
    "patch, line",
    [
        ({"sedd": 1}, "params.yaml: unknown key 'sedd' (did you mean 'seed'?)"),
        ({"train": {"max_step": 5}}, "params.yaml: unknown key 'train.max_step' (did you mean 'max_steps'?)"),
        ({"dataset": "coinflip"}, "params.yaml: dataset: unknown dataset 'coinflip' (did you mean 'coin_flip'?)"),
        ({"generate": {"num_samples": 2}}, "params.yaml: generate.num_samples: 2 samples at generate.temperature 0"),
    ],
)
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
    rows = [
        {"question": f"Ann has {i} pens and buys {i + 2} more. How many pens does she have?", "answer": str(2 * i + 2)}
        for i in range(40)
    ]
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
    # `cotdistill report --experiments` reads them through the study's reader (dvcexp)
    run_cmd([venv_bin("cotdistill"), "report", "--experiments", "--out-dir", "exps"], root, env)
    reported = json.loads((root / "exps/experiments.json").read_text())
    assert sorted((r["student"], r["variant"]) for r in reported if r["experiment"] in names) == [
        ("t5-mini", "answer"),
        ("t5-mini", "cot"),
        ("t5-tiny", "answer"),
        ("t5-tiny", "cot"),
    ]
    swept = [r for r in _mlflow_runs(root) if r.get("dvc_experiment") in names and r.get("run_role") == "variant"]
    assert sorted((r["student"], r["variant"]) for r in swept) == [
        ("t5-mini", "answer"),
        ("t5-mini", "cot"),
        ("t5-tiny", "answer"),
        ("t5-tiny", "cot"),
    ]
    assert all("metric:ood/accuracy" in r for r in swept)
    # grouped: a parent run per DVC experiment, named after it, with its two variants as children
    parents = {r["run_uuid"]: r for r in _mlflow_runs(root) if r.get("run_role") == "experiment"}
    assert sorted(parents[r["mlflow.parentRunId"]]["dvc_experiment"] for r in swept) == sorted(
        r["dvc_experiment"] for r in swept
    )
    groups = {}
    for r in swept:
        groups.setdefault(r["mlflow.parentRunId"], set()).add(r["variant"])
    assert len(groups) == 2 and all(v == {"answer", "cot"} for v in groups.values())
    for pid in groups:
        assert {"metric:answer/id/accuracy", "metric:cot/ood/accuracy"} <= set(parents[pid])


def _get(url: str, body: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_mlflow_server_serves_what_the_ui_reads(tiny_repo, tmp_path):
    """A real `mlflow server` on the store of the runs above; the UI's own REST calls
    (/ajax-api/2.0/mlflow/...) return the experiment kind, the dataset inputs, the source
    tags, the accuracies and the grouping by DVC experiment."""
    import socket
    import urllib.error
    import urllib.request

    root, env = tiny_repo
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            venv_bin("mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as resp:
                    assert resp.status == 200
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert server.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(1)
        exp = _get(f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=cotdistill")["experiment"]
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in exp["tags"]
        runs = _get(
            f"{base}/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000}
        )["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    by_id = {r["info"]["run_id"]: r for r in runs}
    tags = {rid: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for rid, r in by_id.items()}
    metrics = {rid: {m["key"]: m["value"] for m in r["data"].get("metrics", [])} for rid, r in by_id.items()}
    children = [rid for rid in by_id if tags[rid].get("run_role") == "variant"]
    assert len(children) >= 4
    for rid in children:
        t = tags[rid]
        assert t["mlflow.source.name"] == "stages/train.py"
        assert re.fullmatch(r"[0-9a-f]{40}", t["mlflow.source.git.commit"])
        assert t["mlflow.project.entryPoint"] == f"train@{t['variant']}"
        assert t["mlflow.source.git.dirty"] in ("true", "false")
        assert 0 <= metrics[rid]["id/accuracy"] <= 1 and 0 <= metrics[rid]["ood/accuracy"] <= 1
        inputs = by_id[rid]["inputs"]["dataset_inputs"]
        seen = {
            (
                i["dataset"]["name"],
                {x["key"]: x["value"] for x in i["tags"]}["mlflow.data.context"],
                i["dataset"]["digest"],
            )
            for i in inputs
        }
        assert seen == _inputs(root, rid) and {c for _, c, _ in seen} == {"train", "test", "test_ood"}
    grouped = [rid for rid in children if "mlflow.parentRunId" in tags[rid]]
    assert len(grouped) == 4  # the queued sweep: two experiments x two variants
    for rid in grouped:
        parent = tags[rid]["mlflow.parentRunId"]
        assert tags[parent]["run_role"] == "experiment"
        assert tags[parent]["dvc_experiment"] == tags[rid]["dvc_experiment"]
        assert by_id[parent]["info"]["run_name"] == tags[rid]["dvc_experiment"]
        assert metrics[parent][f"{tags[rid]['variant']}/id/accuracy"] == metrics[rid]["id/accuracy"]


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
    assert json.loads((root / "data/filtered/multitask/tasks.json").read_text())["multitask_alpha"] == 0.5
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
