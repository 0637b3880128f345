"""Chat with the internalized model: base model + adapter, and no prompt sent.

Interactive in a terminal (/reset clears the history, /quit leaves); with stdin not a
terminal, reads one whole message from stdin and prints the reply (for scripts).
The base model is --model, else the one recorded in the adapter's genpi.json, else 'default'.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..artifacts import ADAPTER_META
from . import common

HELP = "talk to the internalized model (no prompt sent)"


def add_arguments(p):
    p.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder from 'genpi train'")
    p.add_argument("--model", default=None, metavar="M",
                   help="base model, same forms as elsewhere (default: the base model recorded in the adapter's "
                        f"{ADAPTER_META}, else 'default')")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="reply length limit (default: 256)")
    p.add_argument("--engine", default="transformers", choices=("transformers", "llama.cpp"),
                   help="transformers (the base model in fp32 with the PEFT adapter) or llama.cpp (the base "
                        "model's GGUF with the adapter exported to a LoRA GGUF on the fly; faster on a CPU; "
                        "needs llama-cpp-python)")


def base_model_spec(adapter_dir, explicit: str | None) -> str:
    """--model if given, else the base model recorded in the adapter's genpi.json, else 'default'."""
    from ..artifacts import AdapterDir

    return explicit or AdapterDir(adapter_dir).base_model_spec() or "default"


class Chat:
    """A conversation with no prompt: the history is only the user's and the model's turns."""

    def __init__(self, backend, max_new_tokens: int):
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.history: list[dict] = []

    def reply(self, message: str) -> str:
        conv = self.history + [{"role": "user", "content": message}]
        text = self.backend.chat([conv], max_new_tokens=self.max_new_tokens, seed=0)[0]
        self.history = conv + [{"role": "assistant", "content": text}]
        return text

    def reset(self) -> None:
        self.history = []


def chat_backend(engine: str, ref, adapter):
    """The internalized model (base + adapter) as a backend of `engine`."""
    from ..models import load_adapter, load_model, load_tokenizer

    tok = load_tokenizer(ref)
    if engine == "llama.cpp":
        from ..artifacts import file_sha256
        from ..export import export_gguf_lora
        from ..generate.llama_cpp import LlamaCppBackend
        from ..generate.llama_server import gguf_file
        from ..models import cache_dir

        base = gguf_file(ref)
        # exported once per adapter weights and base file, then reused by every later chat
        key = file_sha256(Path(adapter) / "adapter_model.safetensors")[:16] + "-" + ref.fingerprint()
        lora = cache_dir() / "gguf-lora" / f"{key}.gguf"
        if not lora.is_file():
            tmp = lora.with_suffix(".part.gguf")
            export_gguf_lora(adapter, base, tmp)
            tmp.replace(lora)
        return LlamaCppBackend(base, tok, lora=lora, name="chat")
    from ..generate import LocalBackend

    return LocalBackend(load_adapter(load_model(ref), adapter), tok, name="chat", batch_size=1)


def main(args) -> int:
    if args.max_new_tokens < 1:
        raise common.GenpiError(f"--max-new-tokens must be at least 1 (got {args.max_new_tokens})")
    adapter = common.adapters_arg([args.adapter])[0]
    ref = common.model_arg(base_model_spec(adapter, args.model))
    interactive = sys.stdin.isatty()
    message = None
    if not interactive:
        message = sys.stdin.read().strip()
        if not message:
            raise common.GenpiError("no message on stdin: pipe a message in (echo 'hi' | genpi chat --adapter DIR) "
                                    "or run in a terminal for an interactive chat")
    chat = Chat(chat_backend(args.engine, ref, adapter), args.max_new_tokens)
    if message is not None:
        print(chat.reply(message))
        return 0
    print(f"genpi chat: {ref.name} + adapter '{adapter}', no prompt. /reset clears the history, /quit leaves.",
          file=sys.stderr)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print(file=sys.stderr)
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            chat.reset()
            print("(history cleared)", file=sys.stderr)
            continue
        print(f"model> {chat.reply(line)}")
