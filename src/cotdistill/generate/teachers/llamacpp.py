"""`llamacpp` backend: the GGUF file run by llama.cpp, behind the `openai` backend.

llama.cpp reads the 4-bit weights as they are (no dequantization to fp32) and batches
the requests in flight itself (continuous batching over `generate.concurrency` slots).
Whether that beats the `hf` backend depends on the build and the machine: the prebuilt
wheel targets AVX2 only, and on the 2 shared AVX-512 cores measured in
the README (the teacher-speed table) it was slower than `hf`. The backend starts a llama.cpp server
on a free loopback port when it is made, talks to it through the `openai` backend's
client (retries, concurrency, `n` samples), and stops it on `close()`, on an error, or
when the process ends (the server also exits when its parent dies).

Engines, in order of preference:
- `xllamacpp`: prebuilt wheels (`pip install cotdistill[llamacpp]`, seconds);
  launched as `python -m cotdistill.generate.teachers.llamacpp_serve`;
- `llama-cpp-python`: compiles llama.cpp on install (35 minutes on 2 busy cores); its
  Python server (`python -m llama_cpp.server`) answers one request at a time. Its
  default native build can die with SIGILL on a VM that advertises AMX; build it with
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON" there.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path

from .hf_local import resolve_model
from .local_server import LocalServer, free_port
from .openai_compat import OpenAIBackend

log = logging.getLogger(__name__)

ENGINES = ("xllamacpp", "llama-cpp-python")
INSTALL_HINT = "pip install 'xllamacpp==2026.10.11549' (or: make install-llamacpp)"


def find_engine() -> str:
    """The first installed llama.cpp engine; a clear error naming the install command if none."""
    for dist in ENGINES:
        module = dist.replace("-", "_")
        if importlib.util.find_spec(module) is not None:
            return dist
    raise ModuleNotFoundError(f"teacher backend 'llamacpp' needs llama.cpp for Python: {INSTALL_HINT}")


def engine_version(dist: str) -> str:
    return importlib.metadata.version(dist)


def server_command(
    dist: str, gguf: Path, port: int, parallel: int, ctx_per_slot: int, threads: int | None
) -> list[str]:
    """The command that serves `gguf` on 127.0.0.1:`port` with `dist`."""
    if dist == "xllamacpp":
        cmd = [
            sys.executable,
            "-m",
            "cotdistill.generate.teachers.llamacpp_serve",
            "--model",
            str(gguf),
            "--port",
            str(port),
            "--alias",
            gguf.name,
            "--parallel",
            str(parallel),
            "--ctx-per-slot",
            str(ctx_per_slot),
        ]
        return cmd + (["--threads", str(threads)] if threads else [])
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        gguf.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(ctx_per_slot),
    ]
    return cmd + (["--n_threads", str(threads)] if threads else [])


class LlamaCppBackend(OpenAIBackend):
    """An `openai` backend whose server is a llama.cpp process this object owns."""

    def __init__(
        self,
        preset,
        cfg,
        shared_prefix: str | None = None,
        log_path: str | Path | None = None,
        threads: int | None = None,
    ):
        if not preset.gguf_file:
            raise ValueError(f"teacher '{preset.name}': backend 'llamacpp' needs a gguf_file")
        folder, _ = resolve_model(preset)
        gguf = Path(folder) / preset.gguf_file
        self.engine = find_engine()
        port = free_port()
        cmd = server_command(self.engine, gguf, port, cfg.concurrency, preset.ctx_per_slot, threads)
        log.info("teacher: starting llama.cpp (%s) on port %d", self.engine, port)
        self.server = LocalServer(cmd, port, health_path="/v1/models", log_path=log_path)
        try:
            local = dataclasses.replace(cfg, base_url=self.server.base_url, served_model=gguf.name, api_key_env=None)
            super().__init__(dataclasses.replace(preset, api_key_env=None, api_key_required=False), local)
        except BaseException:
            self.server.close()
            raise
        # The engine and its version are part of the cache key: another engine's (or
        # version's) greedy answers differ slightly, and must not be reused as this one's.
        self.identity = {
            "backend": "llamacpp",
            "model": preset.model,
            "gguf_file": preset.gguf_file,
            "engine": "llama.cpp",
            "engine_version": f"{self.engine} {engine_version(self.engine)}",
            "api": "chat" if preset.chat else "completions",
        }

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.close()
