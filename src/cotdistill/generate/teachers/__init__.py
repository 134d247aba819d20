"""Teachers: backends that complete prompts, and the cached generation loop.

A backend turns a batch of prompts into completions (this module: what they share;
backends.py: the registry that builds one). `generate_all` (generation.py)
puts the request cache in front of it, so a rerun or a resumed run never sends a
request twice. Two kinds of backend share the interface:
- batched (`hf`): `complete` takes many prompts and runs them as one padded batch;
- concurrent (`openai`): `concurrency > 1`; the loop calls `complete_samples` for one
  question at a time from that many threads, and the server does the batching.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import Optional, Protocol

from cotdistill.core.errors import Outage


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
    # the stop string the text ended at, where it is known (a server that returned it, or
    # vLLM's stop_reason): the calculator rounds tell "=" from the end of a CoT by it
    stopped_at: Optional[str] = None


class TeacherRequestError(Outage):
    """A request that still failed after every retry (or failed for good, e.g. 400/401)."""


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string; report whether one was found."""
    cut, _ = cut_at_first_stop(text, stop)
    return cut, _ is not None


def cut_at_first_stop(text: str, stop: tuple[str, ...]) -> tuple[str, Optional[str]]:
    """`text` cut at the earliest stop string, and that string (None: none found; of two
    at the same place, the longer)."""
    found = [(i, -len(s), s) for s in stop if s and (i := text.find(s)) >= 0]
    if not found:
        return text, None
    i, _, s = min(found)
    return text[:i], s


def timed(fn, *args) -> tuple:
    """(fn(*args), the seconds it took): a request's own time, measured in its thread."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def sample_seed(seed: int, sample_index: int) -> int:
    """The seed of sample `sample_index`: different per index, the same on every rerun.

    (Sample 0 keeps the run's seed, so num_samples=1 behaves as before.)
    """
    if sample_index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def for_sample(sampling: Sampling, sample_index: int) -> Sampling:
    """`sampling` with the seed of one sample index (what a backend is called with)."""
    return dataclasses.replace(sampling, seed=sample_seed(sampling.seed, sample_index))


class Backend(Protocol):
    identity: dict  # what makes two backends answer alike: part of every cache key
    concurrency: int  # 1: batched, called from one thread; >1: calls in flight at once

    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]: ...
