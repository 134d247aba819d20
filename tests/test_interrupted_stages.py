"""Stages under faults, as processes on 127.0.0.1: kill -9 in train at a random step,
SIGINT in every stage, a kill -9 that leaves an MLflow run behind, a full disk. What
MLflow, the metrics and the workspace say afterwards must be what happened."""

import csv
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cotdistill.prepare.datasets.synthetic import coin_flip_example

from .conftest import REPO, run_cmd
from .fault_helpers import StubTeacher, error_lines, interrupt_when, stage_cmd, stage_env, temp_leftovers
from .test_students_stage import mlflow_runs, timings, train_args, write_inputs

pytestmark = pytest.mark.slow

CURVE_KEYS = ("train/loss", "train/learning_rate", "train/grad_norm", "train/eval_loss")
# What MLflow logs of this process, not of the training: it differs after a resume (the
# metrics file holds none of it: students/job.py TIMING_KEYS go to the timings file).
TIMING = ("resumed_from_step", "wall_s", "train_runtime_s")


def _records(root: Path, variant: str = "cot") -> dict:
    """Everything a train stage leaves: metrics, curve, weights, and its MLflow run."""
    import mlflow

    (run,) = mlflow_runs(root)
    client = mlflow.MlflowClient()
    history = {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)) for k in CURVE_KEYS}
    metrics = json.loads((root / "metrics" / f"{variant}.json").read_text())
    return {
        "status": run.info.status,
        "metrics": metrics,
        "curve": (root / "metrics" / f"{variant}_curve.csv").read_text(),
        "weights": (root / "models" / variant / "model.safetensors").read_bytes(),
        "mlflow_curves": history,
        "mlflow_summary": {
            k: v for k, v in run.data.metrics.items() if k not in CURVE_KEYS and k.removeprefix("train/") not in TIMING
        },
    }


class _StepWatch:
    """The training step a train stage has reached, read from its progress bar on stderr."""

    def __init__(self, proc: subprocess.Popen, max_steps: int):
        self.step, self.text = 0, []
        pattern = re.compile(rf"(\d+)/{max_steps} \[")

        def read():
            for chunk in iter(lambda: proc.stderr.read(256), ""):
                self.text.append(chunk)
                found = pattern.findall(chunk)
                if found:
                    self.step = int(found[-1])

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()


def _train_popen(root: Path, variant: str = "cot") -> subprocess.Popen:
    env = stage_env(root)
    env.pop("TQDM_DISABLE")  # the progress bar tells the step
    return subprocess.Popen(
        stage_cmd("train", train_args(root, variant)),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _train(root: Path, variant: str = "cot") -> subprocess.CompletedProcess:
    return run_cmd(stage_cmd("train", train_args(root, variant)), root, env=stage_env(root), timeout=600)


TRIAL_TRAIN = dict(max_steps=24, save_steps=4, logging_steps=3, eval_steps=10)  # 6 steps an epoch: mid-epoch resumes


def test_kill_9_at_a_random_step_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    """kill -9 at a random step, rerun; metrics, curve, weights and the MLflow run (status,
    every curve point once, summary) equal those of a run never killed. Two trials, the
    step of each drawn at random: one from the steps before the first checkpoint (the rerun
    starts over), one from those after it (the rerun resumes mid-epoch from a checkpoint)."""
    reference = tmp_path / "reference"
    write_inputs(reference, **TRIAL_TRAIN)
    _train(reference)
    expected = _records(reference)
    assert expected["status"] == "FINISHED" and len(expected["mlflow_curves"]["train/loss"]) == 9

    rng = random.Random(20261126)
    first_save = TRIAL_TRAIN["save_steps"]
    windows = [(2, first_save - 1), (first_save + 1, TRIAL_TRAIN["max_steps"] - 2)]
    for trial, (lo, hi) in enumerate(windows):
        root = tmp_path / f"trial{trial}"
        write_inputs(root, **TRIAL_TRAIN)
        kill_at = rng.randint(lo, hi)
        proc = _train_popen(root)
        watch = _StepWatch(proc, TRIAL_TRAIN["max_steps"])
        interrupt_when(proc, lambda: watch.step >= kill_at, sig=signal.SIGKILL)  # noqa: B023  called in this iteration
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not (root / "models/cot").exists() and temp_leftovers(root) == []
        (killed_run,) = mlflow_runs(root)
        assert killed_run.info.status == "RUNNING"  # until a stage finds its process gone
        _train(root)
        got = _records(root)
        resumed_from = timings(root)["resumed_from_step"]
        print(f"trial {trial}: killed at step {watch.step} (asked {kill_at}), resumed from step {resumed_from}")
        for key, value in expected.items():
            assert got[key] == value, f"trial {trial} (killed at step {watch.step}): {key} differs"


def test_a_run_killed_with_kill_9_is_marked_killed_when_inputs_change(tmp_path):
    """kill -9 leaves the run RUNNING; the next train stage, here of other inputs (the
    answer variant), finds its process gone and marks it KILLED: no ghost stays."""
    write_inputs(tmp_path, max_steps=40, save_steps=4, eval_steps=40, logging_steps=2)
    proc = _train_popen(tmp_path)
    watch = _StepWatch(proc, 40)
    interrupt_when(proc, lambda: watch.step >= 6, sig=signal.SIGKILL)
    proc.wait()
    (killed,) = mlflow_runs(tmp_path)
    assert killed.info.status == "RUNNING"
    _train(tmp_path, "answer")
    status = {r.data.tags["variant"]: r.info.status for r in mlflow_runs(tmp_path)}
    assert status == {"cot": "KILLED", "answer": "FINISHED"}


# ------------------------------------------------------------------ SIGINT in every stage


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _params(root: Path, **sections) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        if isinstance(values, dict):
            params[name].update(values)
        else:
            params[name] = values
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _coin_rows(split: str, n: int) -> list[dict]:
    rng = random.Random(split)
    return [{"id": f"{split}-{i}", **coin_flip_example(rng, rng.randint(2, 3))} for i in range(n)]


def _setup_check(root):
    _params(root)
    return ["--out", "data/external_inputs.json"], ["data/external_inputs.json"]


def _setup_prepare(root):
    _params(root, prepare={"n_train": 16, "n_validation": 4, "n_test": 8, "n_test_ood": 4})
    return ["--out", "data/prepared", "--metrics", "metrics/prepare.json"], ["data/prepared", "metrics/prepare.json"]


def _setup_filter(root):
    _params(root)
    for split in ("train", "validation"):
        _write_jsonl(root / f"data/prepared/{split}.jsonl", _coin_rows(split, 6))
    gens = [
        {
            "id": r["id"],
            "sample": 0,
            "text": f"It was flipped. The answer is {r['answer']}.",
            "finish_reason": "stop",
            "prompt_tokens": 5,
            "completion_tokens": 6,
            "teacher": "smollm2-135m",
        }
        for split in ("train", "validation")
        for r in _coin_rows(split, 6)
    ]
    _write_jsonl(root / "data/teacher/generations.jsonl", gens)
    return (
        [
            "--prepared",
            "data/prepared",
            "--generations",
            "data/teacher/generations.jsonl",
            "--out",
            "data/filtered",
            "--metrics",
            "metrics/filter.json",
        ],
        ["data/filtered"],
    )


def _setup_report(root):
    _params(root)
    m = {"accuracy": 0.5, "ci95_low": 0.4, "ci95_high": 0.6, "n": 10, "invalid_rate": 0.0}
    for v in ("answer", "cot"):
        (root / "metrics/evaluate").mkdir(parents=True, exist_ok=True)
        (root / f"metrics/evaluate/{v}.json").write_text(json.dumps({"variant": v, "id": m}))
    (root / "metrics/filter.json").write_text(
        json.dumps({"kept": 1, "generations": 2, "keep_rate": 0.5, "dropped_by_reason": {"wrong_answer": 1}})
    )
    return (
        [
            "--evaluations",
            "metrics/evaluate",
            "--filter-metrics",
            "metrics/filter.json",
            "--out",
            "metrics/report.md",
            "--plot-data",
            "metrics/report/accuracy.csv",
        ],
        ["metrics/report.md"],
    )


def _setup_evaluate(root):
    from cotdistill.core import tracking

    from .test_error_lines import _saved_student

    _params(root, evaluate={"max_new_tokens": 4})
    _write_jsonl(root / "data/prepared/test.jsonl", _coin_rows("test", 4))
    folder = root / "models/cot"
    _saved_student(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", stage_env(root)["MLFLOW_TRACKING_URI"])
        run_id = tracking.start_run("cot", {}, {})
        tracking.end_run(run_id)
    (folder / "run.json").write_text(json.dumps({"mlflow_run_id": run_id, "resolved_train": {"max_source_length": 64}}))
    return (
        [
            "--variant",
            "cot",
            "--model",
            "models/cot",
            "--prepared",
            "data/prepared",
            "--out",
            "data/eval/cot",
            "--metrics",
            "metrics/evaluate/cot.json",
        ],
        ["data/eval/cot", "metrics/evaluate/cot.json"],
    )


QUICK_STAGES = {
    "check": _setup_check,
    "prepare": _setup_prepare,
    "filter": _setup_filter,
    "report": _setup_report,
    "evaluate": _setup_evaluate,
}


def _assert_interrupted(proc, stage: str) -> None:
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [
        f"interrupted (SIGINT): the {stage} stage stopped and left no half-written output; rerun it to resume "
        "(finished work is kept: checkpoints, cached teacher requests)"
    ], proc.stderr[-3000:]


@pytest.mark.parametrize("stage", list(QUICK_STAGES))
def test_sigint_while_a_stage_writes_its_output(tmp_path, stage):
    """Ctrl-C lands while the stage writes its first output (its temporary file is
    complete, the rename is next): one line, exit 130, nothing published, no temporary
    file left; the rerun completes."""
    args, outputs = QUICK_STAGES[stage](tmp_path)
    proc = run_cmd(
        stage_cmd(stage, args, interrupt_at_first_write=True),
        tmp_path,
        env=stage_env(tmp_path),
        check=False,
        timeout=300,
    )
    _assert_interrupted(proc, stage)
    assert temp_leftovers(tmp_path) == []
    assert not (tmp_path / outputs[0]).exists()
    if stage == "evaluate":  # nothing reached MLflow: the trained run is as the train stage left it
        (run,) = mlflow_runs(tmp_path)
        assert run.info.status == "FINISHED" and not any(k.startswith("id/") for k in run.data.metrics)
    run_cmd(stage_cmd(stage, args), tmp_path, env=stage_env(tmp_path), timeout=300)
    assert all((tmp_path / out).exists() for out in outputs)
    if stage == "evaluate":
        (run,) = mlflow_runs(tmp_path)
        assert "id/accuracy" in run.data.metrics


def test_sigint_in_generate_keeps_the_answered_requests(tmp_path):
    """Ctrl-C while requests are in flight: one line, exit 130, no output file; the rerun
    sends only what was not answered."""
    server = StubTeacher("ok", delay_s=0.4)
    try:
        _params(
            tmp_path,
            teacher="transformers-serve",
            generate={
                "base_url": server.url,
                "served_model": "stub",
                "shots": 0,
                "max_new_tokens": 8,
                "concurrency": 2,
            },
        )
        _write_jsonl(tmp_path / "data/prepared/train.jsonl", _coin_rows("train", 10))
        cache = tmp_path / ".cache/requests.sqlite"
        args = [
            "--inputs",
            "data/prepared/train.jsonl",
            "--prompt",
            str(REPO / "src/cotdistill/generate/prompts/coin_flip.yaml"),
            "--cache",
            str(cache),
            "--out",
            "data/teacher/generations.jsonl",
            "--metrics",
            "metrics/generate.json",
            "--timings",
            "timings/generate.json",
        ]
        proc = subprocess.Popen(
            stage_cmd("generate", args),
            cwd=tmp_path,
            env=stage_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def cached() -> int:
            try:
                return sqlite3.connect(cache).execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            except sqlite3.Error:
                return 0

        interrupt_when(proc, lambda: cached() >= 3)
        _, stderr = proc.communicate(timeout=120)
        _assert_interrupted(SimpleNamespace(returncode=proc.returncode, stderr=stderr), "generate")
        assert not (tmp_path / "data/teacher/generations.jsonl").exists() and temp_leftovers(tmp_path) == []
        kept = cached()
        assert 3 <= kept < 10 and server.answered == kept  # the answers in flight at Ctrl-C were kept too
        run_cmd(stage_cmd("generate", args), tmp_path, env=stage_env(tmp_path), timeout=300)
        m = json.loads((tmp_path / "timings/generate.json").read_text())
        assert m["cache_hits"] == kept and m["requests_sent"] == 10 - kept
        assert server.answered == 10  # no question was paid for twice
        assert len((tmp_path / "data/teacher/generations.jsonl").read_text().splitlines()) == 10
    finally:
        server.close()


@pytest.mark.parametrize("when", ["after_a_checkpoint", "before_any_checkpoint"])
def test_sigint_in_train_marks_the_run_killed_and_the_rerun_resumes(tmp_path, when):
    """Ctrl-C in train: one line, exit 130, the MLflow run KILLED, the checkpoints kept;
    the rerun resumes into the same run, which ends FINISHED with every curve point once."""
    first_save = 4 if when == "after_a_checkpoint" else 30
    write_inputs(tmp_path, max_steps=40, save_steps=first_save, eval_steps=20, logging_steps=1)
    proc = _train_popen(tmp_path)
    watch = _StepWatch(proc, 40)
    if when == "after_a_checkpoint":
        interrupt_when(proc, lambda: any((tmp_path / "ckpt").glob("*/checkpoint-*/trainer_state.json")))
    else:
        interrupt_when(proc, lambda: watch.step >= 3)
    proc.wait(timeout=120)
    watch.thread.join(timeout=10)
    _assert_interrupted(SimpleNamespace(returncode=proc.returncode, stderr="".join(watch.text)), "train")
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "KILLED"
    checkpoints = list((tmp_path / "ckpt").glob("*/checkpoint-*/trainer_state.json"))
    assert bool(checkpoints) == (when == "after_a_checkpoint")
    assert not (tmp_path / "models/cot").exists() and temp_leftovers(tmp_path) == []

    _train(tmp_path)
    import mlflow

    (rerun,) = mlflow_runs(tmp_path)
    assert rerun.info.run_id == run.info.run_id and rerun.info.status == "FINISHED"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(steps) == list(range(1, 41))  # each step once, step 1 included
    resumed = timings(tmp_path)["resumed_from_step"]
    assert (resumed > 0) == (when == "after_a_checkpoint")
    with open(tmp_path / "metrics/cot_curve.csv") as fh:
        rows = [(r["step"], r["eval_loss"] != "") for r in csv.DictReader(fh)]
    assert len(rows) == len(set(rows))  # no row twice (the last eval_loss was)


# ------------------------------------------------------------------ a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root only): what a full output disk looks like to a stage."""
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root); test_error_lines.py injects ENOSPC instead")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_the_rerun_after_freeing_space_completes(tmp_path, small_disk):
    _params(tmp_path, prepare={"n_train": 256, "n_validation": 32, "n_test": 200, "n_test_ood": 200})
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (512 - 24) * 1024)  # 24 KiB left: less than the splits need
    out = small_disk / "prepared"
    args = ["--out", str(out), "--metrics", "metrics/prepare.json"]
    proc = run_cmd(stage_cmd("prepare", args), tmp_path, env=stage_env(tmp_path), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [
        f"error: no space left on the device writing {out} (OSError); nothing "
        "half-written was kept: free space and rerun"
    ]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no output, no temporary file
    filler.unlink()
    run_cmd(stage_cmd("prepare", args), tmp_path, env=stage_env(tmp_path))
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "test.jsonl",
        "test_ood.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
