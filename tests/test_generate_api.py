"""The OpenAI-compatible backend (on the openai SDK, through an httpx.MockTransport): replies in order,
retries, Retry-After, one-line errors, the key kept out of sight, bounded concurrency; the specs; and
one real round trip through `transformers serve` on loopback (slow)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import pytest
from conftest import transformers_server

from genpi.errors import GenpiError
from genpi.generate import ApiSpec, FakeBackend, LocalSpec, SameSpec, build_backend
from genpi.generate.openai_api import OpenAIBackend

CONV = [{"role": "user", "content": "hi"}]
KEY_ENV = "GENPI_TEST_API_KEY"


def _ok(text):
    return httpx.Response(200, json={"choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": text}}]})


def _backend(handler, **spec):
    spec.setdefault("api_key_env", KEY_ENV)
    return OpenAIBackend(ApiSpec(api_base="http://gen.test/v1/", api_model="m", **spec),
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """The SDK's waits between attempts, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    monkeypatch.delenv(KEY_ENV, raising=False)
    return waits


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_replies_come_back_in_order():
    def handler(request):
        return _ok(json.loads(request.content)["messages"][0]["content"].upper() + "<|im_end|>")

    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]
    assert _backend(handler).chat(convs, max_new_tokens=3) == [f"Q{i}" for i in range(10)]
    assert _backend(handler).chat([], max_new_tokens=3) == []


def test_requests_run_concurrently_up_to_the_limit():
    # every request waits until 3 are in flight together: this passes only if 3 run at once
    barrier, lock, state = threading.Barrier(3, timeout=10), threading.Lock(), {"now": 0, "max": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        barrier.wait()
        with lock:
            state["now"] -= 1
        return _ok(json.loads(request.content)["messages"][0]["content"])

    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
    assert _backend(handler, concurrency=3).chat(convs, max_new_tokens=3) == [f"q{i}" for i in range(9)]
    assert state["max"] == 3


def test_retries_a_server_error_then_succeeds(sleeps):
    answers = iter([httpx.Response(500, json={"error": {"message": "busy"}}), _ok("fine")])
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return next(answers)

    b = _backend(handler, retries=3)
    assert b.chat([CONV], max_new_tokens=5, temperature=0.7, top_p=0.9, seed=11) == ["fine"]
    assert len(seen) == 2 and len(sleeps) == 1 and 0 < sleeps[0] < 10  # one backoff wait
    assert seen[0] == {"model": "m", "messages": CONV, "max_tokens": 5, "temperature": 0.7, "top_p": 0.9,
                       "seed": 11, "stream": False}


def test_seed_differs_per_conversation_and_is_left_out_without_one():
    seeds = []

    def handler(request):
        seeds.append(json.loads(request.content).get("seed"))
        return _ok("x")

    _backend(handler, concurrency=1).chat([CONV, CONV], max_new_tokens=2, seed=5)
    _backend(handler).chat([CONV], max_new_tokens=2)
    assert seeds == [5, 6, None]


def test_429_waits_as_long_as_retry_after_says(sleeps):
    answers = iter([httpx.Response(429, headers={"retry-after": "0.05"}), _ok("fine")])
    assert _backend(lambda r: next(answers)).chat([CONV], max_new_tokens=5) == ["fine"]
    assert sleeps == [0.05]


def test_gives_up_with_one_line_naming_the_endpoint(sleeps):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503)

    with pytest.raises(GenpiError) as e:
        _backend(handler, retries=2).chat([CONV], max_new_tokens=5)
    msg = _one_line(e)
    assert msg.startswith("generator endpoint http://gen.test/v1 failed after 3 attempts (HTTP 503)")
    assert "server is running" in msg and "--api-base" in msg
    assert len(calls) == 3 and len(sleeps) == 2


def test_timeouts_are_retried_then_named():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(GenpiError) as e:
        _backend(handler, retries=1, timeout=5).chat([CONV], max_new_tokens=5)
    assert "failed after 2 attempts (no answer within 5 s)" in _one_line(e)


def test_key_is_sent_as_bearer_and_never_shown(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, "sk-SECRET")
    caplog.set_level(logging.DEBUG)
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(400, json={"error": {"message": "bad request for sk-SECRET: max_tokens too large"}})

    b = _backend(handler)
    with pytest.raises(GenpiError) as e:
        b.chat([CONV], max_new_tokens=5)
    msg = _one_line(e)
    assert msg == "http://gen.test/v1/chat/completions answered HTTP 400: bad request for ***: max_tokens too large"
    assert seen == ["Bearer sk-SECRET"]  # a 400 is not retried
    with pytest.raises(GenpiError) as e:
        _backend(lambda r: httpx.Response(401, json={"error": {"message": "bad key sk-SECRET"}})).chat(
            [CONV], max_new_tokens=5)
    assert KEY_ENV in _one_line(e) and "sk-SECRET" not in str(e.value)
    assert "sk-SECRET" not in caplog.text and "sk-SECRET" not in repr(b.spec) + repr(vars(b.spec))


def test_no_key_sends_a_placeholder():
    seen = []
    _backend(lambda r: seen.append(r.headers.get("authorization")) or _ok("x")).chat([CONV], max_new_tokens=2)
    assert seen == ["Bearer EMPTY"]


def test_unknown_model_is_one_line_and_not_retried(sleeps):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(404, json={"error": {"message": "model 'm' not found"}})

    with pytest.raises(GenpiError) as e:
        _backend(handler).chat([CONV], max_new_tokens=5)
    assert _one_line(e) == ("http://gen.test/v1/chat/completions answered HTTP 404: check --api-base (it usually "
                            "ends with /v1) and --api-model 'm'")
    assert len(calls) == 1 and sleeps == []


def test_an_answer_without_choices_is_named():
    with pytest.raises(GenpiError, match="without choices.*--api-base"):
        _backend(lambda r: httpx.Response(200, json={"object": "nothing"})).chat([CONV], max_new_tokens=5)


def test_check_lists_models_and_counts_any_answer_as_reachable():
    models = httpx.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})
    assert _backend(lambda r: models).check() == ["m"]
    assert _backend(lambda r: httpx.Response(404)).check() == []


def test_check_fails_fast_when_unreachable(sleeps):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend(ApiSpec(api_base=f"http://127.0.0.1:{port}/v1", api_model="m", retries=1))
    with pytest.raises(GenpiError) as e:
        b.check()
    assert _one_line(e) == (f"generator endpoint http://127.0.0.1:{port}/v1 failed after 2 attempts (cannot "
                            "connect): check that the server is running and reachable, or fix --api-base")


def test_specs_validate_describe_and_build(tiny_ref):
    spec = ApiSpec(api_base="http://gen.test/v1/", api_model="m", api_key_env="SOME_KEY")
    assert spec.kind == "api" and spec.api_base == "http://gen.test/v1"
    assert spec.describe("tiny") == {"kind": "api", "api_base": "http://gen.test/v1", "api_model": "m"}
    with pytest.raises(GenpiError, match="must be an http"):
        ApiSpec(api_base="gen.test/v1", api_model="m")
    with pytest.raises(GenpiError, match="concurrency"):
        ApiSpec(api_base="http://gen.test/v1", api_model="m", concurrency=0)
    assert SameSpec().describe("tiny") == {"kind": "same", "same_as": "tiny"}
    assert LocalSpec(tiny_ref).describe("x") == {"kind": "local", "spec": "tiny", "fingerprint": tiny_ref.fingerprint()}
    base = FakeBackend(["x"])
    assert build_backend(SameSpec(), base) is base
    with pytest.raises(GenpiError, match="no base model backend"):
        build_backend(SameSpec())
    with pytest.raises(GenpiError, match="not a generator spec: dict"):
        build_backend({"kind": "same"}, base)
    with pytest.raises(GenpiError, match="failed after 1 attempts"):  # an API spec checks the endpoint
        build_backend(ApiSpec(api_base="http://127.0.0.1:9/v1", api_model="m", retries=0))


# -- a real OpenAI-compatible server ------------------------------------------------------------

@pytest.fixture(scope="module")
def served_tiny(tiny_ref):
    with transformers_server(tiny_ref.path, timeout=120) as base:
        yield base + "/v1"


@pytest.mark.slow
def test_real_server_round_trip(served_tiny, tiny_ref, monkeypatch):
    monkeypatch.undo()  # real sleeps between real retries
    b = build_backend(ApiSpec(api_base=served_tiny, api_model=tiny_ref.path, api_key_env="GENPI_TEST_NO_KEY"))
    convs = [CONV, [{"role": "user", "content": "list three files"}]]
    replies = b.chat(convs, max_new_tokens=8, seed=1)
    # the same requests sent by hand: the backend returns exactly the server's text, cleaned and trimmed
    raw = [httpx.post(served_tiny + "/chat/completions", timeout=60, json={
        "model": tiny_ref.path, "messages": c, "max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 1 + i})
        .json()["choices"][0]["message"]["content"] for i, c in enumerate(convs)]
    assert replies == [r.strip() for r in raw]
    assert all(len(r) > 0 for r in raw)  # the server did generate (this random model writes newlines)
