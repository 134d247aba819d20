"""`openai` backend: any OpenAI-compatible endpoint (vLLM, SGLang, `transformers serve`,
Ollama, a llama.cpp server, OpenAI itself), through the chat or the completions API.

The generation loop calls `complete_samples` from `concurrency` threads; the server
batches what is in flight. Every transient failure (429, 5xx, timeout, dropped
connection) is retried with exponential backoff and full jitter and counted by kind.
The API key is read from the environment variable the preset (or
`generate.api_key_env`) names; it is handed to the HTTP client and nowhere else: it is
not part of the identity, the cache, the logs or any output.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import Counter

import openai

from ..errors import ConfigError
from . import Completion, Sampling, TeacherRequestError, cut_at_stop, for_sample

log = logging.getLogger(__name__)

# OpenAI's API takes at most four stop strings.
MAX_STOP = 4
# Placeholder for local servers started without --api-key (the client insists on one).
NO_KEY = "EMPTY"


def failure_kind(exc: BaseException) -> str | None:
    """The retryable kind of a failed request, or None when retrying cannot help."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
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
        raise ConfigError(f"generate.api_key_env: the environment variable {env_name} is not set (or empty); "
                          "export it with the server's key, or set generate.api_key_env: null for a server "
                          "that needs none")
    if required:
        raise ConfigError(f"teacher: the API key environment variable {env_name or '(none set)'} is empty or unset; "
                         "export it (generate.api_key_env names the variable)")
    return NO_KEY


# What a server reply may carry of a credential: a key-like header or field (with its
# scheme: "Authorization: Basic ..."), a bearer token, an OpenAI-style key.
_TOKEN = r"(?!\[redacted\])[^\s\"',;}\]]+"
_SECRET_PATTERNS = (
    re.compile(r"(?i)((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token|secret)([\"']?\s*[:=]\s*[\"']?)"
               r"(?:(?:bearer|basic|token)\s+)?" + _TOKEN),
    re.compile(r"(?i)(bearer)(\s+)(?=[^\s\"',;}\]]{6})" + _TOKEN),  # not "a bearer of news"
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
)
REDACTED = "[redacted]"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with everything that looks like a credential, and every one of `secrets`,
    replaced by [redacted]; on one line, at most 500 characters. Every message built from
    a server's reply goes through here."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: "".join(m.groups()) + REDACTED, text)
    for secret in secrets:
        if secret and secret != NO_KEY:
            text = text.replace(secret, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:500] + " ..."


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
        self._n_supported = True  # servers that ignore `n` answer one choice; then ask one by one
        # The endpoint is left out on purpose: the same model behind another URL (a
        # proxy, a second replica) answers alike and must hit the same cache entries.
        self.identity = {"backend": "openai", "model": self.model, "api": "chat" if self.chat else "completions"}

    # ------------------------------------------------------------------ requests

    def _request(self, prompt: str, sampling: Sampling, n: int) -> list[Completion]:
        common = dict(
            model=self.model, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, seed=sampling.seed, timeout=self.timeout_s,
        )
        if sampling.stop:
            common["stop"] = list(sampling.stop[:MAX_STOP])
        if n > 1:
            common["n"] = n
        if self.chat:
            resp = self._client.chat.completions.create(messages=[{"role": "user", "content": prompt}], **common)
            texts = [(c.message.content or "", c.finish_reason) for c in resp.choices]
        else:
            resp = self._client.completions.create(prompt=prompt, **common)
            texts = [(c.text or "", c.finish_reason) for c in resp.choices]
        usage = resp.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        # usage counts all choices together; split it evenly between them
        completion_tokens = (usage.completion_tokens // max(len(texts), 1)) if usage else 0
        out = []
        for text, finish in texts:
            # some servers (transformers serve) return the stop string itself
            text, stopped = cut_at_stop(text, sampling.stop)
            finish = "stop" if stopped or finish == "stop" else (finish or "length")
            out.append(Completion(text.strip(), finish, int(prompt_tokens), int(completion_tokens)))
        return out

    def _with_retries(self, prompt: str, sampling: Sampling, n: int) -> list[Completion]:
        for attempt in range(self.max_retries + 1):
            try:
                return self._request(prompt, sampling, n)
            except openai.OpenAIError as exc:
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
            return (f"HTTP {status}: the server wants an API key and none was sent "
                    f"(${self._key_env} is not set)" if self._key_env else
                    f"HTTP {status}: the server wants an API key; name its variable in generate.api_key_env")
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
            todo = todo[len(got):]
        for s in todo:
            out += self._with_retries(prompt, for_sample(sampling, s), 1)[:1]
        return out

    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]:
        """One completion per prompt, sequentially (the loop uses complete_samples)."""
        return [self._with_retries(p, sampling, 1)[0] for p in prompts]

    def close(self) -> None:
        self._client.close()

