"""Fault injection for the failure tests: a stub OpenAI-compatible teacher on 127.0.0.1,
and a stage run that receives a real SIGINT at a chosen point."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .conftest import REPO

OK_TEXT = " The coin was flipped. The answer is yes."


class StubTeacher:
    """A /v1/completions server on 127.0.0.1, honest or hostile. `mode`:
    "ok" (answers OK_TEXT); "echo500" (500 with the request headers in the body, as some
    proxies and debug servers do); "401"; "echo200" (a completion that quotes the request's
    Authorization header); "html200" (a 200 HTML page); "truncated" (a 200 with half a JSON
    body); "error200" (an error object with status 200); "null_choices"; "null_text" (a choice
    whose text is null, finish "length"); "empty_length" (text "", finish "length"); "drip"
    (the ok reply, one byte every `delay_s`); "cut" (dies mid-body); "bad_gzip" (a body that
    says gzip and is not); "sse_echo" (event-stream chunks quoting the Authorization header);
    "shuffled" (the `n` choices out of index order); "redirect" (307 to `redirect_to`).
    `bad_first`: only the first that many requests get `mode`, the rest "ok".
    `delay_s` holds every ok answer that long."""

    def __init__(self, mode: str = "ok", delay_s: float = 0.0, bad_first: int | None = None):
        self.mode, self.delay_s, self.bad_first = mode, delay_s, bad_first
        self.redirect_to = ""  # "redirect" mode: the base URL (.../v1) it sends clients to
        self.requests: list[dict] = []  # {"auth": its Authorization header, "body": ...} per request
        self.answered = 0
        stub = self

        def completion(body: dict, text: str | None, finish: str = "stop") -> dict:
            return {
                "id": "cmpl-stub",
                "object": "text_completion",
                "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19},
            }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, data: bytes, kind: str = "application/json", drip_s: float = 0.0):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not drip_s:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip_s)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                mode = stub.mode if stub.bad_first is None or len(stub.requests) <= stub.bad_first else "ok"
                status, kind, drip = 200, "application/json", 0.0
                if mode == "echo500":
                    status, reply = (
                        500,
                        {"error": {"message": f"internal error; request headers: {dict(self.headers)}"}},
                    )
                elif mode == "401":
                    status, reply = 401, {"error": {"message": "Incorrect API key provided"}}
                elif mode == "echo200":
                    reply = completion(body, f" Authorization: {self.headers.get('Authorization')}. {OK_TEXT}")
                elif mode == "html200":
                    reply, kind = "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
                elif mode == "truncated":
                    reply = json.dumps(completion(body, OK_TEXT))[:40]
                elif mode == "error200":
                    reply = {"error": {"message": "the model is overloaded", "type": "server_error"}}
                elif mode == "null_choices":
                    reply = {**completion(body, OK_TEXT), "choices": None}
                elif mode == "null_text":
                    reply = completion(body, None, "length")
                elif mode == "empty_length":
                    reply = completion(body, "", "length")
                elif mode == "cut":  # the server dies mid-reply: fewer bytes than Content-Length said
                    data = json.dumps(completion(body, OK_TEXT)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                elif mode == "bad_gzip":  # says gzip, is not
                    data = b"\x1f\x8bnot gzip at all"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                elif mode == "sse_echo":  # streams chunks nobody asked for, the key inside
                    auth = self.headers.get("Authorization")
                    reply, kind = (
                        "".join(f'data: {{"choices": [{{"text": "{w} {auth}"}}]}}\n\n' for w in ("The", "coin"))
                        + "data: [DONE]\n\n",
                        "text/event-stream",
                    )
                elif mode == "shuffled":  # n choices, listed out of index order
                    n = int(body.get("n") or 1)
                    reply = completion(body, OK_TEXT)
                    reply["choices"] = [
                        {"index": i, "text": f" Sample {i}. The answer is yes.", "finish_reason": "stop"}
                        for i in reversed(range(n))
                    ]
                elif mode == "redirect":  # to `redirect_to`, another origin
                    self.send_response(307)
                    self.send_header("Location", stub.redirect_to + self.path[len("/v1") :])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                else:
                    time.sleep(stub.delay_s if mode == "ok" else 0.0)
                    reply, drip = completion(body, OK_TEXT), (stub.delay_s if mode == "drip" else 0.0)
                data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
                try:
                    self._send(status, data, kind, drip)
                except OSError:
                    return  # the client gave up (a deadline): nothing was delivered
                stub.answered += status == 200 and mode == "ok"

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away (an interrupted stage) leaves a broken pipe

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# Runs a stage script with every atomic write of cotdistill.core.io wrapped: once the first one
# has written its temporary file, the process sends itself SIGINT (what Ctrl-C does), so
# the interrupt lands at the worst moment, before the rename that publishes the output.
_INTERRUPT_AT_FIRST_WRITE = """
import contextlib, os, runpy, signal, sys, time
import cotdistill.core.io as io

def interrupting(real):
    @contextlib.contextmanager
    def wrapped(path):
        with real(path) as tmp:
            yield tmp
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # KeyboardInterrupt is raised here, inside the write
    return wrapped

io.atomic_path, io.atomic_dir = interrupting(io.atomic_path), interrupting(io.atomic_dir)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python script` does: stages/_checkout
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def stage_cmd(stage: str, args: list[str], interrupt_at_first_write: bool = False) -> list[str]:
    script = str(REPO / "stages" / f"{stage}.py")
    if interrupt_at_first_write:
        return [sys.executable, "-c", _INTERRUPT_AT_FIRST_WRITE, script, *args]
    return [sys.executable, script, *args]


def stage_env(root: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PYTHONPATH": str(REPO / "src"),
        "OMP_NUM_THREADS": "1",
        "COTDISTILL_LOG": "WARNING",
        "TQDM_DISABLE": "1",
        **extra,
    }


def error_lines(stderr: str) -> list[str]:
    """What a stage said about its failure: stderr without log records and progress bars."""
    # A nested progress bar (transformers' "Writing model shards") clears itself with cursor moves.
    lines = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", stderr).replace("\r", "\n").splitlines()
    log_record = re.compile(r"^(?:\d{4}/\d\d/\d\d [\d:]+ )?(?:INFO|WARNING|DEBUG) ")  # ours, and MLflow's
    return [line for line in lines if line.strip() and not log_record.match(line) and not re.search(r"\d+%\|", line)]


def interrupt_when(proc: subprocess.Popen, ready, timeout_s: float = 600.0, sig: int = signal.SIGINT) -> None:
    """Send `sig` to `proc` as soon as `ready()` holds (polled), as a user would."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, "the stage ended before it could be interrupted"
        assert time.monotonic() < deadline, "the stage never reached the point to interrupt it at"
        time.sleep(0.05)
    os.kill(proc.pid, sig)


def temp_leftovers(root: Path) -> list[Path]:
    """Temporary files or folders of cotdistill.core.io's atomic writes (a half-written output)."""
    return [p for p in root.rglob(".*.tmp")]
