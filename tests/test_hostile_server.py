"""A server is untrusted input (issue 22): replies that are no completion, a server that
drips, and one that echoes the key inside a completion. The backend against the stub
server of fault_helpers, in this process; the stage-level case (nothing written holds
the key) is in test_error_lines.py."""

import time

import pytest

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.generate.teachers import Sampling, TeacherRequestError
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.generate.teachers.openai_compat import MalformedReply, OpenAIBackend, parse_reply, scrub

from .conftest import section
from .fault_helpers import OK_TEXT, StubTeacher

KEY = "sk-hostile-server-0123456789abcdef"
PROMPTS = ["Q: Is the coin heads up?\nA:", "Q: Is the coin tails up?\nA:"]


@pytest.fixture
def stub(monkeypatch):
    """A StubTeacher per test (`stub(mode, ...)`), closed afterwards; the key in the env."""
    monkeypatch.setenv("COTDISTILL_TEST_TEACHER_KEY", KEY)
    servers = []

    def make(mode, **kw):
        servers.append(StubTeacher(mode, **kw))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def backend_for(server, **generate):
    cfg = section(
        "generate",
        **{
            "base_url": server.url,
            "served_model": "stub",
            "concurrency": 2,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "api_key_env": "COTDISTILL_TEST_TEACHER_KEY",
            **generate,
        },
    )
    return OpenAIBackend(TEACHERS.get("transformers-serve"), cfg)


def run(backend, tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    return generate_all(backend, PROMPTS, Sampling(16), cache, 4, 1, progress=False), cache


@pytest.mark.parametrize(
    "mode, quoted",
    [
        ("html200", "<html><body><h1>502 Bad Gateway"),
        ("truncated", '{"id": "cmpl-stub", "object": "text_com'),
        ("error200", "the model is overloaded"),
        ("null_choices", '"choices": null'),
        ("null_text", '"text": null'),
        ("empty_length", '"text": ""'),
        ("bad_gzip", "the reply's body cannot be decoded"),  # was httpx's DecodingError, a traceback
    ],
)
def test_a_200_that_is_no_completion_is_retried_then_one_line_and_never_cached(stub, tmp_path, mode, quoted):
    server = stub(mode)
    with pytest.raises(TeacherRequestError) as err:
        run(backend_for(server), tmp_path)
    line = str(err.value)
    assert "\n" not in line and line.startswith("teacher request failed (malformed) after 3 attempt(s): ")
    assert quoted in line and len(line) < 500
    assert len(RequestCache(tmp_path / "requests.sqlite")) == 0  # nothing malformed is an answer


@pytest.mark.parametrize("mode", ["html200", "null_text", "empty_length", "error200"])
def test_a_malformed_reply_is_retried_like_a_5xx(stub, tmp_path, mode):
    server = stub(mode, bad_first=1)
    (results, stats), cache = run(backend_for(server), tmp_path)
    assert [r[0].text for r in results] == [OK_TEXT.strip()] * 2 and len(cache) == 2
    assert stats.costs()["failures"]["malformed"] == 1 and stats.retries == 1


def test_an_empty_text_the_server_stopped_on_is_an_answer():
    # the model wrote its end of sequence first: a real (useless) answer, which the filter drops
    body = b'{"choices": [{"text": "", "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}}'
    assert parse_reply(body, chat=False) == ([("", "stop", None)], 3, 0)
    with pytest.raises(MalformedReply):
        parse_reply(b'{"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}', chat=True)


def test_request_timeout_is_a_deadline_for_a_server_that_drips(stub, tmp_path):
    server = stub("drip", delay_s=0.05)  # the ~300-byte reply would take ~15 s
    start = time.monotonic()
    with pytest.raises(TeacherRequestError) as err:
        run(backend_for(server, request_timeout_s=1.0, max_retries=1), tmp_path)
    assert time.monotonic() - start < 8  # two attempts of 1 s each, and their backoff
    assert "(timeout) after 2 attempt(s)" in str(err.value) and "request_timeout_s = 1 s" in str(err.value)


def test_the_key_a_server_echoes_in_a_completion_is_scrubbed_before_the_cache(stub, tmp_path):
    server = stub("echo200")
    (results, stats), cache = run(backend_for(server), tmp_path)
    assert server.requests[0]["auth"] == f"Bearer {KEY}"  # it was sent, and echoed back
    texts = [r[0].text for r in results]
    assert all(
        t.startswith("Authorization: [redacted] ") and KEY not in t and t.endswith("The answer is yes.") for t in texts
    )
    assert KEY.encode() not in (tmp_path / "requests.sqlite").read_bytes()
    assert stats.costs()["redacted"] == 2


@pytest.mark.parametrize(
    "text, expected, count",
    [
        (f"I was told {KEY} and more", "I was told [redacted] and more", 1),
        ("Authorization: Bearer abcdef123456\nThe answer is 4.", "Authorization: [redacted]\nThe answer is 4.", 1),
        ("so the secret = 42 and the api_key: 7", "so the secret = 42 and the api_key: 7", 0),  # words, not keys
        ("a bearer of news.  The answer is no.", "a bearer of news.  The answer is no.", 0),
    ],
)
def test_scrub_keeps_the_text_and_counts(text, expected, count):
    assert scrub(text, (KEY,)) == (expected, count)


def test_a_server_that_dies_mid_reply_is_retried_then_one_line(stub, tmp_path):
    """Fewer bytes than Content-Length said: was httpx's RemoteProtocolError, a traceback."""
    with pytest.raises(TeacherRequestError) as err:
        run(backend_for(stub("cut")), tmp_path)
    assert str(err.value).startswith(
        "teacher request failed (connection) after 3 attempt(s): the connection broke off mid-reply ("
    )
    (results, stats), cache = run(backend_for(stub("cut", bad_first=1)), tmp_path)
    assert [r[0].text for r in results] == [OK_TEXT.strip()] * 2 and stats.costs()["failures"]["connection"] == 1


def test_streamed_chunks_nobody_asked_for_are_malformed_and_their_key_is_never_quoted(stub, tmp_path):
    server = stub("sse_echo")
    with pytest.raises(TeacherRequestError) as err:
        run(backend_for(server), tmp_path)
    assert server.requests[0]["auth"] == f"Bearer {KEY}"
    assert "(malformed)" in str(err.value) and "Bearer [redacted]" in str(err.value) and KEY not in str(err.value)
    assert len(RequestCache(tmp_path / "requests.sqlite")) == 0


def test_sample_k_is_the_choice_of_index_k_whatever_order_the_server_lists_them(stub, tmp_path):
    """A server listing its n choices out of order gave sample 0 the text of choice 3."""
    cache = RequestCache(tmp_path / "requests.sqlite")
    results, _ = generate_all(
        backend_for(stub("shuffled")), PROMPTS[:1], Sampling(16, temperature=0.7), cache, 1, 4, progress=False
    )
    assert [c.text for c in results[0]] == [f"Sample {i}. The answer is yes." for i in range(4)]


def test_a_redirect_to_another_origin_does_not_carry_the_key(stub, tmp_path):
    """Passed before (httpx drops Authorization across origins); held here so it stays so."""
    server, other = stub("redirect"), stub("ok")
    server.redirect_to = other.url
    (results, _), _ = run(backend_for(server), tmp_path)
    assert [r[0].text for r in results] == [OK_TEXT.strip()] * 2
    assert server.requests[0]["auth"] == f"Bearer {KEY}" and {r["auth"] for r in other.requests} == {None}
