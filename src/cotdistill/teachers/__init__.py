"""Teachers: backends that complete prompts, and the cached generation loop.

A backend turns a batch of prompts into completions. `generate_cots` (generation.py)
puts the request cache in front of it, so a rerun or a resumed run never sends a
request twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..registry import Registry


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    identity: dict  # what makes two backends answer alike: part of every cache key

    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]: ...


BACKENDS: Registry[Callable[..., Backend]] = Registry("teacher backend")


def make_backend(preset, **options) -> Backend:
    """Instantiate the backend a teacher preset names (imports heavy libraries lazily)."""
    if preset.backend == "hf" and "hf" not in BACKENDS:
        from . import hf_local  # noqa: F401
    return BACKENDS.get(preset.backend)(preset, **options)
