"""Stage configs: one dataclass per stage, every field with help; presets fill them; flags come from them.

A field is declared once, with `option(...)`:

    epochs: float = option(6.0, "passes over the SFT examples", flag="--epochs", metavar="E")

and from that one declaration come the default, the preset's value (genpi/presets.py names fields by
their dataclass names), the command-line flag with its help text (`add_flags`), and the value a
command passes down (`StageConfig.from_preset(preset, **overrides_from(args, Cls))`). Validation lives
in each config's `__post_init__` and nowhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, ClassVar

from .errors import GenpiError


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, metavar: str | None = None,
           choices: tuple | None = None, cli: bool = True, default_factory: Any = MISSING) -> Any:
    """A config field: its default, its help text, and (unless cli=False) its command-line flag."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "cli": cli}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _scalar_type(cls, f: dataclasses.Field):
    hint = typing.get_type_hints(cls)[f.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


class StageConfig:
    """Base of the stage configs: preset loading, flags, and a plain dict for metadata."""

    STAGE: ClassVar[str] = ""

    @classmethod
    def from_preset(cls, preset: str, **overrides):
        """The preset's values for this stage, then every override that is not None."""
        from .presets import stage_values

        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown {cls.STAGE} option(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in stage_values(preset, cls.STAGE).items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def help_of(cls, name: str) -> str:
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)


def add_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type[StageConfig], *,
              only: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()) -> None:
    """One flag per cli field of `cls` (all, or `only` those, in that order), defaulting to None = the preset's."""
    from .presets import describe_default

    by_name = {f.name: f for f in fields(cls)}
    names = only if only is not None else [f.name for f in fields(cls) if f.metadata.get("cli", False)]
    for name in names:
        if name in skip:
            continue
        f = by_name[name]
        kind = _scalar_type(cls, f)
        default = describe_default(cls, f)
        # a field whose default is "not set" says in its own help what that means
        help_text = f"{f.metadata['help']}" + ("" if default in (None, "None") else f" (default: {default})")
        if kind is bool:  # --x / --no-x: a preset may turn it on, and the user off
            p.add_argument(flag_of(f), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        p.add_argument(flag_of(f), dest=name, type=kind, default=None, metavar=f.metadata.get("metavar"),
                       choices=f.metadata.get("choices"), help=help_text)


def overrides_from(args: argparse.Namespace, cls: type[StageConfig]) -> dict:
    """The values the user gave on the command line for `cls`'s fields (None = not given)."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def at_least(cfg, minimum: int | float, *names: str, strict: bool = False) -> None:
    """Raise a one-line error naming the flag when a field is below `minimum` (or not above it, when strict)."""
    by_name = {f.name: f for f in fields(cfg)}
    for name in names:
        v = getattr(cfg, name)
        if v is None:
            continue
        if (v <= minimum) if strict else (v < minimum):
            word = "above" if strict else "at least"
            raise GenpiError(f"{flag_of(by_name[name])} must be {word} {minimum} (got {v})")
