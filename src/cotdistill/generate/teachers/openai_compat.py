"""`openai` backend: any OpenAI-compatible endpoint (vLLM, SGLang, `transformers serve`,
Ollama, a llama.cpp server, OpenAI itself), through the chat or the completions API.

The generation loop calls `complete_samples` from `concurrency` threads; the server
batches what is in flight. Every transient failure (429, 5xx, timeout, dropped
connection) is retried with exponential backoff and full jitter and counted by kind.
The API key is read from the environment variable the preset (or
`generate.api_key_env`) names; it is handed to the HTTP client and nowhere else: it is
not part of the identity, the cache, the logs or any output.

A server is untrusted input. Every request has a total deadline (`request_timeout_s`,
however slowly the server sends); a 200 that is not a completion (not JSON, an error
object, no choices, a missing text, an empty text the server did not stop on, a body cut
short or not decodable) is retried like a 5xx and never cached; choices are taken in
their `index` order; and every text is scrubbed of the key and of anything that
looks like a credential before anything else sees it (the count goes to the timings).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter

import openai

from cotdistill.core.errors import ConfigError

from . import Completion, Sampling, TeacherRequestError, cut_at_first_stop, for_sample

log = logging.getLogger(__name__)

# OpenAI's API takes at most four stop strings.
MAX_STOP = 4
# Placeholder for local servers started without --api-key (the client insists on one).
NO_KEY = "EMPTY"


class MalformedReply(Exception):
    """A 200 reply that is no completion; its message quotes the start of the body."""


class ReplyDeadline(Exception):
    """The server kept sending past the request's total deadline."""


class BrokenReply(Exception):
    """The connection broke off while the body was read (a server that died mid-reply)."""


def failure_kind(exc: BaseException) -> str | None:
    """The retryable kind of a failed request, or None when retrying cannot help."""
    if isinstance(exc, MalformedReply):
        return "malformed"
    if isinstance(exc, (openai.APITimeoutError, ReplyDeadline)):
        return "timeout"
    if isinstance(exc, (openai.APIConnectionError, BrokenReply)):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return "429"
        if exc.status_code >= 500:
            return "5xx"
    return None


def backoff_delay(attempt: int, base: float, cap: float = 60.0, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt)).

    A server's Retry-After is honoured as a floor (capped), so a rate limit is waited out.
    """
    delay = random.uniform(0.0, min(cap, base * (2**attempt)))
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def resolve_api_key(env_name: str | None, required: bool, named_in_params: bool = False) -> str:
    """The key from the environment variable `env_name` (never from params).

    A variable that generate.api_key_env names, or that the preset requires, must be set:
    otherwise the server would refuse a key that was never sent. A preset's optional
    variable may be unset (a local server started without --api-key takes any key).
    """
    key = os.environ.get(env_name) if env_name else None
    if key:
        return key
    if named_in_params:
        raise ConfigError(
            f"generate.api_key_env: the environment variable {env_name} is not set (or empty); "
            "export it with the server's key, or set generate.api_key_env: null for a server "
            "that needs none"
        )
    if required:
        raise ConfigError(
            f"teacher: the API key environment variable {env_name or '(none set)'} is empty or unset; "
            "export it (generate.api_key_env names the variable)"
        )
    return NO_KEY


# What a server reply may carry of a credential: a key header (with its scheme:
# "Authorization: Basic ..."), a bearer token, an OpenAI-style key; in an error message
# also a key-like field (api_key=, secret:), which a completion may say innocently.
_TOKEN = r"(?!\[redacted\])[^\s\"',;}\]]+"
_VALUE = r"([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?" + _TOKEN
_CREDENTIALS = (
    re.compile(r"(?i)((?:proxy-)?authorization|x-api-key)" + _VALUE),
    re.compile(r"(?i)(bearer)(\s+)(?=[^\s\"',;}\]]{6})" + _TOKEN),  # not "a bearer of news"
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
)
_FIELDS = (re.compile(r"(?i)(api[-_]?key|access[-_]?token|secret)" + _VALUE),)
REDACTED = "[redacted]"


def scrub(text: str, secrets: tuple[str, ...] = (), fields: bool = False) -> tuple[str, int]:
    """`text` with every one of `secrets` and everything that looks like a credential
    replaced by [redacted] (key-like fields too with `fields`), and how many were. The
    layout is kept: a completion scrubbed here is still the teacher's text."""
    count = 0
    for pattern in _CREDENTIALS + (_FIELDS if fields else ()):
        text, n = pattern.subn(lambda m: "".join(g for g in m.groups() if g) + REDACTED, text)
        count += n
    for secret in secrets:  # a key in no credential's shape (the header's value went above)
        if secret and secret != NO_KEY:
            count += text.count(secret)
            text = text.replace(secret, REDACTED)
    return text, count


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` scrubbed (key-like fields included), on one line, at most 500 characters.
    Every message built from a server's reply goes through here."""
    text = " ".join(scrub(text, secrets, fields=True)[0].split())
    return text if len(text) <= 500 else text[:500] + " ..."


def _quote(body: str) -> str:
    return repr(body[:200]) + (" ..." if len(body) > 200 else "")


def parse_reply(body: bytes, chat: bool) -> tuple[list[tuple[str, str | None, str | None]], int, int]:
    """([(text, finish_reason, stop_reason)] per choice, prompt tokens, completion tokens)
    of a 200
    reply's body, or MalformedReply: not JSON, an error object, no choices, a choice
    without text, or an empty text that the server did not stop on (a null text was
    once cached as "" and served for good)."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedReply(f"the reply is not JSON: {_quote(text)}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise MalformedReply(f"the reply has no choices: {_quote(text)}")
    index = [c.get("index") if isinstance(c, dict) else None for c in choices]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in index) and len(set(index)) == len(index):
        # sample k of a request is choice k, whatever order the server listed them in
        choices = [c for _, c in sorted(zip(index, choices), key=lambda pair: pair[0])]
    out = []
    for choice in choices:
        content = None
        if isinstance(choice, dict):
            content = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        if not isinstance(content, str) or (not content.strip() and finish != "stop"):
            raise MalformedReply(
                f"a choice has {'no' if not isinstance(content, str) else 'an empty'} text: {_quote(text)}"
            )
        # vLLM names the stop string a choice ended at (the others return it in the text or not at all)
        reason = choice.get("stop_reason")
        out.append((content, finish if isinstance(finish, str) else None, reason if isinstance(reason, str) else None))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def tokens(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    return out, tokens("prompt_tokens"), tokens("completion_tokens")


def read_within(response, deadline: float, timeout_s: float) -> bytes:
    """The body of `response`, or ReplyDeadline once the clock passes `deadline` (a server
    that sends one byte a second never trips a read timeout). A body cut short is a
    BrokenReply, one that cannot be decoded (says gzip, is not) a MalformedReply: the
    HTTP library's own errors, which the client raises only before the body is read."""
    http = sys.modules[type(response.http_response).__module__.split(".")[0]]  # the client's httpx
    body = bytearray()
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if time.monotonic() > deadline:
                raise ReplyDeadline(
                    f"the server was still sending after request_timeout_s = {timeout_s:g} s ({len(body)} bytes so far)"
                )
    except http.DecodingError as exc:
        raise MalformedReply(f"the reply's body cannot be decoded: {exc}") from None
    except http.TransportError as exc:
        raise BrokenReply(f"the connection broke off mid-reply ({len(body)} bytes read): {exc}") from None
    return bytes(body)


class OpenAIBackend:
    """Completions from an OpenAI-compatible server, one question per call, many at once."""

    def __init__(self, preset, cfg, shared_prefix: str | None = None):
        base_url = cfg.base_url or preset.base_url
        if not base_url:
            raise ConfigError(f"teacher '{preset.name}': no endpoint; set generate.base_url")
        self.model = cfg.served_model or preset.model
        self.chat = preset.chat
        self.concurrency = cfg.concurrency
        self.max_retries = cfg.max_retries
        self.backoff_s = cfg.retry_backoff_s
        self.timeout_s = cfg.request_timeout_s
        self._key_env = cfg.api_key_env or preset.api_key_env
        key = resolve_api_key(self._key_env, preset.api_key_required, named_in_params=cfg.api_key_env is not None)
        self._key_sent = key != NO_KEY
        self._secrets = (key,)  # for `redact` only: what a server echoes back never reaches a message
        # Our own retry loop counts failures by kind, so the client's is off.
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=self.timeout_s)
        self._lock = threading.Lock()
        self.failures: Counter[str] = Counter()
        self.retries = 0
        self.failed_attempts = 0  # read by the progress bar while workers run
        self.redacted = 0  # credentials scrubbed from the texts the server sent
        self._n_supported = True  # servers that ignore `n` answer one choice; then ask one by one
        # The endpoint is left out on purpose: the same model behind another URL (a
        # proxy, a second replica) answers alike and must hit the same cache entries.
        self.identity = {"backend": "openai", "model": self.model, "api": "chat" if self.chat else "completions"}
        # generate.calculator: every CoT is written in rounds that stop at "=" (calculator_rounds.py)
        self.rounds = bool(getattr(cfg, "calculator", False))
        if self.rounds:
            if self.chat:
                raise ConfigError(
                    f"generate.calculator: teacher '{preset.name}' uses the chat API, where a reply cannot be "
                    "continued after the calculator's value; use a completions preset (or set it to false)"
                )
            self.identity["calculator"] = "rounds"

    # ------------------------------------------------------------------ requests

    def _request(self, prompt: str, sampling: Sampling, n: int) -> list[Completion]:
        common = dict(
            model=self.model,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            timeout=self.timeout_s,
        )
        if sampling.stop:
            common["stop"] = list(sampling.stop[:MAX_STOP])
        if n > 1:
            common["n"] = n
        deadline = time.monotonic() + self.timeout_s
        # The raw body, read by us: the client's parser would take an HTML page or a null
        # text for a reply, and cannot stop a server that drips.
        if self.chat:
            api, what = self._client.chat.completions, {"messages": [{"role": "user", "content": prompt}]}
        else:
            api, what = self._client.completions, {"prompt": prompt}
        with api.with_streaming_response.create(**what, **common) as resp:
            body = read_within(resp, deadline, self.timeout_s)
        texts, prompt_tokens, completion_tokens = parse_reply(body, self.chat)
        # usage counts all choices together; split it evenly between them
        completion_tokens //= len(texts)
        out = []
        for text, finish, stop_reason in texts:
            text, n = scrub(text, self._secrets)
            if n:
                with self._lock:
                    self.redacted += n
            # some servers (transformers serve) return the stop string itself
            text, at = cut_at_first_stop(text, sampling.stop)
            at = at or (stop_reason if stop_reason in sampling.stop else None)
            finish = "stop" if at or finish == "stop" else (finish or "length")
            # a calculator round keeps its spaces: the next round continues this very text
            text = text if self.rounds else text.strip()
            out.append(Completion(text, finish, int(prompt_tokens), int(completion_tokens), at))
        return out

    def _with_retries(self, prompt: str, sampling: Sampling, n: int) -> list[Completion]:
        for attempt in range(self.max_retries + 1):
            try:
                return self._request(prompt, sampling, n)
            except (openai.OpenAIError, MalformedReply, BrokenReply, ReplyDeadline) as exc:
                kind = failure_kind(exc)
                with self._lock:
                    self.failures[kind or "fatal"] += 1
                    self.failed_attempts += 1
                if kind is None or attempt == self.max_retries:
                    raise TeacherRequestError(
                        f"teacher request failed ({kind or type(exc).__name__}) after {attempt + 1} "
                        f"attempt(s): {self._describe(exc)}; finished requests are cached, rerun to resume"
                    ) from None
                with self._lock:
                    self.retries += 1
                delay = backoff_delay(attempt, self.backoff_s, retry_after=_retry_after(exc))
                log.debug("retry %d after %s in %.2fs", attempt + 1, kind, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _describe(self, exc: BaseException) -> str:
        # A 401/403 body may echo part of the key ("Incorrect API key provided: sk-...abcd"):
        # name the variable instead. Other errors carry the status and the server's message,
        # redacted: a server (or a proxy) may echo the request headers, the key among them.
        status = getattr(exc, "status_code", None)
        if status in (401, 403) and not self._key_sent:
            return (
                f"HTTP {status}: the server wants an API key and none was sent (${self._key_env} is not set)"
                if self._key_env
                else f"HTTP {status}: the server wants an API key; name its variable in generate.api_key_env"
            )
        if status in (401, 403):
            return f"HTTP {status}: the server refused the key in ${self._key_env or '(no variable)'}"
        return redact(str(exc), self._secrets)

    def complete_samples(self, prompt: str, sampling: Sampling, samples: list[int]) -> list[Completion]:
        """Completions of `prompt` for the sample indices `samples` (in that order).

        Several samples go in one request with `n` (seed of the first index); a server
        that answers fewer choices than asked is then asked once per remaining index,
        each with its own seed.
        """
        out: list[Completion] = []
        todo = list(samples)
        if len(todo) > 1 and self._n_supported:
            got = self._with_retries(prompt, for_sample(sampling, todo[0]), len(todo))
            if len(got) < len(todo):
                self._n_supported = False
            out += got[: len(todo)]
            todo = todo[len(got) :]
        for s in todo:
            out += self._with_retries(prompt, for_sample(sampling, s), 1)[:1]
        return out

    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]:
        """One completion per prompt, sequentially (the loop uses complete_samples)."""
        return [self._with_retries(p, sampling, 1)[0] for p in prompts]

    def close(self) -> None:
        self._client.close()
