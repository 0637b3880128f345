"""An OpenAI-compatible chat endpoint as a backend (vLLM, llama.cpp server, Ollama, `transformers serve`, ...).

Built on the `openai` SDK, whose client sets the per-request timeout and retries connection errors,
timeouts, 408, 409, 429 and 5xx answers with exponential backoff (honouring Retry-After). Requests
for a batch run concurrently (`concurrency` threads over one client). Any final failure is one
GenpiError line naming the endpoint and the fix. The API key is read from the environment variable
the spec names and only handed to the SDK, which sends it as the Authorization header.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import openai

from ..errors import GenpiError
from .base import clean_reply

if TYPE_CHECKING:
    from .specs import ApiSpec

NO_KEY = "EMPTY"  # local servers need no key, but the SDK requires one
NO_LOGPROBS_FIX = ("serve the base model with one that does (vLLM: prompt_logprobs; llama.cpp's server: echo with "
                   "logprobs), or leave out --teacher-logprobs (training then runs the prompted teacher itself)")


class OpenAIBackend:
    """chat(...) over POST {api_base}/chat/completions, one request per conversation; with `render`, over
    POST {api_base}/completions with each conversation rendered to text by `render(conv, mode)` (the base
    model's own chat template, genpi.models.render_chat): the server then sees exactly the text the local
    model would, and a final assistant turn is continued.

    http_client: an httpx.Client for the SDK to send through (tests pass one with a MockTransport).
    """

    continues = False  # servers differ on continuing a final assistant turn; callers must not rely on it

    def __init__(self, spec: ApiSpec, *, http_client=None, render=None):
        self.spec, self.render = spec, render
        self.continues = render is not None
        self.name = f"{spec.api_model} @ {spec.api_base}"
        self.identity = f"{spec.api_base} {spec.api_model}" + (" completions" if render else "")
        self.client = openai.OpenAI(api_key=os.environ.get(spec.api_key_env) or NO_KEY, base_url=spec.api_base,
                                    timeout=spec.timeout, max_retries=spec.retries, http_client=http_client)

    def check(self) -> list[str]:
        """Fail fast, with one clear line, when the endpoint cannot be reached; return the model ids it lists.

        Any HTTP answer counts as reachable (some servers fail on /models but serve chat fine).
        """
        try:
            return [getattr(m, "id", "") for m in self.client.models.list()]
        except (openai.APIStatusError, openai.APIResponseValidationError, AttributeError, TypeError):
            return []
        except openai.APIError as e:
            raise GenpiError(self._explain(e)) from None

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        if not conversations:
            return []

        def one(i: int) -> str:
            extra = {} if seed is None else {"seed": seed + i}
            return self._complete(conversations[i], max_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, **extra)

        pool = ThreadPoolExecutor(max_workers=min(self.spec.concurrency, len(conversations)))
        try:
            return list(pool.map(one, range(len(conversations))))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.client.close()

    def prompt_logprobs(self, text: str, k: int) -> dict:
        """The endpoint's log-probabilities of every token of `text` (its top `k` at each), as the raw first
        choice of a /completions answer: vLLM's `prompt_logprobs` and the legacy `echo` + `logprobs` are both
        asked for, then the latter alone if the server refuses the former. Parse it with generate.prompt_logprobs.

        A refusal (HTTP 4xx) is one line saying that this endpoint gives no prompt log-probabilities."""
        asks = [{"prompt_logprobs": k}, None]  # a strict server may refuse the field it does not know
        while True:
            try:
                raw = self.client.completions.with_raw_response.create(
                    model=self.spec.api_model, prompt=text, max_tokens=1, temperature=0.0, echo=True, logprobs=k,
                    stream=False, extra_body=asks.pop(0))
                data = raw.http_response.json()
                break
            except openai.APIStatusError as e:
                if not 400 <= e.status_code < 500 or e.status_code in (401, 403, 404, 408, 409, 429):
                    raise GenpiError(self._explain(e)) from None
                if not asks:
                    raise GenpiError(f"{self.spec.api_base} refused to give prompt log-probabilities (HTTP "
                                     f"{e.status_code}: {self._detail(e)}): {NO_LOGPROBS_FIX}") from None
            except openai.APIError as e:
                raise GenpiError(self._explain(e)) from None
            except ValueError:
                raise GenpiError(f"{self.spec.api_base} answered /completions with something that is not JSON: "
                                 f"check {self.spec.flags[0]}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise GenpiError(f"{self.spec.api_base} answered /completions without choices: is it an "
                             f"OpenAI-compatible /v1 endpoint? Check {self.spec.flags[0]}")
        return choices[0]

    # -- one request ---------------------------------------------------------------------------
    def _complete(self, messages: list[dict], **settings) -> str:
        try:
            if self.render is not None:
                mode = "continue" if messages and messages[-1]["role"] == "assistant" else "generate"
                r = self.client.completions.create(model=self.spec.api_model, prompt=self.render(messages, mode),
                                                   stream=False, **settings)
            else:
                r = self.client.chat.completions.create(model=self.spec.api_model, messages=messages,
                                                        stream=False, **settings)
        except openai.APIError as e:
            raise GenpiError(self._explain(e)) from None
        try:
            return clean_reply(r.choices[0].text if self.render is not None else r.choices[0].message.content)
        except (AttributeError, IndexError, TypeError):
            what = "text" if self.render is not None else "message"
            raise GenpiError(f"{self.spec.api_base} answered without choices[0].{what}: is it an "
                             f"OpenAI-compatible /v1 endpoint? Check {self.spec.flags[0]}") from None

    def _explain(self, e: openai.APIError) -> str:
        """One line: what failed, where, and the fix (never the key)."""
        base = self.spec.api_base
        if isinstance(e, openai.APIStatusError):
            code, url = e.status_code, str(e.request.url)
            if code in (401, 403):
                return (f"{base} refused the request (HTTP {code}): set the environment variable "
                        f"{self.spec.api_key_env} (see {self.spec.flags[2]}) to a valid key")
            if code == 404:
                return (f"{url} answered HTTP 404: check {self.spec.flags[0]} (it usually ends with /v1) and "
                        f"{self.spec.flags[1]} '{self.spec.api_model}'")
            if code not in (408, 409, 429) and code < 500:
                return f"{url} answered HTTP {code}: {self._detail(e)}"
            why = f"HTTP {code}"
        elif isinstance(e, openai.APITimeoutError):
            why = f"no answer within {self.spec.timeout:g} s"
        elif isinstance(e, openai.APIConnectionError):
            why = "cannot connect"
        else:
            return f"{base} gave an answer that is not an OpenAI chat completion: check {self.spec.flags[0]}"
        tries = _attempts(e)
        return (f"{self.spec.role} endpoint {base} failed{f' after {tries} attempts' if tries else ''} ({why}): "
                f"check that the server is running and reachable, or fix {self.spec.flags[0]}")

    def _detail(self, e: openai.APIStatusError) -> str:
        body = e.body
        msg = body.get("message") if isinstance(body, dict) else body
        text = " ".join(str(msg or e.message or "no details").split())
        if self.client.api_key != NO_KEY:
            text = text.replace(self.client.api_key, "***")
        return text[:200]


def _attempts(e: openai.APIError) -> int | None:
    """How many attempts the SDK made (it numbers its retries in a request header)."""
    try:
        return int(e.request.headers.get("x-stainless-retry-count", "")) + 1
    except (AttributeError, ValueError):
        return None
