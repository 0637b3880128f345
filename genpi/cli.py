"""The `genpi` command: a thin dispatcher onto one module per verb (genpi/commands/)."""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from . import __version__
from .errors import GenpiError

VERBS = ("init", "run", "synth", "train", "eval", "bench", "chat", "export")

DESCRIPTION = """\
Internalize a fixed LLM prompt into a LoRA adapter (Generative Prompt Internalization).

  genpi run   SCENARIO --out DIR        synthesize data, train, evaluate and benchmark in one go
  genpi synth SCENARIO --out DATA_DIR   self role-playing data synthesis from the prompt alone
  genpi train SCENARIO --data DATA_DIR --out ADAPTER_DIR   joint-loss LoRA training
  genpi eval  SCENARIO --out REPORT_DIR --adapter DIR      compare with / without prompt / adapter
  genpi bench SCENARIO --out REPORT_DIR --adapter DIR      inference cost, side by side
  genpi chat  --adapter DIR             talk to the internalized model (no prompt sent)

SCENARIO is a YAML scenario file or a plain-text prompt file. --model takes 'default'
(the embedded SmolLM2-135M-Instruct), a local model folder, a .gguf file, or a hub id
already in the local cache.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other bad input."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .commands import bench, chat, eval as eval_cmd, export, init, run, synth, train

    parser = _Parser(prog="genpi", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"genpi {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, mod in zip(VERBS, (init, run, synth, train, eval_cmd, bench, chat, export)):
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
        p.set_defaults(handler=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "debug", False):  # libraries' deprecation chatter is for their developers, not users
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        code = args.handler(args)
        return int(code or 0)
    except GenpiError as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"genpi {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"genpi {args.verb}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: one line unless --debug
        if getattr(args, "debug", False):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"genpi {args.verb}: internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
