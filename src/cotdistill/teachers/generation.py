"""The generation loop: prompts in, completions out, every request paid for once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tqdm import tqdm

from . import Backend, Completion, Sampling
from .cache import RequestCache, request_key


@dataclass
class GenerationStats:
    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        tps = self.completion_tokens / self.wall_s if self.wall_s > 0 and self.sent else 0.0
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "requests_sent": self.sent,
            "failures": dict(self.failures),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 2),
            "completion_tokens_per_s": round(tps, 2),
        }


def generate_all(
    backend: Backend,
    prompts: list[str],
    sampling: Sampling,
    cache: RequestCache,
    batch_size: int,
    num_samples: int = 1,
    progress: bool = True,
) -> tuple[list[list[Completion]], GenerationStats]:
    """Complete every prompt `num_samples` times; results[i][s] is prompt i, sample s.

    Cached requests are answered from the cache; the rest are sent in batches of
    similar prompt length, and each batch is committed to the cache as soon as it
    returns, so an interruption loses at most one batch.
    """
    stats = GenerationStats()
    start = time.perf_counter()
    results: list[list[Completion | None]] = [[None] * num_samples for _ in prompts]
    pending: list[tuple[int, int, str]] = []  # (prompt index, sample index, key)
    for i, prompt in enumerate(prompts):
        for s in range(num_samples):
            stats.requests += 1
            key = request_key(backend.identity, prompt, sampling, s)
            hit = cache.get(key)
            if hit is not None:
                results[i][s] = hit
                stats.cache_hits += 1
            else:
                pending.append((i, s, key))
    # Similar lengths in one batch waste less compute on padding.
    pending.sort(key=lambda p: len(prompts[p[0]]))
    bar = tqdm(total=len(pending), desc="teacher", unit="req", disable=not progress or not pending)
    for b in range(0, len(pending), batch_size):
        batch = pending[b : b + batch_size]
        completions = backend.complete([prompts[i] for i, _, _ in batch], sampling)
        if len(completions) != len(batch):
            raise RuntimeError(f"backend returned {len(completions)} completions for {len(batch)} prompts")
        cache.put_many((key, c) for (_, _, key), c in zip(batch, completions))
        for (i, s, _), c in zip(batch, completions):
            results[i][s] = c
            stats.sent += 1
            stats.prompt_tokens += c.prompt_tokens
            stats.completion_tokens += c.completion_tokens
        stats.wall_s = time.perf_counter() - start
        bar.update(len(batch))
        bar.set_postfix(tok_s=f"{stats.completion_tokens / max(stats.wall_s, 1e-9):.1f}")
    bar.close()
    stats.wall_s = time.perf_counter() - start
    return results, stats  # type: ignore[return-value]
