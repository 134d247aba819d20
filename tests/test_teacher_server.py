"""The `openai` backend against a real `transformers serve` on 127.0.0.1.

One server per module (the offline SmolLM2, dequantized once into pytest's cache). A
small loopback proxy sits in front of it: it logs what reaches the server, checks the
Authorization header, and injects faults (delays, dropped connections, 500, 429,
requests held past the client's timeout).
"""

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cotdistill.core.catalog.teachers import TEACHERS, TeacherPreset
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, prompt_path, resolve_format, teacher_prompts
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.generate.teachers.local_server import free_port, transformers_serve
from cotdistill.generate.teachers.openai_compat import OpenAIBackend

from .conftest import REPO, qa_records, section

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("A coin is heads up. Bo flips the coin. Is the coin still heads up?", "no"),
    ("A coin is heads up. Cy does not flip the coin. Is the coin still heads up?", "yes"),
    ("A coin is heads up. Di flips the coin. Ed flips the coin. Is the coin still heads up?", "yes"),
    ("A coin is heads up. Fa does not flip the coin. Gu flips the coin. Is the coin still heads up?", "no"),
    ("A coin is heads up. Hu flips the coin. Is the coin still heads up?", "no"),
    ("A coin is heads up. Io does not flip the coin. Is the coin still heads up?", "yes"),
    ("A coin is heads up. Jo flips the coin. Ka does not flip the coin. Is the coin still heads up?", "no"),
    ("A coin is heads up. Li flips the coin. Mo flips the coin. Is the coin still heads up?", "yes"),
]
ARITH = [
    ("Ned has 10 apples. He buys 7 more. He sells 4. How many apples does Ned have now?", "13"),
    ("Ann has 6 pens. She gets 3 times as many. She gives 5 away. How many pens does Ann have now?", "13"),
    ("Bo has 12 cards. He gives away 5. He buys 9 more. How many cards does Bo have now?", "16"),
]
PLANTED_KEY = "sk-planted-" + hashlib.sha256(b"cotdistill").hexdigest()[:24]


@pytest.fixture(scope="module")
def model_dir(smollm2_folder):
    return smollm2_folder


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # one torch thread: two on two cores shared with other jobs are several times slower
    with transformers_serve(model_dir, log_path=log, env={"OMP_NUM_THREADS": "1"}) as base_url:
        yield base_url


class Proxy:
    """Forwards POSTs to the server; `faults` is a cycle of what to do per request."""

    def __init__(self, upstream: str, faults=("ok",), hold_s: float = 0.0):
        self.upstream, self.faults, self.hold_s = upstream.rstrip("/"), list(faults), hold_s
        self.lock = threading.Lock()
        self.count = 0
        self.received: list[str] = []  # prompts of requests about to be forwarded, on arrival
        self.forwarded: list[str] = []  # prompts that reached the server and were answered
        self.auth_ok: list[bool] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    fault = proxy.faults[proxy.count % len(proxy.faults)]
                    proxy.count += 1
                    proxy.auth_ok.append(self.headers.get("Authorization") == f"Bearer {PLANTED_KEY}")
                if fault in ("500", "429"):
                    msg = b'{"error": "injected"}'
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "hold":  # past the client's timeout, then drop
                    time.sleep(proxy.hold_s)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if fault == "delay":
                    time.sleep(0.3)
                with proxy.lock:
                    proxy.received.append(json.loads(body)["prompt"])
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=300) as resp:
                    data, status = resp.read(), resp.status
                with proxy.lock:
                    proxy.forwarded.append(json.loads(body)["prompt"])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up (timeout) leaves a broken pipe: expected here

        self.httpd = Server(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def faults_seen(self, kind: str) -> int:
        return sum(self.faults[k % len(self.faults)] == kind for k in range(self.count))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy_factory(server):
    proxies = []

    def make(**kw):
        proxies.append(Proxy(server.removesuffix("/v1"), **kw))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()


def _prompts():
    pf = load_prompt_file(prompt_path("coin_flip"))
    return teacher_prompts(pf, qa_records(QUESTIONS), 0, True)[0]  # short prompts: a loaded CPU stays fast


def test_fault_injection_every_question_answered_once(proxy_factory, model_dir, tmp_path):
    faults = ["500", "ok", "429", "drop", "delay", "ok", "hold", "500", "ok", "drop", "429", "delay"]
    proxy = proxy_factory(faults=faults, hold_s=6.5)
    cfg = section(
        "generate",
        base_url=proxy.url,
        served_model=str(model_dir),
        concurrency=2,
        max_retries=12,
        retry_backoff_s=0.05,
        request_timeout_s=6.0,
    )
    backend = OpenAIBackend(TEACHERS.get("transformers-serve"), cfg)
    prompts = _prompts()
    cache = RequestCache(tmp_path / "c.sqlite")
    results, stats = generate_all(backend, prompts, Sampling(4, stop=STOP_STRINGS), cache, 4, 1, progress=False)
    assert all(len(r) == 1 and r[0].text and r[0].completion_tokens > 0 for r in results)
    assert stats.sent == len(prompts) and len(cache) == len(prompts)
    # none lost, none duplicated in the output; at the server, a prompt may only be answered
    # twice when the client gave up on it (a real timeout on a slow machine), never otherwise
    assert set(proxy.forwarded) == set(prompts)
    assert len(proxy.forwarded) - len(prompts) <= stats.failures.get("timeout", 0) - proxy.faults_seen("hold")
    f = stats.costs()["failures"]
    assert f["429"] >= 1 and f["5xx"] >= 1 and f["connection"] >= 1 and f["timeout"] >= 1, f
    assert stats.retries == sum(f.values())
    print("fault injection:", json.dumps({"attempts": proxy.count, **stats.costs()}))


def _stage_env(
    tmp: Path, proxy_url: str, model_dir: Path, extra: dict, dataset: str = "coin_flip"
) -> tuple[list[str], dict]:
    """A generate stage run in `tmp`: prepared inputs, params, the command, the env."""
    (tmp / "data/prepared").mkdir(parents=True, exist_ok=True)
    questions, kind = (ARITH, "number") if dataset == "multistep_arith" else (QUESTIONS, "yes_no")
    rows = qa_records(questions, kind)
    (tmp / "data/prepared/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["teacher"] = "transformers-serve"
    params["dataset"] = dataset
    params["generate"].update(
        {
            "base_url": proxy_url,
            "served_model": str(model_dir),
            "shots": 0,
            "max_new_tokens": 6,
            "api_key_env": "COTDISTILL_TEST_TEACHER_KEY",
            **extra,
        }
    )
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [
        sys.executable,
        str(REPO / "stages/generate.py"),
        "--params",
        "params.yaml",
        "--inputs",
        "data/prepared/train.jsonl",
        "--prompt",
        str(prompt_path(dataset)),
        "--cache",
        str(tmp / ".cache/requests.sqlite"),
        "--out",
        "data/teacher/generations.jsonl",
        "--metrics",
        "metrics/generate.json",
        "--timings",
        "timings/generate.json",
    ]
    env = {**os.environ, "COTDISTILL_TEST_TEACHER_KEY": PLANTED_KEY, "PYTHONPATH": str(REPO / "src")}
    return cmd, env


def _prompts_of(cmd, cwd) -> list[str]:
    from cotdistill.core.config import load_params

    params = load_params(cwd / "params.yaml")
    g = params.generate
    pf = load_prompt_file(prompt_path("coin_flip"), resolve_format("coin_flip", g.prompt_format))  # as the stage
    return teacher_prompts(pf, qa_records(QUESTIONS), g.shots, g.answer_hint, g.exemplars, params.seed)[0]


def _run(cmd, env, cwd):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_stage_through_server_rerun_is_free_and_key_never_written(proxy_factory, model_dir, tmp_path):
    proxy = proxy_factory()
    cmd, env = _stage_env(tmp_path, proxy.url, model_dir, {"concurrency": 4})
    first = _run(cmd, env, tmp_path)
    m1 = json.loads((tmp_path / "timings/generate.json").read_text())
    assert m1["requests_sent"] == len(QUESTIONS) and m1["cache_hits"] == 0
    rows = [json.loads(x) for x in (tmp_path / "data/teacher/generations.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(len(QUESTIONS))] and all(r["text"] for r in rows)
    second = _run(cmd, env, tmp_path)
    m2 = json.loads((tmp_path / "timings/generate.json").read_text())
    assert m2["requests_sent"] == 0 and m2["cache_hits"] == len(QUESTIONS)
    assert proxy.count == len(QUESTIONS)  # the rerun sent nothing
    # the planted key was used (every request carried it) ...
    assert proxy.auth_ok and all(proxy.auth_ok)
    # ... and is in no output, log, params, metrics or cache file
    logs = first.stdout + first.stderr + second.stdout + second.stderr
    assert PLANTED_KEY not in logs
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY.encode() not in path.read_bytes(), path
    print("rerun cache hits:", m2["cache_hits"], "sent:", m2["requests_sent"])


def _kill_9_after(cmd, env, cwd: Path, n: int) -> int:
    """Start the generate stage, kill -9 it once its request cache holds `n` rows, check
    that it wrote no half output, and return how many requests it had committed."""
    db = cwd / ".cache/requests.sqlite"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, cached = time.monotonic() + 240, 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            with contextlib.suppress(sqlite3.Error):
                cached = sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        if cached >= n:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "generate finished before it could be killed"
    assert not (cwd / "data/teacher/generations.jsonl").exists()  # nothing half-written
    committed = RequestCache(db)
    try:
        return len(committed)
    finally:
        committed.close()


def test_kill_9_then_rerun_equals_uninterrupted_run(proxy_factory, model_dir, tmp_path):
    proxy = proxy_factory()
    killed = tmp_path / "killed"
    cmd, env = _stage_env(killed, proxy.url, model_dir, {"concurrency": 2})
    n_committed = _kill_9_after(cmd, env, killed, 3)
    assert 3 <= n_committed < len(QUESTIONS)
    before = list(proxy.received)  # the killed process sends nothing more
    _run(cmd, env, killed)
    m = json.loads((killed / "timings/generate.json").read_text())
    assert m["cache_hits"] == n_committed and m["requests_sent"] == len(QUESTIONS) - n_committed
    # the rerun sent each uncommitted question once and nothing that was committed;
    # only the (at most `concurrency`) requests in flight at the kill were paid twice
    resent = proxy.received[len(before) :]
    assert len(resent) == len(set(resent)) == len(QUESTIONS) - n_committed
    assert set(before) | set(resent) == set(_prompts_of(cmd, killed))
    assert len(before) + len(resent) - len(QUESTIONS) <= 2

    fresh = tmp_path / "fresh"
    cmd2, env2 = _stage_env(fresh, proxy.url, model_dir, {"concurrency": 2})
    _run(cmd2, env2, fresh)
    assert (killed / "data/teacher/generations.jsonl").read_text() == (
        fresh / "data/teacher/generations.jsonl"
    ).read_text()
    print(f"kill -9 after {n_committed} committed; rerun: cache_hits={m['cache_hits']} sent={m['requests_sent']}")


def test_chat_api_and_samples_when_the_server_ignores_n(server, model_dir):
    """`transformers serve` answers one choice whatever `n` asks: the backend asks per index."""
    preset = TeacherPreset(
        name="chat", backend="openai", model=str(model_dir), params_b=0.135, chat=True, base_url=server
    )
    backend = OpenAIBackend(preset, section("generate", concurrency=2))
    out = backend.complete_samples(
        "Is the sky blue? Answer in one sentence.", Sampling(6, temperature=1.0, seed=1), [0, 1, 2]
    )
    assert len(out) == 3 and all(c.text and c.completion_tokens > 0 for c in out)
    assert backend._n_supported is False and backend.identity["api"] == "chat"


def test_verified_sampling_through_a_real_server(proxy_factory, model_dir, tmp_path):
    """generate.k_max against `transformers serve`: each question is sampled in rounds until
    one CoT passes the filter's checks or k_max samples are spent; the rerun sends nothing,
    and a larger k_max sends one more round for the questions still open, and only that.
    (Six new tokens verify no CoT here: the early stop is tested in test_teacher_loop.py.)"""
    from cotdistill.core.config import load_params
    from cotdistill.filter.filtering import classify

    proxy = proxy_factory()
    extra = {"concurrency": 4, "temperature": 0.9, "num_samples": 1, "k_max": 2}
    cmd, env = _stage_env(tmp_path, proxy.url, model_dir, extra)
    _run(cmd, env, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "data/teacher/generations.jsonl").read_text().splitlines()]
    m = json.loads((tmp_path / "metrics/generate.json").read_text())["verified_sampling"]
    params = load_params(tmp_path / "params.yaml")
    records = {f"q{i}": {"question": q, "answer": a, "answer_type": "yes_no"} for i, (q, a) in enumerate(QUESTIONS)}
    open_after = []
    for qid, rec in records.items():
        samples = [r for r in rows if r["id"] == qid]
        assert [r["sample"] for r in samples] == list(range(len(samples)))
        ok = [classify(r, rec, params.filter.extraction, params.filter.verify_equations) is None for r in samples]
        if any(ok):  # stopped at its first verified sample (rounds of one)
            assert len(samples) == ok.index(True) + 1
        else:
            assert len(samples) == 2
            open_after.append(qid)
    assert m["samples"] == len(rows) == proxy.count and m["questions"] == len(QUESTIONS)
    assert m["verified_questions"] == len(QUESTIONS) - len(open_after)
    print(f"verified {m['verified_questions']} of {len(QUESTIONS)} questions in {len(rows)} samples")

    _run(cmd, env, tmp_path)  # the rerun: every round from the cache
    assert json.loads((tmp_path / "timings/generate.json").read_text())["requests_sent"] == 0
    assert proxy.count == len(rows)
    params_yaml = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params_yaml["generate"]["k_max"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_yaml))
    _run(cmd, env, tmp_path)
    t = json.loads((tmp_path / "timings/generate.json").read_text())
    assert t["requests_sent"] == len(open_after) and proxy.count == len(rows) + len(open_after)


def test_calculator_rounds_through_a_real_server_survive_kill_9(proxy_factory, model_dir, tmp_path):
    """generate.calculator on the openai backend, against `transformers serve`: every CoT is
    written in rounds that stop at "=", and every equation in it states the calculator's
    value; each round is a cached request, so a kill -9 in the middle of the CoTs loses
    only the rounds in flight, and the rerun sends only the rounds not yet committed and
    writes what an uninterrupted run writes. Every round's tokens count in the metrics."""
    from cotdistill.text.calculator import find_equations

    extra = {"concurrency": 2, "calculator": True, "shots": 2, "max_new_tokens": 40}
    proxy = proxy_factory()
    fresh = tmp_path / "fresh"
    cmd, env = _stage_env(fresh, proxy.url, model_dir, extra, dataset="multistep_arith")
    _run(cmd, env, fresh)
    rows = [json.loads(x) for x in (fresh / "data/teacher/generations.jsonl").read_text().splitlines()]
    rounds = proxy.count
    equations = [e for r in rows for e in find_equations(r["text"])]
    print("calculator rounds:", rounds, "for", len(rows), "CoTs:", [r["text"] for r in rows])
    assert len(rows) == len(ARITH) and rounds > len(ARITH)  # more than one round per CoT
    assert equations and all(e.holds for e in equations), [r["text"] for r in rows]
    metrics = json.loads((fresh / "metrics/generate.json").read_text())
    timings = json.loads((fresh / "timings/generate.json").read_text())
    assert metrics["requests"] == timings["requests_sent"] == rounds
    assert metrics["generations"]["completion_tokens"] == timings["sent"]["completion_tokens"] > 0

    killed = tmp_path / "killed"
    cmd, env = _stage_env(killed, proxy.url, model_dir, extra, dataset="multistep_arith")
    n_committed = _kill_9_after(cmd, env, killed, len(ARITH))
    assert len(ARITH) <= n_committed < rounds
    _run(cmd, env, killed)
    t = json.loads((killed / "timings/generate.json").read_text())
    assert t["cache_hits"] == n_committed and t["requests_sent"] == rounds - n_committed
    assert (killed / "data/teacher/generations.jsonl").read_text() == (
        fresh / "data/teacher/generations.jsonl"
    ).read_text()
    print(f"kill -9 after {n_committed} of {rounds} rounds; rerun sent {t['requests_sent']}")
