"""`cotdistill verify`: a fresh run's outcomes against the committed ones, and the float
signature that decides which differences are failures."""

import json
import os
import subprocess
import sys

import pytest

from cotdistill.core import machine
from cotdistill.core.verify import compare, report

SIG = {
    "torch": "2.13.0+cpu",
    "threads": 2,
    "cpu_capability": "AVX2",
    "float_paths": "portable",
    "env": dict(machine.PORTABLE),
    "cpu": "AuthenticAMD AMD EPYC",
}


def _lock(prep="p1", gen="g1", filt="f1", model="m1", code="c1"):
    def st(deps, outs):
        return {
            "cmd": "x",
            "deps": [{"path": p, "md5": m} for p, m in deps],
            "outs": [{"path": p, "md5": m} for p, m in outs],
        }

    return {
        "schema": "2.0",
        "stages": {
            "prepare": st([("stages/prepare.py", code)], [("data/prepared", prep), ("metrics/prepare.json", "x")]),
            "generate": st(
                [("data/prepared/train.jsonl", "t")],
                [("data/teacher/generations.jsonl", gen), ("metrics/generate.json", "x")],
            ),
            "filter": st([("data/teacher/generations.jsonl", gen)], [("data/filtered", filt)]),
            "train@answer": st(
                [("data/filtered/answer", "a")], [("models/answer", model), ("metrics/train/answer.json", "x")]
            ),
            "report": st([("metrics/train", "d")], [("metrics/report.md", "x")]),
        },
    }


def _files(sig=SIG, loss=1.5, gen_sig=SIG, report_line="answer 72.0"):
    return {
        "metrics/prepare.json": json.dumps({"n_train": 256}),
        "metrics/generate.json": json.dumps({"requests": 288, "machine": gen_sig}),
        "metrics/train/answer.json": json.dumps({"train_loss": loss, "machine": sig}),
        "metrics/report.md": f"# Results\n{report_line}\n",
    }


def _compare(lock_c, files_c, lock_m, files_m):
    return compare(lock_c, lock_m, files_c.get, files_m.get, lambda p: p in files_c or p in files_m)


def test_the_same_run_is_identical_everywhere():
    res = _compare(_lock(), _files(), _lock(), _files())
    assert res.ok and not res.differ and not res.other_machine
    assert len(res.identical) == 8  # every output of every stage
    assert report(res, "HEAD").endswith("verify: passed")


def test_a_hand_edited_metric_fails_naming_the_file_key_and_both_values():
    res = _compare(_lock(), _files(loss=1.5), _lock(), _files(loss=1.25))
    assert not res.ok
    [f] = res.differ
    assert (f.stage, f.path, f.key, f.committed, f.made) == (
        "train@answer",
        "metrics/train/answer.json",
        "train_loss",
        1.5,
        1.25,
    )
    text = report(res, "HEAD")
    assert "metrics/train/answer.json [train_loss] committed 1.5 / made 1.25" in text and "FAILED" in text


def test_a_cached_output_is_compared_by_its_dvc_lock_hash():
    res = _compare(_lock(model="m1"), _files(), _lock(model="m2"), _files())
    assert [(f.path, f.key, f.committed, f.made) for f in res.differ] == [("models/answer", "md5", "m1", "m2")]


def test_another_processor_in_portable_mode_is_compared_and_named():
    other = {**SIG, "cpu": "GenuineIntel Intel(R) Xeon(R)"}
    res = _compare(_lock(), _files(), _lock(), _files(sig=other, gen_sig=other))
    assert res.ok and not res.other_machine
    assert {f.path for f in res.provenance} == {"metrics/generate.json", "metrics/train/answer.json"}
    res = _compare(_lock(), _files(), _lock(model="m2"), _files(sig=other, gen_sig=other))
    assert not res.ok  # portable paths: the processor does not excuse a difference


@pytest.mark.parametrize(
    "change", [{"threads": 1}, {"torch": "2.14.0+cpu"}, {"float_paths": "native", "cpu_capability": "AVX512"}]
)
def test_another_float_signature_is_not_comparable_downstream_but_data_still_is(change):
    other = {**SIG, **change}
    res = _compare(_lock(), _files(), _lock(model="m2"), _files(sig=other, loss=1.25, report_line="answer 60.0"))
    assert res.ok and set(res.other_machine) == {"train@answer"}
    assert {f.path for f in res.not_comparable} == {"models/answer", "metrics/train/answer.json", "metrics/report.md"}
    text = report(res, "HEAD")
    assert "NOT COMPARED" in text and "passed for the comparable outcomes only" in text
    # the prepared data involve no floats: a difference there fails whatever the signature
    res = _compare(_lock(), _files(), _lock(prep="p2", model="m2"), _files(sig=other))
    assert not res.ok and [f.path for f in res.differ] == ["data/prepared"]


def test_a_teacher_with_another_signature_makes_the_filter_not_comparable():
    other = {**SIG, "threads": 1}
    res = _compare(_lock(), _files(), _lock(gen="g2", filt="f2"), _files(gen_sig=other))
    assert res.ok and set(res.other_machine) == {"generate"}
    assert {f.path for f in res.not_comparable} == {
        "data/teacher/generations.jsonl",
        "metrics/generate.json",
        "data/filtered",
    }


def test_a_lock_that_this_code_did_not_make_fails():
    """`dvc commit` after a code change re-hashes the deps without rerunning: the committed
    lock then names code the results were not made with."""
    res = _compare(_lock(code="c1"), _files(), _lock(code="c2"), _files())
    assert not res.ok and (
        [(f.path, f.committed, f.made) for f in res.code_changed] == [("stages/prepare.py", "c1", "c2")]
    )
    assert "not made by its own code" in report(res, "HEAD")


def test_a_csv_differs_by_row_and_column():
    from cotdistill.core.verify import _diff_text

    old = "step,loss\n1,2.0\n10,1.5\n"
    assert _diff_text("c.csv", old, "step,loss\n1,2.0\n10,1.4\n") == [("row 2 loss", "1.5", "1.4")]
    assert _diff_text("c.csv", old, old) == []


def test_signature_names_what_the_floats_depend_on():
    import torch

    sig = machine.signature(3)
    assert sig["torch"] == torch.__version__ and sig["threads"] == 3
    assert sig["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and sig["cpu"]
    assert "cpu" not in machine.float_key({**sig, "float_paths": "portable", "cpu_capability": "AVX2"})
    assert machine.float_key({**sig, "float_paths": "native"})["cpu"] == sig["cpu"]
    assert "torch" in machine.describe(sig) and "3 threads" in machine.describe(sig)


def test_a_stage_process_takes_the_portable_float_paths_and_the_users_choice_wins(tmp_path):
    code = (
        "from cotdistill.core import machine, stage\n"
        "import json, torch\n"
        "stage.run(lambda argv: print(json.dumps(machine.signature(1))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in machine.PORTABLE and k != machine.MODE_ENV}

    def sig(**extra):
        out = subprocess.run(
            [sys.executable, "-c", code.replace("import json, torch\n", "import json\n")],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    portable = sig()
    assert portable["float_paths"] == "portable" and portable["env"] == machine.PORTABLE
    avx2 = " avx2 " in open("/proc/cpuinfo").read().replace("\n", " ")
    assert portable["cpu_capability"] == ("AVX2" if avx2 else "DEFAULT")  # never AVX512, whatever the CPU has
    assert sig(ATEN_CPU_CAPABILITY="default")["cpu_capability"] == "DEFAULT"
    native = sig(COTDISTILL_FLOAT_PATHS="native")
    assert native["float_paths"] == "native" and native["env"] == {k: None for k in machine.PORTABLE}
    bad = subprocess.run(
        [sys.executable, "-c", code], env={**env, "COTDISTILL_FLOAT_PATHS": "fast"}, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "COTDISTILL_FLOAT_PATHS='fast': allowed values are portable, native" in bad.stderr


def test_timings_of_a_queued_experiment_go_to_the_real_root(tmp_path, monkeypatch):
    from cotdistill.core.paths import timings_path

    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert str(timings_path("timings/train/answer.json")) == "timings/train/answer.json"
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-owl")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert timings_path("timings/train/answer.json") == tmp_path / "timings/exps/brisk-owl/train/answer.json"
