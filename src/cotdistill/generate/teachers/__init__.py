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

import contextlib
import dataclasses
import hashlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

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


class InFlight:
    """Requests sent from a thread pool and answered in the calling thread, the one way
    both server paths (one request per question, and the calculator's rounds) wait on them.

    `submit(item, fn, *args)` sends `timed(fn, *args)`; `drain(on_result)` calls
    `on_result(item, (result, seconds))` here, as each returns (the SQLite cache is never
    shared between threads); `on_result` may submit more (a CoT's next round). A failed
    request stops the sending: nothing queued starts and nothing more is submitted, what
    is running finishes and is answered, then drain raises the first error. Any other
    exit (Ctrl-C, a failed cache commit) cancels what is queued and hands the answers
    that came back but were not answered yet to `keep`: they are paid for.

        with InFlight(concurrency, keep) as flight:
            for item in items:
                flight.submit(item, send, item)
            flight.drain(on_result)
    """

    def __init__(self, concurrency: int, keep: Callable[[Any, tuple], None]):
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="teacher")
        self.keep = keep
        self.futures: dict[Future, Any] = {}
        self.error: BaseException | None = None

    def submit(self, item: Any, fn: Callable, *args) -> None:
        if self.error is None:
            self.futures[self.pool.submit(timed, fn, *args)] = item

    def drain(self, on_result: Callable[[Any, tuple], None]) -> None:
        while self.futures:
            done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
            for fut in done:
                exc = None if fut.cancelled() else fut.exception()
                if exc is not None and self.error is None:
                    self.error = exc
                    for other in self.futures:
                        other.cancel()
                if not fut.cancelled() and exc is None:
                    on_result(self.futures[fut], fut.result())
                del self.futures[fut]  # only once answered: an exit in on_result keeps it
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "InFlight":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            for fut in self.futures:
                fut.cancel()
        # the pool waits for what is running; keep those answers
        self.pool.shutdown(wait=True)
        if exc is not None:
            for fut, item in self.futures.items():
                if not fut.cancelled() and fut.exception() is None:
                    with contextlib.suppress(Exception):
                        self.keep(item, fut.result())


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
