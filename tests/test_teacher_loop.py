"""The teacher machinery without a model: cache, concurrent loop, retries, keys, config."""

import json
import multiprocessing
import threading

import openai
import pytest

from cotdistill.core.config import ConfigError, parse_params
from cotdistill.generate.teachers import (
    Completion,
    Sampling,
    TeacherRequestError,
    cut_at_first_stop,
    cut_at_stop,
    for_sample,
    sample_seed,
)
from cotdistill.generate.teachers.cache import RequestCache, request_key
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.generate.teachers.openai_compat import backoff_delay, failure_kind, resolve_api_key


class ThreadedBackend:
    """A deterministic stand-in for a server-backed teacher: concurrent calls, per-sample seeds."""

    identity = {"backend": "threaded", "model": "m"}

    def __init__(self, concurrency=4, fail_on=None):
        self.concurrency = concurrency
        self.fail_on = fail_on
        self.calls = []
        self.lock = threading.Lock()
        self.failures = {}

    def complete_samples(self, prompt, sampling, samples):
        if prompt == self.fail_on:
            raise TeacherRequestError("boom")
        with self.lock:
            self.calls += [(prompt, s) for s in samples]
        return [Completion(f"{prompt} seed={for_sample(sampling, s).seed}", "stop", 3, 2) for s in samples]


def test_sample_seeds_differ_per_index_and_repeat():
    seeds = [sample_seed(7, s) for s in range(5)]
    assert seeds[0] == 7 and len(set(seeds)) == 5
    assert seeds == [sample_seed(7, s) for s in range(5)]
    assert sample_seed(8, 1) != sample_seed(7, 1)


def test_concurrent_loop_pays_once_and_keeps_order(tmp_path):
    prompts = [f"q{i}" for i in range(20)]
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = ThreadedBackend()
    first, stats = generate_all(backend, prompts, Sampling(8), cache, batch_size=4, num_samples=3, progress=False)
    assert stats.sent == 60 and stats.cache_hits == 0 and len(backend.calls) == 60
    assert sorted(backend.calls) == sorted({(p, s) for p in prompts for s in range(3)})  # none twice
    for i, samples in enumerate(first):
        assert [c.text.split()[0] for c in samples] == [f"q{i}"] * 3
        assert len({c.text for c in samples}) == 3  # each sample index has its own seed
    again, stats2 = generate_all(
        ThreadedBackend(), prompts, Sampling(8), RequestCache(tmp_path / "c.sqlite"), 4, 3, False
    )
    assert stats2.sent == 0 and stats2.cache_hits == 60 and again == first
    # one more sample per question: only the new index is sent
    backend3 = ThreadedBackend()
    _, stats3 = generate_all(backend3, prompts, Sampling(8), cache, 4, 4, False)
    assert stats3.sent == 20 and stats3.cache_hits == 60 and {s for _, s in backend3.calls} == {3}


class BatchedBackend:
    """A batched stand-in that takes 10 ms per call."""

    identity = {"backend": "batched", "model": "m"}
    concurrency = 1

    def complete(self, prompts, sampling):
        import time

        time.sleep(0.01)
        return [Completion(f"{p}!", "stop", 5, 7) for p in prompts]


def test_a_warm_cache_still_reports_what_the_generations_cost(tmp_path):
    prompts = [f"q{i}" for i in range(8)]
    _, cold = generate_all(BatchedBackend(), prompts, Sampling(8), RequestCache(tmp_path / "c.sqlite"), 4, 1, False)
    _, warm = generate_all(BatchedBackend(), prompts, Sampling(8), RequestCache(tmp_path / "c.sqlite"), 4, 1, False)
    assert cold.outcome() == warm.outcome()  # the metrics do not tell a warm cache from a cold one
    c, w = {**cold.outcome(), **cold.costs()}, {**warm.outcome(), **warm.costs()}
    assert c["generations"]["completion_tokens"] == w["generations"]["completion_tokens"] == 56
    assert c["generations"]["prompt_tokens"] == w["generations"]["prompt_tokens"] == 40
    assert w["teacher_s"] == c["teacher_s"] >= 0.02  # two calls of >= 10 ms
    assert w["generations"]["backend"] == "batched" and w["teacher_s_unknown"] == 0
    assert c["sent"]["completion_tokens"] == 56 and c["requests_sent"] == 8
    assert (
        w["sent"]
        == {"prompt_tokens": 0, "completion_tokens": 0, "wall_s": w["sent"]["wall_s"], "completion_tokens_per_s": 0.0}
        and w["requests_sent"] == 0
    )
    assert "useful_tokens_per_s" not in w


def test_a_cache_from_before_costs_were_kept_gains_them(tmp_path):
    import json
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE requests (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL)")
    key = request_key(BatchedBackend.identity, "q0", Sampling(8), 0)
    db.execute(
        "INSERT INTO requests VALUES (?, ?, 0)",
        (key, json.dumps({"text": "old", "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 3})),
    )
    db.commit()
    db.close()
    results, stats = generate_all(BatchedBackend(), ["q0", "q1"], Sampling(8), RequestCache(path), 4, 1, False)
    assert [r[0].text for r in results] == ["old", "q1!"]
    g = stats.outcome()["generations"]
    assert stats.costs()["teacher_s_unknown"] == 1 and g["completion_tokens"] == 3 + 7 and g["backend"] == "batched"


def test_failed_request_keeps_finished_ones(tmp_path):
    prompts = [f"q{i}" for i in range(12)]
    cache = RequestCache(tmp_path / "c.sqlite")
    with pytest.raises(TeacherRequestError):
        generate_all(ThreadedBackend(concurrency=2, fail_on="q5"), prompts, Sampling(8), cache, 4, 1, False)
    done = len(cache)
    assert 0 < done < 12
    backend = ThreadedBackend()
    _, stats = generate_all(backend, prompts, Sampling(8), cache, 4, 1, False)
    assert stats.cache_hits == done and stats.sent == 12 - done == len(backend.calls)


def _writer(path, start, n):
    cache = RequestCache(path)
    for k in range(start, start + n):
        cache.put_many([(f"k{k}", Completion(str(k), "stop", 1, 1), 0.5, "test")])
    cache.close()


def test_cache_takes_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, start, 60)) for start in (0, 30, 60)]  # overlapping keys
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = RequestCache(path)
    assert len(cache) == 120
    got = cache.get_many([f"k{k}" for k in range(125)])
    assert len(got) == 120 and got["k7"].completion.text == "7" and got["k7"].seconds == 0.5


def test_request_key_covers_model_prompt_sampling_and_index():
    base = request_key({"model": "a"}, "p", Sampling(8), 0)
    assert base != request_key({"model": "b"}, "p", Sampling(8), 0)
    assert base != request_key({"model": "a"}, "p2", Sampling(8), 0)
    assert base != request_key({"model": "a"}, "p", Sampling(8, temperature=0.5), 0)
    assert base != request_key({"model": "a"}, "p", Sampling(8), 1)
    assert base == request_key({"model": "a"}, "p", Sampling(8), 0)


def _status_error(code):
    import httpx2

    req = httpx2.Request("POST", "http://127.0.0.1/v1/completions")
    return openai.APIStatusError("x", response=httpx2.Response(code, request=req), body=None)


@pytest.mark.parametrize("code, kind", [(429, "429"), (500, "5xx"), (503, "5xx"), (400, None), (401, None)])
def test_failure_kinds(code, kind):
    assert failure_kind(_status_error(code)) == kind


def test_failure_kinds_network():
    import httpx2

    req = httpx2.Request("POST", "http://127.0.0.1/v1/completions")
    assert failure_kind(openai.APITimeoutError(request=req)) == "timeout"
    assert failure_kind(openai.APIConnectionError(request=req)) == "connection"


def test_backoff_grows_with_jitter_and_honours_retry_after():
    for attempt in range(6):
        d = [backoff_delay(attempt, 0.5, cap=10) for _ in range(200)]
        assert all(0 <= x <= min(10, 0.5 * 2**attempt) for x in d)
        assert len(set(d)) > 100  # jittered
    assert backoff_delay(0, 0.1, retry_after=3) >= 3
    assert backoff_delay(0, 0.1, cap=5, retry_after=100) <= 5


def test_api_key_only_from_environment(monkeypatch):
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    assert resolve_api_key("MY_TEACHER_KEY", required=True) == "sk-test-123"
    monkeypatch.delenv("MY_TEACHER_KEY")
    assert resolve_api_key("MY_TEACHER_KEY", required=False) == "EMPTY"
    with pytest.raises(ValueError, match="MY_TEACHER_KEY is empty or unset"):
        resolve_api_key("MY_TEACHER_KEY", required=True)


def test_params_reject_a_key_pasted_as_env_name(base_params):
    base_params["generate"]["api_key_env"] = "sk-proj-abc123"
    with pytest.raises(ConfigError) as err:
        parse_params(base_params)
    assert "generate.api_key_env" in str(err.value) and "sk-proj-abc123" not in str(err.value)
    base_params["generate"]["api_key_env"] = "OPENAI_API_KEY"
    with pytest.raises(
        ConfigError,
        match="generate.api_key_env: only for teachers with backend openai; teacher 'smollm2-135m' has backend hf",
    ):
        parse_params(base_params)  # the hf teacher would ignore it
    base_params["teacher"] = "vllm-local"
    assert parse_params(base_params).generate.api_key_env == "OPENAI_API_KEY"
    base_params["generate"]["concurrency"] = 0
    with pytest.raises(ConfigError, match="generate.concurrency: must be >= 1"):
        parse_params(base_params)


def test_openai_presets_listed(repo_root):
    from .conftest import run_cmd, venv_bin

    out = run_cmd([venv_bin("cotdistill"), "presets"], repo_root).stdout
    assert "vllm-local" in out and "http://127.0.0.1:8000/v1" in out and "$OPENAI_API_KEY" in out


def test_refused_key_is_not_echoed(monkeypatch):
    from cotdistill.core.catalog.teachers import TEACHERS
    from cotdistill.generate.teachers.openai_compat import OpenAIBackend

    from .conftest import section

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-abcd")
    backend = OpenAIBackend(TEACHERS.get("openai-gpt-4o-mini"), section("generate", base_url="http://127.0.0.1:9/v1"))
    msg = backend._describe(_status_error(401))
    assert "$OPENAI_API_KEY" in msg and "abcd" not in msg
    assert backend.identity == {"backend": "openai", "model": "gpt-4o-mini", "api": "chat"}


def test_stage_gives_up_with_one_line_when_the_server_is_down(tmp_path, python, repo_root):
    import json

    import yaml

    from cotdistill.generate.teachers.local_server import free_port

    from .conftest import run_cmd

    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "a", "question": "Q?", "answer": "yes"}) + "\n")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["teacher"] = "vllm-local"
    params["generate"].update(
        base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, retry_backoff_s=0.01, shots=0
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_cmd(
        [
            python,
            str(repo_root / "stages/generate.py"),
            "--params",
            "params.yaml",
            "--inputs",
            "train.jsonl",
            "--prompt",
            str(repo_root / "src/cotdistill/generate/prompts/coin_flip.yaml"),
            "--cache",
            str(tmp_path / "c.db"),
            "--out",
            "gen.jsonl",
            "--metrics",
            "m.json",
        ],
        tmp_path,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: teacher request failed (connection) after 2 attempt")
    assert "Traceback" not in proc.stderr and not (tmp_path / "gen.jsonl").exists()


class CountingBackend:
    """A deterministic stand-in for a teacher, to test the cache loop without a model."""

    identity = {"backend": "counting", "model": "m"}

    def __init__(self):
        self.calls = []

    def complete(self, prompts, sampling):
        self.calls += prompts
        return [Completion(f"{p[::-1]} The answer is yes.", "stop", len(p), 5) for p in prompts]


def test_generate_all_pays_once(tmp_path):
    prompts = [f"prompt {i}" for i in range(7)]
    sampling = Sampling(16, stop=("\n",))
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = CountingBackend()
    first, stats = generate_all(backend, prompts, sampling, cache, batch_size=3, num_samples=2, progress=False)
    assert stats.sent == 14 and stats.cache_hits == 0 and len(backend.calls) == 14
    again, stats2 = generate_all(backend, prompts, sampling, RequestCache(tmp_path / "c.sqlite"), 3, 2, False)
    assert stats2.sent == 0 and stats2.cache_hits == 14 and again == first
    # a different sampling setting is a different request
    _, stats3 = generate_all(backend, prompts[:1], Sampling(32), cache, 3, 1, False)
    assert stats3.sent == 1
    assert request_key({"m": 1}, "p", sampling, 0) != request_key({"m": 1}, "p", sampling, 1)
    assert json.dumps(stats.outcome()) and json.dumps(stats.costs())


def test_cut_at_stop():
    assert cut_at_stop("abc\n\nQuestion: x", ("\nQuestion:", "\n\n")) == ("abc", True)
    assert cut_at_stop("abc", ("\n\n",)) == ("abc", False)


def test_verified_sampling_stops_each_question_at_its_first_verified_round(tmp_path):
    """Rounds of 2 samples, at most 6: a question stops after the round that holds its first
    verified sample; a rerun pays nothing, and a larger budget pays only the rounds it adds
    for the questions still open."""
    from cotdistill.generate.teachers.generation import generate_verified

    prompts = [f"q{i}" for i in range(12)]

    def verified(i, c):  # question i is verified by its sample i % 5 (and by no other)
        seed = int(c.text.split("seed=")[1])
        return seed == for_sample(Sampling(8, temperature=0.7), i % 5).seed

    sampling = Sampling(8, temperature=0.7)
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = ThreadedBackend()
    results, stats, first_ok = generate_verified(backend, prompts, sampling, cache, 4, 2, 6, verified, progress=False)
    # question i is verified in round (i % 5) // 2 + 1 (sample 4: the third and last round)
    assert first_ok == [i % 5 for i in range(12)]
    assert [len(r) for r in results] == [2 * (i % 5 // 2 + 1) for i in range(12)]
    assert stats.sent == len(backend.calls) == sum(len(r) for r in results)
    assert sorted(backend.calls) == sorted((f"q{i}", s) for i in range(12) for s in range(len(results[i])))
    again, stats2, ok2 = generate_verified(ThreadedBackend(), prompts, sampling, cache, 4, 2, 6, verified, False)
    assert stats2.sent == 0 and again == results and ok2 == first_ok

    # a question no sample verifies spends the budget; a larger one pays only the new rounds
    def never(i, c):
        return False

    small, stats3, ok3 = generate_verified(ThreadedBackend(), prompts[:3], sampling, cache, 4, 2, 4, never, False)
    assert ok3 == [None] * 3 and [len(r) for r in small] == [4, 4, 4]
    more = ThreadedBackend()
    big, stats4, _ = generate_verified(more, prompts[:3], sampling, cache, 4, 2, 8, never, False)
    assert [len(r) for r in big] == [8, 8, 8] and [r[:4] for r in big] == small
    # samples 0-3 of q0..q2 are cached: only 4-7 are sent
    assert sorted(more.calls) == sorted((f"q{i}", s) for i in range(3) for s in (4, 5, 6, 7))
    assert stats4.cache_hits == 12 and stats4.sent == 12


def test_a_later_round_of_a_batched_backend_asks_the_next_sample_indices(tmp_path):
    class SeedBackend(CountingBackend):
        def complete(self, prompts, sampling):
            self.calls += [(p, sampling.seed) for p in prompts]
            return [Completion(f"{p} {sampling.seed}", "stop", 1, 1) for p in prompts]

    sampling = Sampling(8, temperature=0.7, seed=3)
    cache = RequestCache(tmp_path / "c.sqlite")
    backend = SeedBackend()
    first, _ = generate_all(backend, ["a", "b"], sampling, cache, 4, 2, False)
    later, stats = generate_all(backend, ["a", "b"], sampling, cache, 4, 2, False, first_sample=2)
    assert stats.sent == 4 and stats.cache_hits == 0
    assert [c.text for c in later[0]] == [f"a {for_sample(sampling, s).seed}" for s in (2, 3)]
    both, stats = generate_all(backend, ["a", "b"], sampling, cache, 4, 4, False)
    assert stats.sent == 0 and [row[2:] for row in both] == later and [row[:2] for row in both] == first


@pytest.mark.parametrize(
    "generate, message",
    [
        ({"k_max": 8, "temperature": 0.0}, "generate.k_max: rounds of samples at generate.temperature 0"),
        ({"k_max": 2, "num_samples": 4, "temperature": 0.7}, "generate.k_max: 2 is below generate.num_samples"),
        ({"k_max": 0, "temperature": 0.7}, "generate.k_max"),
    ],
)
def test_impossible_verified_sampling_params_are_refused(generate, message):
    from .conftest import make_params

    with pytest.raises(ConfigError, match=message):
        make_params({"generate": generate})
    make_params({"generate": {"k_max": 8, "num_samples": 4, "temperature": 0.7}})


def test_the_teachers_calculator_is_refused_for_a_backend_without_it():
    from .conftest import make_params

    over = {"teacher": "openai-gpt-4o-mini", "generate": {"calculator": True}}
    with pytest.raises(ConfigError, match="generate.calculator: .* backend openai with the chat API"):
        make_params(over)
    with pytest.raises(ConfigError, match="generate.calculator: .* has backend llamacpp"):
        make_params({"teacher": "smollm2-135m-llamacpp", "generate": {"calculator": True}})
    assert make_params({"generate": {"calculator": True}}).generate.calculator is True
    server = {"teacher": "vllm-local", "generate": {"calculator": True, "base_url": "http://127.0.0.1:8000/v1"}}
    assert make_params(server).generate.calculator is True


class RoundsBackend:
    """A stand-in for a completions server, to test the calculator rounds without a model:
    it writes one scripted CoT (wrong values glued to every "="), continuing after the "="
    the prompt's CoT has reached, up to the first of the request's stop strings (naming it,
    as `transformers serve` does by returning it; with `say_stop=False`, as OpenAI does,
    not). Each reply costs 4 tokens."""

    identity = {"backend": "rounds", "model": "m"}
    rounds = True
    SCRIPT = " 3 + 4 =9. 9 * 2 =5. Then 17 + 1 =8. The answer is 18.\n\nQuestion: next"

    def __init__(self, say_stop=True, fail_at=None):
        self.concurrency, self.say_stop, self.fail_at = 3, say_stop, fail_at
        self.calls = []
        self.lock = threading.Lock()

    def complete_samples(self, prompt, sampling, samples):
        cot = prompt.partition("A:")[2]
        with self.lock:
            self.calls.append((prompt, sampling.max_new_tokens))
            if self.fail_at is not None and len(self.calls) > self.fail_at:
                raise TeacherRequestError("the server died")
        rest = self.SCRIPT.split("=", cot.count("="))[-1]
        cut, at = cut_at_first_stop(rest, sampling.stop)
        return [Completion(cut, "stop" if at else "length", 10 + len(cot), 4, at if self.say_stop else None)]


def test_a_server_teachers_calculator_writes_each_cot_in_cached_rounds(tmp_path):
    """generate.calculator on a server: each CoT goes round by round to the next "=", the
    calculator's value is written after every arithmetic expression (and closed: digits
    glued to it are dropped), a round is a cached request, and a rerun after a failure
    sends only the rounds that were not answered."""
    prompts = [f"Q{i}? A:" for i in range(4)]
    sampling = Sampling(64, stop=("\n\nQuestion:", "\n\n"))
    want = "3 + 4 = 7. 9 * 2 = 18. Then 17 + 1 = 18. The answer is 18."
    for say_stop in (True, False):
        cache = RequestCache(tmp_path / f"c{say_stop}.sqlite")
        backend = RoundsBackend(say_stop=say_stop)
        results, stats = generate_all(backend, prompts, sampling, cache, 8, progress=False)
        assert [r[0].text for r in results] == [want] * 4, results[0][0].text
        assert all(r[0].finish_reason == "stop" for r in results)
        assert stats.sent == stats.requests == 16 and len(backend.calls) == 16  # 4 rounds per CoT
        assert stats.made_completion_tokens == 4 * 16  # every round's tokens count
        # the budget left shrinks round by round (4 tokens each)
        assert sorted({n for _, n in backend.calls}) == [52, 56, 60, 64]
        again, stats2 = generate_all(RoundsBackend(say_stop), prompts, sampling, cache, 8, progress=False)
        assert again == results and stats2.sent == 0 and stats2.cache_hits == 16

    # a server that dies after 6 rounds: what came back is cached; the rerun sends the rest
    cache = RequestCache(tmp_path / "crash.sqlite")
    with pytest.raises(TeacherRequestError):
        generate_all(RoundsBackend(fail_at=6), prompts, sampling, cache, 8, progress=False)
    answered = len(cache)
    assert 1 <= answered <= 6
    rerun = RoundsBackend()
    results, stats = generate_all(rerun, prompts, sampling, cache, 8, progress=False)
    assert [r[0].text for r in results] == [want] * 4
    assert stats.cache_hits == answered and stats.sent == len(rerun.calls) == 16 - answered
    # out of budget at an "=": the CoT ends there, as cut by length
    short, _ = generate_all(RoundsBackend(), prompts[:1], Sampling(8, stop=sampling.stop), cache, 8, progress=False)
    assert short[0][0].finish_reason == "length" and short[0][0].text == "3 + 4 = 7. 9 * 2 ="


def test_requests_in_flight_stop_on_a_failure_and_keep_what_came_back():
    """InFlight, the one loop both server paths wait on: after a failed request nothing
    more is sent (not even a CoT's next round) and the first error is raised once every
    running request is answered; on any other exit (here an error while answering, as a
    failed cache commit or Ctrl-C would be) nothing queued starts, what runs finishes, and
    every answer that came back but was not answered goes to `keep`."""
    from cotdistill.generate.teachers import InFlight

    sent = []
    gate = threading.Event()
    threading.Timer(1.0, gate.set).start()

    def send(x):
        sent.append(x)
        if x == "bad":
            raise TeacherRequestError("boom")
        if x == "slow":
            gate.wait(10)
        return x

    answered = []
    with pytest.raises(TeacherRequestError):
        with InFlight(2, keep=lambda item, got: None) as flight:

            def next_round(item, got):
                answered.append(item)
                flight.submit(f"{item}+", send, f"{item}+")  # refused once a request failed

            flight.submit("slow", send, "slow")
            flight.submit("bad", send, "bad")
            flight.drain(next_round)
    assert answered == ["slow"] and "slow+" not in sent  # the running one was answered, no next round

    sent.clear()
    gate.clear()
    threading.Timer(1.0, gate.set).start()
    answered, kept = [], []
    with pytest.raises(KeyboardInterrupt):
        with InFlight(1, keep=lambda item, got: kept.append((item, got[0]))) as flight:
            for x in ("fast", "slow", "queued"):
                flight.submit(x, send, x)

            def interrupted(item, got):
                answered.append(item)
                raise KeyboardInterrupt

            flight.drain(interrupted)
    # "fast" was being answered: kept; what else ran (the worker may have started "slow"
    # before the cancel) came back and was kept too: nothing that was sent is lost
    assert answered == ["fast"] and kept[0] == ("fast", "fast")
    assert sorted(sent) == sorted(item for item, _ in kept)
