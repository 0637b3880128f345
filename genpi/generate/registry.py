"""Build a generation backend from a description (a small registry, in the style of simonw/llm's plugins).

The description is what `commands.common.generator_arg` returns:
  {"kind": "same"}                                   reuse the base model's backend
  {"kind": "local", "model": ModelRef}                load another local model
  {"kind": "api", "api_base", "api_model", "api_key_env", ...}   an OpenAI-compatible endpoint
Register another kind with `@register("name")` on a function (spec, base) -> Backend.
"""

from __future__ import annotations

import os
from typing import Callable

from ..errors import GenpiError
from .base import Backend

Factory = Callable[[dict, "Backend | None"], Backend]
_FACTORIES: dict[str, Factory] = {}


def register(kind: str) -> Callable[[Factory], Factory]:
    def deco(fn: Factory) -> Factory:
        _FACTORIES[kind] = fn
        return fn
    return deco


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def build_backend(spec: dict, base: Backend | None = None) -> Backend:
    """The backend `spec` describes; `base` is the base model's backend (used by kind 'same')."""
    kind = spec.get("kind")
    if kind not in _FACTORIES:
        raise GenpiError(f"unknown generator kind '{kind}': choose one of {', '.join(kinds())}")
    return _FACTORIES[kind](spec, base)


def local_backend(ref, batch_size: int = 8, prefix_cache: bool = True) -> Backend:
    """A LocalBackend over a resolved model (genpi.models.ModelRef)."""
    from ..models import load_model, load_tokenizer
    from .local import LocalBackend

    return LocalBackend(load_model(ref), load_tokenizer(ref), name=ref.name, batch_size=batch_size,
                        prefix_cache=prefix_cache)


def describe(spec: dict, base_name: str) -> dict:
    """What to record about a generator in metadata (never the key)."""
    kind = spec.get("kind")
    if kind == "api":
        return {"kind": "api", "api_base": spec["api_base"], "api_model": spec["api_model"]}
    if kind == "local":
        ref = spec["model"]
        return {"kind": "local", "spec": ref.spec, "fingerprint": ref.fingerprint()}
    return {"kind": kind, "same_as": base_name}


@register("same")
def _same(spec: dict, base: Backend | None) -> Backend:
    if base is None:
        raise GenpiError("the generator is the base model, but no base model backend was given")
    return base


@register("local")
def _local(spec: dict, base: Backend | None) -> Backend:
    return local_backend(spec["model"], batch_size=spec.get("batch_size", 8))


@register("api")
def _api(spec: dict, base: Backend | None) -> Backend:
    from .openai_api import ApiConfig, OpenAIBackend

    key = os.environ.get(spec.get("api_key_env") or "OPENAI_API_KEY") or None
    cfg = ApiConfig(api_base=spec["api_base"], model=spec["api_model"], api_key=key,
                    **{k: spec[k] for k in ("concurrency", "timeout", "retries") if k in spec})
    backend = OpenAIBackend(cfg)
    backend.check()
    return backend
