"""What the generator is: typed specs that validate, describe and build themselves.

`commands.common.generator_arg` turns the flags into one of these:
  SameSpec()                      the base model generates too (its backend is reused)
  LocalSpec(model)                another local model (a genpi.models.ModelRef)
  ApiSpec(api_base, api_model)    an OpenAI-compatible endpoint; the key is read from the
                                  environment variable `api_key_env` when the backend is built
Each has `kind`, `describe(base_name)` (what metadata records: never a key; a data folder resumes
only with an equal description) and `build(base)` (the backend; `base` is the base model's backend).
Another kind is any object with the same three members (see GeneratorSpec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ..errors import GenpiError
from ..models import ModelRef
from .base import Backend


@runtime_checkable
class GeneratorSpec(Protocol):
    kind: str

    def describe(self, base_name: str) -> dict:
        """What to record in metadata (never the key); `base_name` is the base model's spec."""
        ...

    def build(self, base: Backend | None) -> Backend:
        """The backend; `base` is the base model's backend (only SameSpec needs it)."""
        ...


@dataclass(frozen=True)
class SameSpec:
    kind: ClassVar[str] = "same"

    def describe(self, base_name: str) -> dict:
        return {"kind": "same", "same_as": base_name}

    def build(self, base: Backend | None) -> Backend:
        if base is None:
            raise GenpiError("the generator is the base model, but no base model backend was given")
        return base


@dataclass(frozen=True)
class LocalSpec:
    model: ModelRef
    kind: ClassVar[str] = "local"

    def describe(self, base_name: str) -> dict:
        return {"kind": "local", "spec": self.model.spec, "fingerprint": self.model.fingerprint()}

    def build(self, base: Backend | None) -> Backend:
        from .local import local_backend

        return local_backend(self.model)


@dataclass(frozen=True)
class ApiSpec:
    api_base: str
    api_model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8  # requests in flight at once
    timeout: float = 120.0  # seconds per request before it counts as failed
    retries: int = 4  # extra attempts after a retryable failure
    role: str = "generator"  # "generator" or "base" (the base model served): names the flags in messages
    kind: ClassVar[str] = "api"
    FLAGS: ClassVar[dict] = {"generator": ("--api-base", "--api-model", "--api-key-env"),
                             "base": ("--model-api-base", "--model-api-name", "--model-api-key-env")}

    def __post_init__(self):
        if self.role not in self.FLAGS:
            raise GenpiError(f"API backend: role must be one of {', '.join(self.FLAGS)}, not {self.role!r}")
        base_flag, model_flag, _ = self.flags
        if not self.api_base.startswith(("http://", "https://")):
            raise GenpiError(f"{base_flag} '{self.api_base}' must be an http:// or https:// URL")
        object.__setattr__(self, "api_base", self.api_base.rstrip("/"))
        if not self.api_model.strip():
            raise GenpiError(f"{model_flag} is empty: pass the model name the endpoint serves")
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0:
            raise GenpiError("API backend: concurrency >= 1, retries >= 0 and timeout > 0 are required")

    @property
    def flags(self) -> tuple[str, str, str]:
        """The command-line flags of this role: (endpoint, model name, key variable)."""
        return self.FLAGS[self.role]

    def describe(self, base_name: str) -> dict:
        return {"kind": "api", "api_base": self.api_base, "api_model": self.api_model}

    def build(self, base: Backend | None) -> Backend:
        """A checked OpenAIBackend: an unreachable endpoint fails here, with one line."""
        from .openai_api import OpenAIBackend

        backend = OpenAIBackend(self)
        backend.check()
        return backend


def build_backend(spec: GeneratorSpec, base: Backend | None = None) -> Backend:
    """The backend `spec` describes; `base` is the base model's backend (used by SameSpec)."""
    if not isinstance(spec, GeneratorSpec):
        raise GenpiError(f"not a generator spec: {type(spec).__name__} (pass SameSpec, LocalSpec, ApiSpec, or an "
                         "object with kind, describe() and build())")
    return spec.build(base)
