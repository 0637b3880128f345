"""An OpenAI-compatible chat endpoint as a backend (vLLM, llama.cpp server, Ollama, `transformers serve`, ...).

Requests run concurrently (a thread pool over one httpx client), each with a timeout, and are retried
with exponential backoff on connection errors, timeouts, 429 and 5xx answers (honouring Retry-After).
Anything else, or running out of retries, is one GenpiError line naming the endpoint and the fix.
The API key comes from an environment variable and is only ever put in the Authorization header.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from ..errors import GenpiError
from .base import clean_reply

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class ApiConfig:
    """How to talk to an OpenAI-compatible endpoint."""

    api_base: str = field(metadata={"help": "base URL, e.g. http://localhost:8000/v1"})
    model: str = field(metadata={"help": "model name sent with each request"})
    api_key: str | None = field(default=None, repr=False, metadata={"help": "bearer token (from an env var)"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    timeout: float = field(default=120.0, metadata={"help": "seconds per request before it counts as failed"})
    retries: int = field(default=4, metadata={"help": "extra attempts after a retryable failure"})
    backoff: float = field(default=1.0, metadata={"help": "first wait between attempts, doubled each time"})
    max_backoff: float = field(default=30.0, metadata={"help": "longest wait between attempts"})

    def __post_init__(self):
        self.api_base = self.api_base.rstrip("/")
        if not self.api_base.startswith(("http://", "https://")):
            raise GenpiError(f"--api-base '{self.api_base}' must be an http:// or https:// URL")
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0:
            raise GenpiError("API backend: concurrency >= 1, retries >= 0 and timeout > 0 are required")


class _Retryable(Exception):
    def __init__(self, what: str, wait: float | None = None):
        super().__init__(what)
        self.wait = wait


class OpenAIBackend:
    """chat(...) over POST {api_base}/chat/completions, one request per conversation."""

    def __init__(self, config: ApiConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep=time.sleep):
        self.cfg = config
        self.name = f"{config.model} @ {config.api_base}"
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = httpx.Client(headers=headers, timeout=config.timeout, transport=transport)
        self._sleep = sleep

    # -- public ------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Fail fast, with one clear line, when the endpoint cannot be reached; return the model ids it lists.

        Any HTTP answer counts as reachable (some servers fail on /models but serve chat fine).
        """
        def probe():
            try:
                r = self.client.get(self.cfg.api_base + "/models")
            except httpx.TimeoutException:
                raise _Retryable(f"no answer within {self.cfg.timeout:g} s")
            except httpx.TransportError as e:
                raise _Retryable(f"cannot connect ({type(e).__name__})")
            try:
                data = r.json() if r.status_code == 200 else {}
            except ValueError:
                data = {}
            return [m.get("id", "") for m in (data.get("data") or []) if isinstance(m, dict)]

        return self._with_retries(probe)

    continues = False  # servers differ on continuing a final assistant turn; callers must not rely on it

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        def one(i_conv):
            i, conv = i_conv
            body = {"model": self.cfg.model, "messages": conv, "max_tokens": max_new_tokens,
                    "temperature": temperature, "top_p": top_p, "stream": False}
            if seed is not None:
                body["seed"] = seed + i
            data = self._with_retries(lambda: self._send("POST", "/chat/completions", body))
            try:
                return clean_reply(data["choices"][0]["message"].get("content") or "")
            except (KeyError, IndexError, TypeError, AttributeError):
                raise GenpiError(f"{self.cfg.api_base} answered without choices[0].message: is it an "
                                 "OpenAI-compatible /v1 endpoint? Check --api-base")

        if not conversations:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(conversations)))
        try:
            return list(pool.map(one, enumerate(conversations)))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.client.close()

    # -- one request ---------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: dict | None = None) -> dict:
        url = self.cfg.api_base + path
        try:
            r = self.client.request(method, url, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.cfg.timeout:g} s")
        except httpx.TransportError as e:
            raise _Retryable(f"cannot connect ({type(e).__name__})")
        if r.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {r.status_code}", _retry_after(r))
        if r.status_code in (401, 403):
            raise GenpiError(f"{self.cfg.api_base} refused the request (HTTP {r.status_code}): set the "
                             "environment variable named by --api-key-env to a valid key")
        if r.status_code == 404:
            raise GenpiError(f"{url} answered HTTP 404: check --api-base (it usually ends with /v1) and "
                             f"--api-model '{self.cfg.model}'")
        if r.status_code >= 400:
            raise GenpiError(f"{url} answered HTTP {r.status_code}: {_error_text(r)}")
        try:
            return r.json()
        except ValueError:
            raise GenpiError(f"{url} did not answer JSON: is --api-base an OpenAI-compatible endpoint?")

    def _with_retries(self, call):
        for attempt in range(self.cfg.retries + 1):
            try:
                return call()
            except _Retryable as e:
                if attempt == self.cfg.retries:
                    raise GenpiError(f"generator endpoint {self.cfg.api_base} failed after "
                                     f"{attempt + 1} attempts ({e}): check that the server is running and "
                                     "reachable, or fix --api-base")
                wait = e.wait if e.wait is not None else min(self.cfg.max_backoff, self.cfg.backoff * 2 ** attempt)
                self._sleep(wait * (1 + 0.1 * random.random()))


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return min(60.0, float(r.headers.get("retry-after", "")))
    except ValueError:
        return None


def _error_text(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        msg = r.text
    return " ".join(str(msg or "no details").split())[:200]
