"""Start and stop a local OpenAI-compatible server on loopback.

`LocalServer` runs any server command as a child process, waits until it answers, and
stops it (terminate, then kill) when closed, on error or when its owner is collected.
The `llamacpp` backend launches llama.cpp with it for the offline teacher; the tests and
benchmarks also start `transformers serve` with `transformers_serve`. A user scaling out
runs vLLM instead (README).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from pathlib import Path
from typing import Iterator, Sequence


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.2)
    raise TimeoutError(f"no answer from {url} within {timeout_s:.0f}s")


def _stop(proc: subprocess.Popen, log) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if log not in (None, subprocess.DEVNULL):
        log.close()


class LocalServer:
    """A server process on 127.0.0.1:`port`, healthy once `health_path` answers 200.

    `base_url` is …/v1. `close()` stops it and is idempotent; a finalizer stops it too
    if the owner forgets (so an exception between start and close leaves no server).
    """

    def __init__(
        self,
        cmd: Sequence[str],
        port: int,
        health_path: str = "/health",
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        startup_timeout_s: float = 180.0,
    ):
        self.cmd, self.port = list(cmd), port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._finalizer = weakref.finalize(self, _stop, self.proc, log)
        try:
            wait_healthy(f"http://127.0.0.1:{port}{health_path}", startup_timeout_s, self.proc)
        except BaseException as exc:
            self.close()
            where = f"; its output is in {log_path}" if log_path else ""
            raise RuntimeError(f"local server {self.cmd[:4]} did not start: {exc}{where}") from None

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def transformers_serve(
    model_dir: str | Path,
    port: int | None = None,
    continuous_batching: bool = False,
    log_path: str | Path | None = None,
    startup_timeout_s: float = 180.0,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on 127.0.0.1; yield its base URL (…/v1).

    Offline (HF_HUB_OFFLINE=1): the model is the local folder, which is also the model
    name requests must use. The server is terminated (then killed) on exit.
    """
    port = port or free_port()
    exe = Path(sys.executable).parent / "transformers"
    cmd = [
        str(exe) if exe.exists() else "transformers",
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--continuous-batching" if continuous_batching else "--no-continuous-batching",
        *extra_args,
    ]
    with LocalServer(
        cmd, port, env={"HF_HUB_OFFLINE": "1", **(env or {})}, log_path=log_path, startup_timeout_s=startup_timeout_s
    ) as server:
        yield server.base_url
