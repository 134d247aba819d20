"""The teacher backends by name (catalog/teachers.py: `backend`), each imported on first
use: each pulls a heavy library (torch, openai). Building one is `make_backend`."""

from __future__ import annotations

from typing import Callable

from cotdistill.core.registry import Registry

from . import Backend


def _hf():
    from .hf_local import HFBackend

    return HFBackend


def _openai():
    from .openai_compat import OpenAIBackend

    return OpenAIBackend


def _llamacpp():
    from .llamacpp import LlamaCppBackend

    return LlamaCppBackend


# backend name -> its class, imported on first use (each pulls a heavy library: torch or openai)
BACKENDS: Registry[Callable[[], Callable[..., Backend]]] = Registry("teacher backend")
BACKENDS.register("hf", _hf)
BACKENDS.register("openai", _openai)
BACKENDS.register("llamacpp", _llamacpp)


def make_backend(preset, cfg, shared_prefix: str | None = None) -> Backend:
    """The backend a teacher preset names, built with the generate section `cfg` (its
    overrides and request settings); `shared_prefix` is the few-shot text every prompt
    starts with (the `hf` backend computes its KV cache once)."""
    return BACKENDS.get(preset.backend)()(preset, cfg, shared_prefix=shared_prefix)


def close_backend(backend) -> None:
    """Release what a backend holds (an HTTP client; a server it started). Idempotent."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()
