"""Chat with the internalized model: base model + adapter, and no prompt sent.

Interactive in a terminal (/reset clears the history, /quit leaves); with stdin not a
terminal, reads one message from stdin and prints the reply.
"""

from __future__ import annotations

from . import common

HELP = "talk to the internalized model (no prompt sent)"


def add_arguments(p):
    p.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder from 'genpi train'")
    common.add_model(p)
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="reply length limit (default: 256)")


def main(args) -> int:
    common.adapters_arg([args.adapter])
    common.model_arg(args.model)
    common.not_built("chat", 5)
