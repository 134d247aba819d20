"""The evaluate and report stages on a number-answer dataset: both decoding modes, the
metrics file, MLflow, the report table, and `cotdistill report --experiments --source mlflow`."""

import json
import random

import pytest
import torch
import yaml

from cotdistill.train.students.toy import addition_pair, toy_arithmetic_student

from .conftest import REPO, run_cmd, venv_bin

pytestmark = pytest.mark.slow


def test_evaluate_and_report_stages(tmp_path, python):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1", "DVC_EXP_NAME": "exp-a"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = toy_arithmetic_student()
    finally:
        torch.set_num_threads(threads)
    import os

    from cotdistill.core import tracking

    os.environ.update(env)
    try:
        run_id = tracking.start_run(
            "cot", {"model": "t5-mini", "prepare.n_train": 64}, {"dataset": "arith", "student": "t5-mini"}
        )
    finally:
        for k in env:
            os.environ.pop(k, None)
    model_dir = tmp_path / "models/cot"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    (model_dir / "run.json").write_text(
        json.dumps({"mlflow_run_id": run_id, "resolved_train": {"max_source_length": 64}})
    )
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    rng = random.Random(7)
    for stem, n in (("test", 10), ("test_ood", 6)):
        rows = []
        for i in range(n):
            q, t = addition_pair(rng)
            rows.append(
                {"id": f"{stem}-{i}", "question": q, "answer": t.rsplit(" ", 1)[1].rstrip("."), "answer_type": "number"}
            )
        (prepared / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"].update(max_new_tokens=24, batch_size=4)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    run_cmd(
        [
            python,
            str(REPO / "stages/evaluate.py"),
            "--params",
            "params.yaml",
            "--variant",
            "cot",
            "--model",
            str(model_dir),
            "--prepared",
            str(prepared),
            "--out",
            "eval/cot",
            "--metrics",
            "metrics/evaluate/cot.json",
        ],
        tmp_path,
        env,
    )
    m = json.loads((tmp_path / "metrics/evaluate/cot.json").read_text())
    assert m["variant"] == "cot" and m["id"]["n"] == 10 and m["ood"]["n"] == 6
    assert m["calculator"]["id"]["n"] == 10 and "changed_outputs" in m["calculator"]["ood"]
    preds = [json.loads(line) for line in (tmp_path / "eval/cot/predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 32 and sum(p["calculator"] for p in preds) == 16

    # a second variant, answer-only style, to compare against
    (tmp_path / "eval/answer").mkdir(parents=True)
    ans = [{**p, "output": p["gold"], "extracted": p["gold"], "correct": True} for p in preds if not p["calculator"]]
    (tmp_path / "eval/answer/predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in ans))
    full = {"accuracy": 1.0, "n": 10, "correct": 10, "ci95_low": 0.72, "ci95_high": 1.0, "invalid_rate": 0.0}
    (tmp_path / "metrics/evaluate/answer.json").write_text(
        json.dumps({"variant": "answer", "id": full, "ood": {**full, "n": 6, "correct": 6}})
    )
    (tmp_path / "filter.json").write_text(
        json.dumps({"kept": 1, "generations": 1, "keep_rate": 1.0, "dropped_by_reason": {}})
    )
    run_cmd(
        [
            python,
            str(REPO / "stages/report.py"),
            "--params",
            "params.yaml",
            "--evaluations",
            "metrics/evaluate/answer.json",
            "metrics/evaluate/cot.json",
            "--eval-root",
            "eval",
            "--filter-metrics",
            "filter.json",
            "--out",
            "report.md",
            "--plot-data",
            "plots/accuracy.csv",
        ],
        tmp_path,
        env,
    )
    report = (tmp_path / "report.md").read_text()
    assert "| ID | OOD | ID +calculator | OOD +calculator |" in report
    assert "| answer | cot | test | plain | 10 |" in report and "| cot | cot +calculator | test_ood | - | 6 |" in report
    assert "cot ID +calc" in (tmp_path / "plots/accuracy.csv").read_text()

    out = run_cmd(
        [venv_bin("cotdistill"), "report", "--experiments", "--source", "mlflow", "--out-dir", "exp"], tmp_path, env
    )
    assert "1 (experiment, variant) records from mlflow" in out.stdout
    table = (tmp_path / "exp/experiments.md").read_text()
    acc = f"{100 * m['id']['accuracy']:.1f}"
    assert f"| exp-a | arith | t5-mini | 1.1 | 64 |  | cot | {acc} |" in table
    assert (tmp_path / "exp/accuracy_vs_train_size.png").exists()
