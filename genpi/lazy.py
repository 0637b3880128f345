"""Lazy package exports: `from genpi.train import train_adapter` works, but importing a package does not
import torch and transformers until a name that needs them is used, so the CLI answers --help and bad
input in a fraction of a second."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module `__getattr__` that imports `exports[name]` (a submodule, relative to `package`) on first use."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__
