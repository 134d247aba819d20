"""The `llamacpp` backend: it starts llama.cpp, answers, and leaves no server behind.

The server helpers are tested with a stand-in HTTP server (fast); the backend itself
with the real GGUF teacher (slow, skipped when xllamacpp is not installed).
"""

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, prompt_path, teacher_prompts
from cotdistill.generate.teachers import Completion, Sampling, TeacherRequestError
from cotdistill.generate.teachers.backends import close_backend, make_backend
from cotdistill.generate.teachers.cache import RequestCache, request_key
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.generate.teachers.local_server import LocalServer, free_port

from .conftest import REPO, qa_records, run_cmd, section

HAS_ENGINE = importlib.util.find_spec("xllamacpp") is not None or importlib.util.find_spec("llama_cpp") is not None
needs_engine = pytest.mark.skipif(not HAS_ENGINE, reason="no llama.cpp engine installed (make install-llamacpp)")

STUB = textwrap.dedent("""
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
        def log_message(self, *a): pass
    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


def pythonpath() -> dict:
    """The environment's PYTHONPATH with this checkout's src/ first (a child must find both)."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie (exited, not yet reaped by a dead parent's init) counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_local_server_is_stopped_on_error_and_on_close(tmp_path):
    port = free_port()
    with pytest.raises(ZeroDivisionError):
        with LocalServer([sys.executable, "-c", STUB, str(port)], port, "/health", startup_timeout_s=60) as server:
            assert server.running
            pid = server.proc.pid
            1 / 0  # noqa: B018  the ZeroDivisionError is the point
    assert gone(pid)
    server.close()  # idempotent

    port = free_port()
    server = LocalServer([sys.executable, "-c", STUB, str(port)], port, "/v1/models", startup_timeout_s=60)
    pid = server.proc.pid
    del server  # forgotten by its owner: the finalizer stops it
    assert gone(pid)


def test_local_server_that_dies_at_start_is_reported_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match="did not start.*exited with code 3.*server.log"):
        LocalServer(
            [sys.executable, "-c", "import sys; print('bad model'); sys.exit(3)"],
            free_port(),
            log_path=log,
            startup_timeout_s=60,
        )
    assert "bad model" in log.read_text()


def test_missing_engine_names_the_install_command(monkeypatch):
    from cotdistill.generate.teachers import llamacpp

    monkeypatch.setattr(llamacpp.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="make install-llamacpp"):
        llamacpp.find_engine()


def test_engines_never_share_cache_entries():
    """The engine is part of the identity, so of every request key."""
    prompt, sampling = "Question: q\nReasoning:", Sampling(8, stop=STOP_STRINGS)
    base = {"model": "SmolLM2-135M-Instruct", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    hf = {
        "backend": "hf",
        **base,
        "quantization": None,
        "engine": "transformers",
        "engine_version": "transformers 5.24.0, torch 2.13.0",
    }
    lc = {
        "backend": "llamacpp",
        **base,
        "engine": "llama.cpp",
        "engine_version": "xllamacpp 2026.10.11549",
        "api": "completions",
    }
    lc_next = {**lc, "engine_version": "xllamacpp 2026.11.1"}
    keys = {request_key(i, prompt, sampling, 0) for i in (hf, lc, lc_next)}
    assert len(keys) == 3


def test_server_command_per_engine(tmp_path):
    from cotdistill.generate.teachers.llamacpp import server_command

    gguf = tmp_path / "m.gguf"
    xl = server_command("xllamacpp", gguf, 8123, parallel=8, ctx_per_slot=2048, threads=None)
    assert xl[1:3] == ["-m", "cotdistill.generate.teachers.llamacpp_serve"] and "--parallel" in xl and "8123" in xl
    lcp = server_command("llama-cpp-python", gguf, 8123, parallel=8, ctx_per_slot=2048, threads=2)
    assert lcp[1:3] == ["-m", "llama_cpp.server"] and lcp[lcp.index("--host") + 1] == "127.0.0.1"


# ---------------------------------------------------------------------- the real engine

QUESTIONS = [
    ("A coin is heads up. Bo flips the coin. Is the coin still heads up?", "no"),
    ("A coin is heads up. Cy does not flip the coin. Is the coin still heads up?", "yes"),
    ("A coin is heads up. Di flips the coin. Ed flips the coin. Is the coin still heads up?", "yes"),
]


def prompts(shots=2):
    pf = load_prompt_file(prompt_path("coin_flip"))
    return teacher_prompts(pf, qa_records(QUESTIONS), shots, True)[0]


@pytest.mark.slow
@needs_engine
def test_backend_starts_answers_and_stops(tmp_path):
    backend = make_backend(TEACHERS.get("smollm2-135m-llamacpp"), section("generate", concurrency=2))
    pid = backend.server.proc.pid
    try:
        assert backend.identity["backend"] == "llamacpp" and backend.identity["engine"] == "llama.cpp"
        assert backend.identity["engine_version"].split()[0] in ("xllamacpp", "llama-cpp-python")
        cache = RequestCache(tmp_path / "c.sqlite")
        results, stats = generate_all(backend, prompts(), Sampling(40, stop=STOP_STRINGS), cache, 1, 1, False)
        assert stats.sent == 3
        for (c,) in results:
            assert isinstance(c, Completion) and c.text and "Question:" not in c.text and "\n\n" not in c.text
            assert c.finish_reason in ("stop", "length") and c.prompt_tokens > 100
        # greedy: the same answer again (a slot reuses its cached prefix)
        assert backend.complete(prompts()[:1], Sampling(40, stop=STOP_STRINGS))[0].text == results[0][0].text
    finally:
        close_backend(backend)
    assert gone(pid)


@pytest.mark.slow
@needs_engine
def test_server_is_gone_after_a_failed_request(tmp_path):
    backend = make_backend(TEACHERS.get("smollm2-135m-llamacpp"), section("generate", concurrency=1, max_retries=0))
    pid = backend.server.proc.pid
    too_long = "word " * 5000  # past the slot's context: the server refuses it (400, not retried)
    try:
        with pytest.raises(TeacherRequestError):
            generate_all(backend, [too_long], Sampling(8), RequestCache(tmp_path / "c.sqlite"), 1, 1, False)
    finally:
        close_backend(backend)
    assert gone(pid)


@pytest.mark.slow
@needs_engine
def test_server_exits_when_its_parent_is_killed(tmp_path):
    """kill -9 of the pipeline cannot leave a llama.cpp server running on the cores."""
    script = textwrap.dedent("""
        import sys, time
                from cotdistill.generate.teachers.backends import make_backend
        from cotdistill.generate.teachers.presets import TEACHERS
        b = make_backend(TEACHERS.get("smollm2-135m-llamacpp"), GenerateConfig(concurrency=1))
        print(b.server.proc.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO / "params.yaml")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **pythonpath()},
    )
    try:
        pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone(pid, within_s=15)
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.slow
@needs_engine
def test_generate_stage_records_the_engine(tmp_path, base_params, python):
    import yaml

    from cotdistill.core.io import read_jsonl, write_jsonl

    params = {**base_params, "teacher": "smollm2-135m-llamacpp"}
    params["generate"] = {**params["generate"], "max_questions": 2, "concurrency": 2, "shots": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rows = qa_records(QUESTIONS, "yes_no")
    write_jsonl(tmp_path / "train.jsonl", rows[:2])
    write_jsonl(tmp_path / "validation.jsonl", rows[2:])
    run_cmd(
        [
            python,
            str(REPO / "stages/generate.py"),
            "--params",
            "params.yaml",
            "--inputs",
            "train.jsonl",
            "validation.jsonl",
            "--prompt",
            str(prompt_path("coin_flip")),
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--out",
            "gen.jsonl",
            "--metrics",
            "m.json",
        ],
        cwd=tmp_path,
        env=pythonpath(),
    )
    out = read_jsonl(tmp_path / "gen.jsonl")
    assert len(out) == 3
    assert {r["teacher_backend"] for r in out} == {"llamacpp"} and {r["teacher_engine"] for r in out} == {"llama.cpp"}
    assert all(r["teacher_engine_version"] and r["text"] for r in out)
