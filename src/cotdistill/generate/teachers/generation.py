"""The generation loop: prompts in, completions out, every request paid for once.

Each answered request is committed to the SQLite cache as soon as it returns (a batch
for the `hf` backend, one question for the `openai` backend), always from the calling
thread, so a kill -9 loses only what was in flight and a rerun sends only that.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from tqdm import tqdm

from . import Backend, Completion, InFlight, Sampling, for_sample
from .cache import Cached, RequestCache, request_key


@dataclass
class GenerationStats:
    """What one generate_all call returned (an outcome: the same on a warm or a cold cache)
    and what it cost: requests, cache hits, failures, what it sent, and what the
    generations it returns cost when they were made, cached or not."""

    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    redacted: int = 0  # credentials scrubbed from the texts a server sent in this call
    prompt_tokens: int = 0  # of the requests sent in this call
    completion_tokens: int = 0
    prefix_cache_batches: int = 0  # hf: batches that started from the shared prefix's KV cache
    wall_s: float = 0.0
    # every returned generation, at the cost recorded when it was made
    made_prompt_tokens: int = 0
    made_completion_tokens: int = 0
    made_seconds: float = 0.0
    made_unknown: int = 0  # rows cached before costs were kept: tokens known, seconds not
    backends: set[str] = field(default_factory=set)

    def made(self, completion: Completion, seconds: float | None, backend: str | None) -> None:
        self.made_prompt_tokens += completion.prompt_tokens
        self.made_completion_tokens += completion.completion_tokens
        if seconds is None:
            self.made_unknown += 1
        else:
            self.made_seconds += seconds
        if backend:
            self.backends.add(backend)

    def from_cache(self, hit: Cached) -> None:
        """A request answered from the cache, at what it cost when it was made."""
        self.cache_hits += 1
        self.made(hit.completion, hit.seconds, hit.backend)

    def from_backend(self, completion: Completion, seconds: float, backend: str | None) -> None:
        """A request the backend answered in this call, in `seconds` (its share of the call)."""
        self.sent += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.made(completion, seconds, backend)

    def add(self, other: "GenerationStats") -> None:
        """Count another call's stats into these (the rounds of generate_verified)."""
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            elif isinstance(mine, set):
                mine |= theirs
            else:
                setattr(self, f.name, mine + theirs)

    def outcome(self) -> dict:
        """What the returned generations are, whoever paid for them: the same whether they
        came from the cache or the teacher (the generate stage's metrics)."""
        return {
            "requests": self.requests,
            "generations": {
                "prompt_tokens": self.made_prompt_tokens,
                "completion_tokens": self.made_completion_tokens,
                "backend": "+".join(sorted(self.backends)),
            },
        }

    def costs(self) -> dict:
        """What this call did and waited for (the stage's timings file, not its metrics)."""
        tps = self.completion_tokens / self.wall_s if self.wall_s > 0 and self.sent else 0.0
        return {
            "cache_hits": self.cache_hits,
            "requests_sent": self.sent,
            "retries": self.retries,
            "failures": {
                k: self.failures.get(k, 0) for k in ("429", "5xx", "timeout", "connection", "malformed", "fatal")
            },
            "redacted": self.redacted,
            "prefix_cache_batches": self.prefix_cache_batches,
            # what the returned generations cost when they were made (this run or an earlier
            # one): each one's share of the call that answered it (concurrent calls overlap,
            # so for a server it is request-seconds, not wall time)
            "teacher_s": round(self.made_seconds, 2),
            "teacher_s_unknown": self.made_unknown,
            # what this run sent and waited for
            "sent": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "wall_s": round(self.wall_s, 2),
                "completion_tokens_per_s": round(tps, 2),
            },
        }


class _Progress:
    """tqdm over the requests to send: counts, ETA, cache hits, failures, tokens/s."""

    def __init__(self, total: int, stats: GenerationStats, start: float, backend, enabled: bool):
        self.stats, self.start, self.backend = stats, start, backend
        self.bar = tqdm(total=total, desc="teacher", unit="req", disable=not enabled or not total)

    def update(self, n: int) -> None:
        s = self.stats
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        failed = getattr(self.backend, "failed_attempts", 0)
        self.bar.set_postfix(
            cached=s.cache_hits, failed=failed, tok_s=f"{s.completion_tokens / elapsed:.1f}", refresh=False
        )
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def generate_all(
    backend: Backend,
    prompts: list[str],
    sampling: Sampling,
    cache: RequestCache,
    batch_size: int,
    num_samples: int = 1,
    progress: bool = True,
    first_sample: int = 0,
) -> tuple[list[list[Completion]], GenerationStats]:
    """Complete every prompt `num_samples` times; results[i][j] is prompt i, sample
    `first_sample + j` (a later round of samples starts where the last one stopped).

    Cached requests are answered from the cache. The rest go to the backend: in
    batches of similar prompt length (batched backends), or one question per call
    from `backend.concurrency` threads (servers); a server teacher with the calculator
    writes each CoT in rounds, each round a cached request (calculator_rounds.py). Sample s is drawn with the seed
    `sample_seed(sampling.seed, s)`, so samples differ and reruns repeat them.
    """
    stats = GenerationStats()
    start = time.perf_counter()
    # the backend's counters run over its lifetime; this call reports its own share
    failures0 = dict(getattr(backend, "failures", {}))
    retries0, prefix0 = getattr(backend, "retries", 0), getattr(backend, "prefix_hits", 0)
    redacted0 = getattr(backend, "redacted", 0)
    if getattr(backend, "rounds", False):  # generate.calculator on a server: rounds that stop at "="
        from .calculator_rounds import generate_in_rounds

        bar = _Progress(len(prompts) * num_samples, stats, start, backend, progress)
        try:
            rounds = generate_in_rounds(backend, prompts, sampling, cache, num_samples, stats, bar, first_sample)
        finally:
            bar.close()
            _count_backend(stats, backend, start, failures0, retries0, prefix0, redacted0)
        return rounds, stats
    results: list[list[Completion | None]] = [[None] * num_samples for _ in prompts]
    pending: list[tuple[int, int, str]] = []  # (prompt index, sample index, key)
    keys = [[request_key(backend.identity, p, sampling, first_sample + j) for j in range(num_samples)] for p in prompts]
    hits = cache.get_many([k for row in keys for k in row])
    for i, row in enumerate(keys):
        for j, key in enumerate(row):
            stats.requests += 1
            if key in hits:
                results[i][j] = hits[key].completion
                stats.from_cache(hits[key])
            else:
                pending.append((i, first_sample + j, key))
    bar = _Progress(len(pending), stats, start, backend, progress)

    name = backend.identity.get("backend")

    def record(done: list[tuple[int, int, str]], completions: list[Completion], seconds: float) -> None:
        """Store the completions of one call that took `seconds`, each with its share of them."""
        if len(completions) != len(done):
            raise RuntimeError(f"backend returned {len(completions)} completions for {len(done)} requests")
        share = seconds / len(completions) if completions else 0.0
        cache.put_many((key, c, share, name) for (_, _, key), c in zip(done, completions))
        for (i, s, _), c in zip(done, completions):
            results[i][s - first_sample] = c
            stats.from_backend(c, share, name)
        bar.update(len(done))

    try:
        if getattr(backend, "concurrency", 1) > 1:
            _run_concurrent(backend, prompts, sampling, pending, record)
        else:
            _run_batched(backend, prompts, sampling, pending, batch_size, record)
    finally:
        bar.close()
        _count_backend(stats, backend, start, failures0, retries0, prefix0, redacted0)
    return results, stats  # type: ignore[return-value]


def _count_backend(stats: GenerationStats, backend, start: float, failures0, retries0, prefix0, redacted0) -> None:
    """This call's share of the backend's lifetime counters, and its wall time."""
    stats.wall_s = time.perf_counter() - start
    failures = dict(getattr(backend, "failures", {}))
    stats.failures = {k: v - failures0.get(k, 0) for k, v in failures.items() if v > failures0.get(k, 0)}
    stats.retries = getattr(backend, "retries", 0) - retries0
    stats.redacted = getattr(backend, "redacted", 0) - redacted0
    stats.prefix_cache_batches = getattr(backend, "prefix_hits", 0) - prefix0


def generate_verified(
    backend: Backend,
    prompts: list[str],
    sampling: Sampling,
    cache: RequestCache,
    batch_size: int,
    round_size: int,
    k_max: int,
    verified: Callable[[int, Completion], bool],
    progress: bool = True,
) -> tuple[list[list[Completion]], GenerationStats, list[Optional[int]]]:
    """Verified sampling with an adaptive budget: every prompt is sampled in rounds of
    `round_size` until one of its completions passes `verified(prompt index, completion)`
    or `k_max` samples are spent, so that easy questions stop early. Returns every sample
    drawn (results[i][s] is sample s of prompt i), the stats of all rounds, and per
    prompt the index of its first verified sample (None: the budget ran out).

    A round is one generate_all call over the prompts still open, with the sample indices
    that follow the last round's: every sample is cached under its index, so a rerun
    repeats the same rounds from the cache, and a larger `k_max` pays only for the rounds
    it adds."""
    results: list[list[Completion]] = [[] for _ in prompts]
    first_ok: list[Optional[int]] = [None] * len(prompts)
    total = GenerationStats()
    still = list(range(len(prompts)))
    for first in range(0, k_max, round_size):
        if not still:
            break
        n = min(round_size, k_max - first)
        got, stats = generate_all(
            backend, [prompts[i] for i in still], sampling, cache, batch_size, n, progress, first_sample=first
        )
        total.add(stats)
        left = []
        for i, samples in zip(still, got):
            results[i] += samples
            hit = next((first + j for j, c in enumerate(samples) if verified(i, c)), None)
            if hit is None:
                left.append(i)
            else:
                first_ok[i] = hit
        still = left
    return results, total, first_ok


def _run_batched(backend, prompts, sampling, pending, batch_size, record) -> None:
    # One sample index per batch (each has its own seed); similar lengths in one batch
    # waste less compute on padding.
    pending = sorted(pending, key=lambda p: (p[1], len(prompts[p[0]])))
    for b in range(0, len(pending), batch_size):
        batch = pending[b : b + batch_size]
        by_sample: dict[int, list] = {}
        for item in batch:
            by_sample.setdefault(item[1], []).append(item)
        for s, items in by_sample.items():
            start = time.perf_counter()
            completions = backend.complete([prompts[i] for i, _, _ in items], for_sample(sampling, s))
            record(items, completions, time.perf_counter() - start)


def _run_concurrent(backend, prompts, sampling, pending, record) -> None:
    """One task per question (its missing samples), `backend.concurrency` in flight,
    each recorded in the caller's thread as it returns (InFlight)."""
    groups: dict[int, list[tuple[int, int, str]]] = {}
    for item in pending:
        groups.setdefault(item[0], []).append(item)

    def samples(prompt: str, ss: list[int]) -> list[Completion]:
        if hasattr(backend, "complete_samples"):
            return backend.complete_samples(prompt, sampling, ss)
        return [backend.complete([prompt], for_sample(sampling, s))[0] for s in ss]

    def answered(items: list, got: tuple) -> None:
        record(items, *got)

    with InFlight(backend.concurrency, keep=answered) as flight:
        for i, items in groups.items():
            flight.submit(items, samples, prompts[i], [s for _, s, _ in items])
        flight.drain(answered)
