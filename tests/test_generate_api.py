"""The OpenAI-compatible backend: retries with backoff, clear errors, concurrency, the registry,
and one real round trip through `transformers serve` on loopback (slow)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from conftest import transformers_server

from genpi.errors import GenpiError
from genpi.generate import FakeBackend, build_backend
from genpi.generate.openai_api import ApiConfig, OpenAIBackend

CONV = [{"role": "user", "content": "hi"}]


def _ok(text):
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": text}}]})


def _backend(handler, **cfg):
    sleeps = []
    cfg.setdefault("api_key", None)
    b = OpenAIBackend(ApiConfig(api_base="http://gen.test/v1/", model="m", **cfg),
                      transport=httpx.MockTransport(handler), sleep=sleeps.append)
    return b, sleeps


def test_retries_with_backoff_then_succeeds():
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"retry-after": "2"}), _ok("fine<|im_end|>")])
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return next(answers)

    b, sleeps = _backend(handler, backoff=0.5, retries=3)
    assert b.chat([CONV], max_new_tokens=5, temperature=0.7, top_p=0.9, seed=11) == ["fine"]
    assert len(seen) == 3 and seen[0]["max_tokens"] == 5 and seen[0]["seed"] == 11 and seen[0]["model"] == "m"
    assert 0.5 <= sleeps[0] < 0.6 and 2.0 <= sleeps[1] < 2.3  # first backoff, then Retry-After


def test_gives_up_with_one_clear_line():
    b, sleeps = _backend(lambda r: httpx.Response(500), retries=2, backoff=1.0)
    with pytest.raises(GenpiError, match=r"failed after 3 attempts \(HTTP 500\).*--api-base"):
        b.chat([CONV], max_new_tokens=5)
    assert [round(s) for s in sleeps] == [1, 2]  # doubled


def test_unreachable_endpoint():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend(ApiConfig(api_base=f"http://127.0.0.1:{port}/v1", model="m", retries=1, backoff=0.01))
    with pytest.raises(GenpiError, match=r"127\.0\.0\.1.*cannot connect.*server is running"):
        b.check()


def test_bad_key_is_named_not_shown():
    b, _ = _backend(lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}), api_key="sk-SECRET")
    with pytest.raises(GenpiError, match="api-key-env") as e:
        b.chat([CONV], max_new_tokens=5)
    assert "sk-SECRET" not in str(e.value)


def test_key_sent_as_bearer_and_other_errors_not_retried():
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(400, json={"error": {"message": "max_tokens too large"}})

    b, sleeps = _backend(handler, api_key="sk-1")
    with pytest.raises(GenpiError, match="HTTP 400: max_tokens too large"):
        b.chat([CONV], max_new_tokens=5)
    assert seen == ["Bearer sk-1"] and sleeps == []


def test_concurrent_and_in_order():
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return _ok(json.loads(request.content)["messages"][0]["content"].upper())

    b, _ = _backend(handler, concurrency=4)
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]
    assert b.chat(convs, max_new_tokens=3) == [f"Q{i}" for i in range(10)]
    assert 2 <= state["max"] <= 4


def test_registry():
    base = FakeBackend(["x"])
    assert build_backend({"kind": "same"}, base) is base
    with pytest.raises(GenpiError, match="unknown generator kind"):
        build_backend({"kind": "nope"}, base)
    with pytest.raises(GenpiError, match="failed after 1 attempts"):
        build_backend({"kind": "api", "api_base": "http://127.0.0.1:9/v1", "api_model": "m", "retries": 0})


# -- a real OpenAI-compatible server ------------------------------------------------------------

@pytest.fixture(scope="module")
def served_tiny(tiny_ref):
    with transformers_server(tiny_ref.path, timeout=120) as base:
        yield base + "/v1"


@pytest.mark.slow
def test_real_server_round_trip(served_tiny, tiny_ref):
    b = build_backend({"kind": "api", "api_base": served_tiny, "api_model": tiny_ref.path,
                       "api_key_env": "GENPI_TEST_NO_KEY"})
    convs = [CONV, [{"role": "user", "content": "list three files"}]]
    replies = b.chat(convs, max_new_tokens=8, seed=1)
    # the same requests sent by hand: the backend returns exactly the server's text, cleaned and trimmed
    raw = [httpx.post(served_tiny + "/chat/completions", timeout=60, json={
        "model": tiny_ref.path, "messages": c, "max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 1 + i})
        .json()["choices"][0]["message"]["content"] for i, c in enumerate(convs)]
    assert replies == [r.strip() for r in raw]
    assert all(len(r) > 0 for r in raw)  # the server did generate (this random model writes newlines)
