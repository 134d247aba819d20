"""The calculator for a teacher behind a server (`openai` backend, generate.calculator).

A server's decoding cannot be reached into, so each CoT is written in rounds: the server
completes the prompt up to a stop at "="; where the text before it ends with arithmetic
("... 5 + 3 ="), the calculator (text/calculator.py, the students' own) computes it and
the CoT goes on from "5 + 3 = 8"; the next round completes the prompt plus the CoT so far.
The value is closed, as the hf teacher's is: digits (or ".5", ",000") the server writes
right after it are dropped. An expression the calculator rejects forces nothing: the "="
is kept and the server writes its own value. A round that stops at another stop string,
or at the token budget (max_new_tokens over all rounds), ends the CoT.

Every round is one request, cached under its own key (the prompt with the CoT so far),
and committed to the cache as soon as it returns, from the calling thread: a kill -9 in
the middle of a CoT loses only the rounds in flight, and a rerun walks the finished
rounds from the cache and sends only the rest. Rounds count as requests; their tokens and
seconds add up to the CoT's cost.

Which stop a round ended at: the server's own word where it gives one (the stop string
returned in the text, as `transformers serve` does, or vLLM's `stop_reason`); a server
that gives none (OpenAI) ended at "=" when the text ends with an arithmetic expression.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Optional

from cotdistill.text.calculator import CalcError, result_text, trailing_expression

from . import Completion, InFlight, Sampling
from .cache import RequestCache, request_key

EQUALS = "="
MAX_ROUNDS = 64  # per CoT: a server that reports no tokens cannot loop for ever
# what would extend a number just written: '4', '.5', ',000', '/4'
_EXTENSION = re.compile(r"(?:[0-9]|[.,/][0-9])+")


@dataclass
class Cot:
    """One CoT (prompt i, sample s) being written round by round."""

    i: int
    s: int
    text: str = ""  # as the server wrote it, spaces kept, with the calculator's values
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rounds: int = 0
    forced: bool = False  # the last round ended with a value the calculator wrote
    finish: Optional[str] = None  # None while open

    def completion(self) -> Completion:
        return Completion(self.text.strip(), self.finish or "length", self.prompt_tokens, self.completion_tokens)


def round_sampling(sampling: Sampling, cot: Cot) -> Sampling:
    """The next round's sampling: "=" among the stops, the tokens left of the budget."""
    stop = sampling.stop if EQUALS in sampling.stop else (*sampling.stop, EQUALS)
    return dataclasses.replace(sampling, stop=stop, max_new_tokens=sampling.max_new_tokens - cot.completion_tokens)


def advance(cot: Cot, c: Completion, budget: int) -> None:
    """Add one round's completion to `cot`: the calculator's value after an "=", or the end."""
    text = c.text
    if cot.forced:  # the value is closed: no digits glued to it
        m = _EXTENSION.match(text)
        text = text[m.end() :] if m else text
    cot.text += text
    cot.prompt_tokens += c.prompt_tokens
    cot.completion_tokens += c.completion_tokens
    cot.rounds += 1
    cot.forced = False
    expr = trailing_expression(cot.text + EQUALS) if c.finish_reason == "stop" else None
    at_equals = c.stopped_at == EQUALS or (c.stopped_at is None and expr is not None)
    if c.finish_reason != "stop":
        cot.finish = "length"
    elif not at_equals:
        cot.finish = "stop"
    elif cot.completion_tokens >= budget or cot.rounds >= MAX_ROUNDS:
        cot.text += EQUALS
        cot.finish = "length"
    else:
        value = None
        if expr is not None:
            try:
                value = result_text(expr)
            except CalcError:
                value = None
        cot.text += EQUALS + (f" {value}" if value is not None else "")
        cot.forced = value is not None


def generate_in_rounds(
    backend, prompts: list[str], sampling: Sampling, cache: RequestCache, num_samples: int, stats, bar, first_sample=0
) -> list[list[Completion]]:
    """Every (prompt, sample) written in calculator rounds, `backend.concurrency` CoTs at
    once; results[i][j] is prompt i, sample first_sample + j. `stats` and `bar` are
    generate_all's (it calls this for a backend with `rounds`)."""
    name = backend.identity.get("backend")
    cots = [Cot(i, s) for i in range(len(prompts)) for s in range(first_sample, first_sample + num_samples)]
    budget = sampling.max_new_tokens

    def request(cot: Cot) -> tuple[str, Sampling, str]:
        prompt, smp = prompts[cot.i] + cot.text, round_sampling(sampling, cot)
        return prompt, smp, request_key(backend.identity, prompt, smp, cot.s)

    def advanced(cot: Cot, c: Completion) -> None:
        stats.requests += 1
        advance(cot, c, budget)
        if cot.finish is not None:
            bar.update(1)

    def schedule(cot: Cot) -> None:
        """Walk the rounds the cache holds, then send the first one it does not."""
        while cot.finish is None:
            prompt, smp, key = request(cot)
            hit = cache.get_many([key]).get(key)
            if hit is None:
                flight.submit((cot, key), backend.complete_samples, prompt, smp, [cot.s])
                return
            stats.from_cache(hit)
            advanced(cot, hit.completion)

    def keep(sent: tuple[Cot, str], got: tuple) -> None:
        (completions, seconds), key = got, sent[1]
        cache.put_many([(key, completions[0], seconds, name)])

    def answered(sent: tuple[Cot, str], got: tuple) -> None:
        keep(sent, got)
        (completions, seconds), cot = got, sent[0]
        stats.from_backend(completions[0], seconds, name)
        advanced(cot, completions[0])
        schedule(cot)  # its next round (nothing is sent after a failed request)

    with InFlight(backend.concurrency, keep) as flight:
        for cot in cots:
            schedule(cot)
        flight.drain(answered)
    results: list[list[Completion]] = [[] for _ in prompts]
    for cot in cots:
        results[cot.i].append(cot.completion())
    return results
