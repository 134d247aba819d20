"""Start and stop a local OpenAI-compatible server (`transformers serve`) on loopback.

Used by the tests and the benchmarks; a user scaling out runs vLLM instead (README).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator


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
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout_s:.0f}s")


@contextlib.contextmanager
def transformers_serve(
    model_dir: str | Path, port: int | None = None, continuous_batching: bool = False,
    log_path: str | Path | None = None, startup_timeout_s: float = 180.0, extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on 127.0.0.1; yield its base URL (…/v1).

    Offline (HF_HUB_OFFLINE=1): the model is the local folder, which is also the model
    name requests must use. The server is terminated (then killed) on exit.
    """
    port = port or free_port()
    exe = Path(sys.executable).parent / "transformers"
    cmd = [str(exe) if exe.exists() else "transformers", "serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--continuous-batching" if continuous_batching else "--no-continuous-batching",
           *extra_args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", startup_timeout_s, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()
