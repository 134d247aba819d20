"""The train stage as a process: resume after kill -9, two-process DDP (gloo) through
`accelerate launch`, LoRA adapters on the stage path, and the gold variant."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cotdistill.prepare.datasets.synthetic import coin_flip_example
from cotdistill.train.variants import SETTINGS_FILE, VARIANTS, variant_rows

from .conftest import REPO, run_cmd, venv_bin


def write_inputs(root: Path, n_train: int = 48, model: str = "t5-mini", **train) -> Path:
    """Tiny prepared + per-variant target folders (cot = the gold rationales, and the
    multitask rows built on them) and a params file (t5-mini); returns the params path."""
    rng = random.Random(0)
    rows = {
        s: [{"id": f"{s}-{i}", **coin_flip_example(rng, rng.randint(2, 3))} for i in range(n)]
        for s, n in (("train", n_train), ("validation", 8))
    }
    for split, rs in rows.items():
        gold = variant_rows("gold", rs, [])
        for folder, recs in (
            ("prepared", rs),
            ("filtered/answer", variant_rows("answer", rs, [])),
            ("filtered/gold", gold),
            ("filtered/cot", gold),
            ("filtered/multitask", variant_rows("multitask", rs, gold)),
        ):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (root / "filtered/multitask" / SETTINGS_FILE).write_text(
        json.dumps(VARIANTS.get("multitask").settings(SimpleNamespace(multitask_alpha=0.5)))
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = model
    params["train"].update(
        dict(max_steps=10, batch_size=8, save_steps=5, eval_steps=5, logging_steps=1, system_metrics=False), **train
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


def train_args(root: Path, variant: str = "cot") -> list[str]:
    return [
        "--params",
        str(root / "params.yaml"),
        "--variant",
        variant,
        "--prepared",
        str(root / "prepared"),
        "--data",
        str(root / "filtered" / variant),
        "--out",
        str(root / "models" / variant),
        "--metrics",
        str(root / "metrics" / f"{variant}.json"),
        "--curve",
        str(root / "metrics" / f"{variant}_curve.csv"),
        "--checkpoints",
        str(root / "ckpt"),
        "--timings",
        str(root / "timings" / f"{variant}.json"),
    ]


def timings(root: Path, variant: str = "cot") -> dict:
    """How the train stage's last run went (wall seconds, the step it resumed from)."""
    return json.loads((root / "timings" / f"{variant}.json").read_text())


def env_for(root: Path) -> dict:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PYTHONPATH": str(REPO / "src"),
        "OMP_NUM_THREADS": "1",
        "COTDISTILL_LOG": "WARNING",
    }


def mlflow_runs(root: Path) -> list:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps])


@pytest.mark.slow
@pytest.mark.parametrize("model, lora", [("t5-mini", False), ("llama-tiny", True)])
def test_killed_train_stage_resumes_from_its_checkpoint(tmp_path, model, lora):
    write_inputs(tmp_path, max_steps=60, save_steps=4, eval_steps=60, logging_steps=2, model=model, lora=lora)
    cmd = [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env={**os.environ, **env_for(tmp_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    try:
        # Wait for the second complete checkpoint (trainer_state.json is written last).
        while time.time() < deadline and len(list((tmp_path / "ckpt").glob("*/checkpoint-*/trainer_state.json"))) < 2:
            assert proc.poll() is None, "the train stage ended before it was killed"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "models" / "cot").exists()  # nothing half-written
    done = (tmp_path / "ckpt").glob("*/checkpoint-*/trainer_state.json")
    killed_at = max(int(p.parent.name.split("-")[1]) for p in done)
    # Rerun the same stage with the same params, as `dvc repro` would.
    run_cmd(
        [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path)],
        cwd=tmp_path,
        env=env_for(tmp_path),
        timeout=600,
    )
    m = json.loads((tmp_path / "metrics" / "cot.json").read_text())
    assert timings(tmp_path)["resumed_from_step"] >= killed_at > 0 and m["steps"] == 60
    assert "resumed_from_step" not in m and "wall_s" not in m  # how the run went is no outcome
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    assert (tmp_path / "models" / "cot" / weights).exists()
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())
    runs = mlflow_runs(tmp_path)  # the killed run was reopened, not duplicated
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    import mlflow

    steps = [x.step for x in mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "train/loss")]
    assert min(steps) < killed_at < max(steps)


@pytest.mark.slow
@pytest.mark.parametrize("model, variant", [("t5-mini", "answer"), ("llama-tiny", "multitask")])
def test_two_processes_train_one_model_under_accelerate(tmp_path, model, variant):
    write_inputs(tmp_path, max_steps=6, save_steps=3, eval_steps=3, system_metrics=True, model=model)
    with socket.socket() as s:  # a free rendezvous port, so parallel test runs do not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        venv_bin("accelerate"),
        "launch",
        "--config_file",
        str(REPO / "configs/accelerate/cpu_2proc.yaml"),
        "--main_process_port",
        str(port),
        str(REPO / "stages/train.py"),
        *train_args(tmp_path, variant),
    ]
    run_cmd(cmd, cwd=tmp_path, env=env_for(tmp_path), timeout=600)
    m = json.loads((tmp_path / "metrics" / f"{variant}.json").read_text())
    assert m["world_size"] == 2 and m["replicas_identical"] is True and m["steps"] == 6
    runs = mlflow_runs(tmp_path)  # only rank 0 logs
    assert len(runs) == 1 and runs[0].data.metrics["train/world_size"] == 2
    metrics = runs[0].data.metrics
    assert "train/eval_loss" in metrics and "train/learning_rate" in metrics
    assert any(k.startswith("system/") for k in metrics)  # MLflow system metrics were on


@pytest.mark.slow
def test_stage_trains_gold_variant_with_4bit_lora_adapters(tmp_path):
    write_inputs(
        tmp_path,
        max_steps=4,
        save_steps=4,
        eval_steps=4,
        lora=True,
        quantization="4bit",
        optimizer="paged_adamw_8bit",
        log_model=True,
    )
    run_cmd(
        [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path, "gold")],
        cwd=tmp_path,
        env=env_for(tmp_path),
        timeout=600,
    )
    out = tmp_path / "models" / "gold"
    m = json.loads((tmp_path / "metrics" / "gold.json").read_text())
    assert m["saved_as"] == "adapter" and m["trainable_params_m"] < 0.1 < 0.8 < m["params_m"]
    assert (out / "adapter_config.json").exists() and (out / "base" / "config.json").exists()
    from cotdistill.train.students.t5 import load_trained

    model = load_trained(out)
    assert type(model).__name__ == "PeftModelForSeq2SeqLM"
    assert model.base_model.model.is_loaded_in_4bit
    import mlflow

    (run,) = mlflow_runs(tmp_path)  # train.log_model: the folder is also an MLflow artifact
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "model")}
    assert {"model/adapter_config.json", "model/run.json", "model/base"} <= logged


def test_report_reads_a_folder_of_evaluations_for_the_current_variants(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["variants"] = ["answer", "gold"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    m = {"accuracy": 0.5, "ci95_low": 0.4, "ci95_high": 0.6, "n": 10, "invalid_rate": 0.0}
    ev = tmp_path / "evaluate"
    ev.mkdir()
    for v in ("answer", "cot", "gold"):  # cot is stale: no longer in train.variants
        (ev / f"{v}.json").write_text(json.dumps({"variant": v, "id": m}))
    (tmp_path / "filter.json").write_text(
        json.dumps({"kept": 1, "generations": 2, "keep_rate": 0.5, "dropped_by_reason": {"wrong_answer": 1}})
    )
    run_cmd(
        [
            sys.executable,
            str(REPO / "stages/report.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--evaluations",
            str(ev),
            "--filter-metrics",
            str(tmp_path / "filter.json"),
            "--out",
            str(tmp_path / "report.md"),
        ],
        cwd=tmp_path,
        env=env_for(tmp_path),
    )
    report = (tmp_path / "report.md").read_text()
    assert "| answer |" in report and "| gold |" in report and "| cot |" not in report


def write_test_split(root: Path, n: int = 6) -> None:
    rng = random.Random(1)
    for split in ("test", "test_ood"):
        rows = [{"id": f"{split}-{i}", **coin_flip_example(rng, rng.randint(2, 3))} for i in range(n)]
        (root / "prepared" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["t5-mini", "llama-tiny"])
def test_multitask_student_trains_and_is_scored_on_both_tasks(tmp_path, model):
    write_inputs(tmp_path, max_steps=4, save_steps=4, eval_steps=4, model=model)
    write_test_split(tmp_path)
    run_cmd(
        [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path, "multitask")],
        cwd=tmp_path,
        env=env_for(tmp_path),
        timeout=600,
    )
    run = json.loads((tmp_path / "models" / "multitask" / "run.json").read_text())
    assert run["multitask_alpha"] == 0.5 and run["architecture"] == ("causal" if model == "llama-tiny" else "t5")
    assert json.loads((tmp_path / "metrics" / "multitask.json").read_text())["train_examples"] == 48
    run_cmd(
        [
            sys.executable,
            str(REPO / "stages/evaluate.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--variant",
            "multitask",
            "--model",
            str(tmp_path / "models" / "multitask"),
            "--prepared",
            str(tmp_path / "prepared"),
            "--out",
            str(tmp_path / "eval"),
            "--metrics",
            str(tmp_path / "metrics" / "evaluate.json"),
        ],
        cwd=tmp_path,
        env=env_for(tmp_path),
        timeout=600,
    )
    m = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert m["id"]["n"] == m["rationale"]["id"]["n"] == m["rationale"]["ood"]["n"] == 6
    label = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    rationale = (tmp_path / "eval" / "rationale_predictions.jsonl").read_text().splitlines()
    assert len(label) == len(rationale) == 12
    (r,) = mlflow_runs(tmp_path)  # one run: training, the label task's and the rationale task's accuracy
    assert {"id/accuracy", "rationale/id/accuracy", "rationale/ood/accuracy", "train/loss"} <= set(r.data.metrics)
    assert r.data.params["train.multitask_alpha"] == "0.5" and r.data.tags["student"] == model
