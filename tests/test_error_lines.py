"""Failures that leave true records, the quick ones: what a stage says (one line naming
the file, no key), and what stays on disk and in MLflow. The stage-level faults (kill -9,
SIGINT in each stage, a full disk) are in test_interrupted_stages.py."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cotdistill.core import stage
from cotdistill.core.errors import ConfigError, DataError

from .conftest import REPO, make_params, run_cmd
from .fault_helpers import StubTeacher, error_lines, stage_cmd, stage_env, temp_leftovers

PLANTED_KEY = "sk-planted-failure-records-0123456789"


# ------------------------------------------------------------------ teacher replies


@pytest.mark.parametrize(
    "text, secrets, expected",
    [
        (
            "headers: {'authorization': 'Bearer sk-abc123456789', 'accept': 'x'}",
            (),
            "headers: {'authorization': '[redacted]', 'accept': 'x'}",
        ),
        ('{"Authorization": "Bearer tok.en-123"}', (), '{"Authorization": "[redacted]"}'),
        ("Authorization: Basic dXNlcjpwYXNz then", (), "Authorization: [redacted] then"),
        ("x-api-key: abc123, api_key=zzz", (), "x-api-key: [redacted], api_key=[redacted]"),
        ("retry with Bearer eyJhbGciOi.payload.sig", (), "retry with Bearer [redacted]"),
        ("key sk-proj-AbCdEfGh12345 was used", (), "key [redacted] was used"),
        ("echo: 0123456789abcdef0123456789abcdef", ("0123456789abcdef0123456789abcdef",), "echo: [redacted]"),
        ("a bearer of bad news: the model is overloaded", (), "a bearer of bad news: the model is overloaded"),
        ("line one\nline two", (), "line one line two"),
    ],
)
def test_redact_hides_keys_and_tokens(text, secrets, expected):
    from cotdistill.generate.teachers.openai_compat import redact

    assert redact(text, secrets) == expected


def _generate_stage(tmp_path, url: str, **generate) -> list[str]:
    (tmp_path / "prepared").mkdir()
    rows = [
        {
            "id": f"q{i}",
            "question": f"A coin is heads up. P{i} flips the coin. Is the coin still heads up?",
            "answer": "no",
            "answer_type": "yes_no",
        }
        for i in range(3)
    ]
    (tmp_path / "prepared/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["teacher"] = "transformers-serve"
    params["generate"].update(
        {
            "base_url": url,
            "served_model": "stub",
            "shots": 0,
            "max_new_tokens": 8,
            "concurrency": 2,
            "max_retries": 1,
            "retry_backoff_s": 0.01,
            **generate,
        }
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return [
        "--inputs",
        "prepared/train.jsonl",
        "--prompt",
        str(REPO / "src/cotdistill/generate/prompts/coin_flip.yaml"),
        "--cache",
        str(tmp_path / "cache/requests.sqlite"),
        "--out",
        "generations.jsonl",
        "--metrics",
        "generate.json",
    ]


def test_a_server_that_echoes_the_key_in_a_500_never_shows_it(tmp_path):
    server = StubTeacher("echo500")
    try:
        args = _generate_stage(tmp_path, server.url, api_key_env="COTDISTILL_TEST_TEACHER_KEY")
        proc = run_cmd(
            stage_cmd("generate", args),
            tmp_path,
            check=False,
            env=stage_env(tmp_path, COTDISTILL_TEST_TEACHER_KEY=PLANTED_KEY, COTDISTILL_LOG="DEBUG"),
        )
    finally:
        server.close()
    # the key was sent, and echoed back
    assert server.requests and all(r["auth"] == f"Bearer {PLANTED_KEY}" for r in server.requests)
    assert proc.returncode == 1, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith("error: teacher request failed (5xx) after 2 attempt(s): Error code: 500")
    assert "'authorization': '[redacted]'" in line
    assert PLANTED_KEY not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY.encode() not in path.read_bytes(), path


def test_a_server_that_echoes_the_key_in_a_completion_never_gets_it_written(tmp_path):
    """A 200 whose completion quotes the request's Authorization header: the key reached
    the request cache, the generations and (through the filter) the training data."""
    server = StubTeacher("echo200")
    try:
        args = _generate_stage(tmp_path, server.url, api_key_env="COTDISTILL_TEST_TEACHER_KEY")
        proc = run_cmd(
            stage_cmd("generate", args + ["--timings", "timings.json"]),
            tmp_path,
            check=False,
            env=stage_env(tmp_path, COTDISTILL_TEST_TEACHER_KEY=PLANTED_KEY, COTDISTILL_LOG="DEBUG"),
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert server.requests and all(r["auth"] == f"Bearer {PLANTED_KEY}" for r in server.requests)
    rows = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    texts = [s["text"] for r in rows for s in r["samples"]] if "samples" in rows[0] else [r["text"] for r in rows]
    assert texts and all(t.startswith("Authorization: [redacted] ") for t in texts), texts[:2]
    assert json.loads((tmp_path / "timings.json").read_text())["redacted"] == len(server.requests)
    assert PLANTED_KEY not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY.encode() not in path.read_bytes(), path


def test_an_unset_api_key_env_fails_before_the_first_request(tmp_path):
    server = StubTeacher("401")
    try:
        args = _generate_stage(tmp_path, server.url, api_key_env="COTDISTILL_UNSET_KEY_VARIABLE")
        env = stage_env(tmp_path)
        env.pop("COTDISTILL_UNSET_KEY_VARIABLE", None)
        proc = run_cmd(stage_cmd("generate", args), tmp_path, env=env, check=False)
    finally:
        server.close()
    assert proc.returncode == 2 and server.requests == []
    assert error_lines(proc.stderr) == [
        "error: generate.api_key_env: the environment variable COTDISTILL_UNSET_KEY_VARIABLE is not set (or empty); "
        "export it with the server's key, or set generate.api_key_env: null for a server that needs none"
    ]
    assert not (tmp_path / "generations.jsonl").exists()


def test_a_401_without_a_key_says_none_was_sent(monkeypatch):
    from cotdistill.core.catalog.teachers import TeacherPreset
    from cotdistill.generate.teachers import Sampling, TeacherRequestError
    from cotdistill.generate.teachers.openai_compat import OpenAIBackend

    from .conftest import section

    monkeypatch.delenv("COTDISTILL_OPTIONAL_KEY", raising=False)
    server = StubTeacher("401")
    try:  # a preset's optional variable (a local vLLM may run without --api-key), unset
        preset = TeacherPreset(
            name="local",
            backend="openai",
            model="m",
            params_b=0.1,
            base_url=server.url,
            api_key_env="COTDISTILL_OPTIONAL_KEY",
        )
        backend = OpenAIBackend(preset, section("generate", max_retries=0))
        with pytest.raises(
            TeacherRequestError,
            match=r"HTTP 401: the server wants an API key and none was sent "
            r"\(\$COTDISTILL_OPTIONAL_KEY is not set\)",
        ):
            backend.complete(["Q: hi\nA:"], Sampling(4))
        backend.close()
    finally:
        server.close()


# ------------------------------------------------------------------ files that name themselves


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    from cotdistill.core.catalog.prompts import read_formats
    from cotdistill.core.config import load_params
    from cotdistill.core.io import read_json, read_jsonl
    from cotdistill.prepare.datasets.sources import file_rows

    latin1 = "café costs 3".encode("latin-1")
    cases = {
        "d.jsonl": b'{"question": "What is 2+2?", "answer": "4"}\n{"question": "' + latin1 + b'", "answer": "3"}\n',
        "d.csv": b"question,answer\nWhat is 2+2?,4\n" + latin1 + b",3\n",
        "d.json": b'[{"question": "What is 2+2?", "answer": "4"},\n {"question": "' + latin1 + b'", "answer": "3"}]\n',
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        lineno, col = next((i, x.index(b"\xe9") + 1) for i, x in enumerate(data.splitlines(), 1) if b"\xe9" in x)
        with pytest.raises(
            DataError,
            match=rf"^{path}:{lineno}: not UTF-8 text \(byte 0xe9 at column {col}\); "
            "save the file as UTF-8$",
        ):
            file_rows(path)
    with pytest.raises(DataError, match=r"d.jsonl:2: not UTF-8"):
        read_jsonl(tmp_path / "d.jsonl")
    with pytest.raises(DataError, match=r"d.json:2: not UTF-8"):
        read_json(tmp_path / "d.json")
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes().replace(b"# student preset", b"# \xe9tudiant"))
    with pytest.raises(ConfigError, match=rf"^{params}:\d+: not UTF-8 text"):
        load_params(params)
    prompt = tmp_path / "p.yaml"
    prompt.write_bytes(b"instruction: Answer.\nexemplars:\n  - question: " + latin1 + b"\n")
    with pytest.raises(DataError, match=rf"^{prompt}:3: not UTF-8 text"):
        read_formats(prompt)
    prompt.write_text("instruction: [unclosed\n")
    with pytest.raises(DataError, match=rf"^{prompt}: line 2, column 1: not valid YAML: [^\n]+$"):
        read_formats(prompt)


@pytest.mark.parametrize(
    "name, text", [("e.jsonl", ""), ("e.jsonl", "\n\n"), ("e.csv", "question,answer\n"), ("e.json", "[]")]
)
def test_an_empty_data_file_is_named_not_the_split_sizes(tmp_path, name, text):
    from cotdistill.prepare.datasets.prepare import prepare_dataset

    path = tmp_path / name
    path.write_text(text)
    p = make_params({"dataset": "gsm8k", "prepare": {"source": "local", "local": {"path": str(path)}}})
    with pytest.raises(DataError, match=rf"^{path}: the file holds no rows$"):
        prepare_dataset(p, [])


def test_rows_of_no_use_say_what_was_read(tmp_path):
    from cotdistill.prepare.datasets.prepare import prepare_dataset

    path = tmp_path / "d.jsonl"  # every gold unreadable as a number: the pools are empty
    path.write_text("".join(json.dumps({"question": f"q{i}?", "answer": "many"}) + "\n" for i in range(5)))
    p = make_params(
        {"dataset": "gsm8k", "prepare": {"source": "local", "max_malformed": 1.0, "local": {"path": str(path)}}}
    )
    with pytest.raises(
        DataError,
        match=rf"the train split is empty after splitting and decontamination \(5 rows "
        rf"read from {path}, 5 malformed, 0 of another answer type\)",
    ):
        prepare_dataset(p, [])


def _saved_student(folder):
    from transformers import T5Config, T5ForConditionalGeneration

    model = T5ForConditionalGeneration(
        T5Config(vocab_size=32, d_model=8, d_ff=16, d_kv=4, num_layers=1, num_heads=2, decoder_start_token_id=0)
    )
    model.save_pretrained(folder)
    (folder / "run.json").write_text(json.dumps({"mlflow_run_id": "x", "resolved_train": {"max_source_length": 32}}))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            lambda f: __import__("shutil").rmtree(f),
            r"{f}: no model folder here \(rerun its train stage, or `dvc checkout` it\)",
        ),
        (
            lambda f: (f / "config.json").write_text('{"model_type": "t5", "d_model": '),
            r"{f}/config.json:1: not valid JSON \(Expecting value\)",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-100]),
            r"{f}/model.safetensors: not a readable safetensors file \(Error while deserializing header: incomplete "
            r"metadata, file not fully covered\); rerun its train stage, or `dvc checkout` it",
        ),
        (lambda f: (f / "model.safetensors").unlink(), r"{f}: no weights file \(\*.safetensors\) in the model folder"),
        (lambda f: (f / "config.json").unlink(), r"{f}: no config.json or adapter_config.json"),
    ],
)
def test_a_damaged_model_folder_is_named(tmp_path, damage, expected):
    from cotdistill.train.students.weights import check_model_folder

    folder = tmp_path / "cot"
    _saved_student(folder)
    check_model_folder(folder)  # whole: passes
    damage(folder)
    with pytest.raises(DataError, match="^" + expected.format(f=folder)):
        check_model_folder(folder)


@pytest.mark.slow
def test_evaluate_stage_on_a_corrupt_model_folder_is_one_line(tmp_path):
    folder = tmp_path / "models/cot"
    _saved_student(folder)
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:-100])
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared/test.jsonl").write_text(
        json.dumps({"id": "t0", "question": "q?", "answer": "yes", "answer_type": "yes_no"}) + "\n"
    )
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = run_cmd(
        stage_cmd(
            "evaluate",
            [
                "--variant",
                "cot",
                "--model",
                "models/cot",
                "--prepared",
                "prepared",
                "--out",
                "eval",
                "--metrics",
                "eval.json",
            ],
        ),
        tmp_path,
        env=stage_env(tmp_path),
        check=False,
    )
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        "error: models/cot/model.safetensors: not a readable safetensors file (Error while deserializing header: "
        "incomplete metadata, file not fully covered); rerun its train stage, or `dvc checkout` it"
    ]


# ------------------------------------------------------------------ refused by params alone


@pytest.mark.parametrize(
    "patch, expected",
    [
        (
            {"dataset": "gsm_symbolic", "prepare": {"gsm_symbolic": {"ood_template_fraction": 0.0}}},
            "prepare.gsm_symbolic.ood_template_fraction: 0.0 holds out no template for test_ood; "
            "it must be > 0 and < 1",
        ),
        (
            {"dataset": "gsm_symbolic", "prepare": {"gsm_symbolic": {"ood_template_fraction": 1.0}}},
            "prepare.gsm_symbolic.ood_template_fraction: 1.0 holds out every template for test_ood",
        ),
        (
            {"dataset": "gsm8k", "prepare": {"source": "local", "local": {"path": "data/my.txt"}}},
            "prepare.local.format: cannot tell the format of data/my.txt from its suffix",
        ),
    ],
)
def test_refusals_decided_by_params_alone_are_made_by_validation(patch, expected):
    with pytest.raises(ConfigError, match="^params.yaml: " + expected.replace("(", r"\(").replace(")", r"\)")):
        make_params(patch)


def test_an_openai_teacher_without_an_endpoint_is_refused_by_validation(monkeypatch):
    from cotdistill.core.catalog.teachers import TEACHERS, TeacherPreset

    monkeypatch.setitem(
        TEACHERS._items, "no-endpoint", TeacherPreset(name="no-endpoint", backend="openai", model="m", params_b=1.0)
    )
    with pytest.raises(ConfigError, match="generate.base_url: teacher 'no-endpoint' has no endpoint"):
        make_params({"teacher": "no-endpoint"})
    make_params({"teacher": "no-endpoint", "generate": {"base_url": "http://127.0.0.1:9/v1"}})


# ------------------------------------------------------------------ how a stage ends


def test_ctrl_c_and_sigterm_are_one_line_with_the_signal_exit_code(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    def terminated(argv):
        os.kill(os.getpid(), signal.SIGTERM)  # stage.run turns SIGTERM into a clean stop
        time.sleep(5)

    for main, code, name in ((interrupted, 130, "SIGINT"), (terminated, 143, "SIGTERM")):
        with pytest.raises(SystemExit) as exit_:
            stage.run(main, [])
        assert exit_.value.code == code
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"interrupted ({name}): the ") and "rerun it to resume" in line
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the test process keeps its own handler


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    from cotdistill.core import io

    target = tmp_path / "out" / "rows.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", no_space)  # the last step of every atomic write

    def write(argv):
        io.write_jsonl(target, [{"id": 1}])

    with pytest.raises(SystemExit) as exit_:
        stage.run(write, [])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        f"error: no space left on the device writing {target} (OSError); nothing "
        "half-written was kept: free space and rerun\n"
    )
    assert target.read_text() == "old\n" and temp_leftovers(tmp_path) == []

    def save_folder(argv):  # torch and safetensors report ENOSPC as their own errors
        with io.atomic_dir(tmp_path / "model") as tmp:
            (tmp / "part").write_text("x")
            raise RuntimeError(
                "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                'message: "No space left on device" })'
            )

    with pytest.raises(SystemExit) as exit_:
        stage.run(save_folder, [])
    assert exit_.value.code == 1 and "no space left on the device (RuntimeError)" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and temp_leftovers(tmp_path) == []


# ------------------------------------------------------------------ MLflow runs of dead processes


def test_an_interrupt_waits_for_the_store_write_to_end():
    """Ctrl-C in the middle of an MLflow write would leave SQLite locked; it is acted on after."""
    from cotdistill.core import tracking

    done = []

    @tracking._uninterrupted
    def write():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        done.append(True)

    with pytest.raises(KeyboardInterrupt):
        write()
    assert done == [True] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _dead_process_record():
    from cotdistill.core import tracking

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    record = tracking._process_record(proc.pid)
    proc.wait()
    return record


def test_owner_alive():
    from cotdistill.core import tracking

    me = tracking._process_record(os.getpid())
    assert tracking.owner_alive(me) is True
    assert tracking.owner_alive(_dead_process_record()) is False
    assert tracking.owner_alive({**me, "started": me["started"] - 100}) is False  # the pid was reused
    assert tracking.owner_alive({**me, "boot": me["boot"] - 3600}) is False  # the machine rebooted since
    assert tracking.owner_alive({**me, "host": "another-host"}) is None  # cannot tell from here


def test_runs_left_running_by_dead_processes_are_marked_killed(tmp_path, monkeypatch):
    import mlflow

    from cotdistill.core import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    ids = {name: tracking.start_run(name, {}, {}) for name in ("dead", "alive", "elsewhere", "unowned")}
    client = mlflow.MlflowClient()
    owners = {
        "dead": _dead_process_record(),
        "alive": tracking._process_record(os.getpid()),
        "elsewhere": {**_dead_process_record(), "host": "another-host"},
    }
    for name, owner in owners.items():
        client.set_tag(ids[name], tracking.OWNER_TAG, json.dumps(owner))
    assert tracking.close_orphans() == [ids["dead"]]
    status = {name: client.get_run(i).info.status for name, i in ids.items()}
    assert status == {"dead": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING", "unowned": "RUNNING"}
    assert tracking.close_orphans() == []
