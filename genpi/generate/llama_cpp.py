"""llama.cpp in this process (llama-cpp-python) as a backend: the base model's GGUF, optionally with a
LoRA GGUF (`genpi export --format gguf-lora`), on the CPU's quantized kernels.

Conversations are rendered and encoded by the base model's own tokenizer and chat template
(genpi.models.encode_chat) and handed to llama.cpp as token ids, so it sees exactly the tokens the
transformers path sees. Replies end at the end-of-turn token or at `max_new_tokens`. llama.cpp keeps
the previous request's tokens and reuses their KV for a new request that starts with them, so a chat
whose history only grows re-reads only the new turn.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import GenpiError
from .llama_server import INSTALL


class LlamaCppBackend:
    continues = True

    def __init__(self, gguf: str | Path, tok, *, lora: str | Path | None = None, n_ctx: int = 4096,
                 threads: int | None = None, name: str = "llama.cpp"):
        try:
            import llama_cpp
        except ImportError:
            raise GenpiError(f"llama.cpp is not installed here: {INSTALL}") from None
        import os

        self.tok, self.name = tok, name
        self.identity = f"llama.cpp {Path(gguf).name}" + (f" + {Path(lora).name}" if lora else "")
        self.llm = llama_cpp.Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=n_ctx,
                                   n_threads=threads or os.cpu_count() or 1, verbose=False)
        self.eos = {tok.eos_token_id} - {None}  # where LocalBackend stops too (ChatML's <|im_end|>)

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        from ..models import encode_chat

        out = []
        for conv in conversations:
            mode = "continue" if conv and conv[-1]["role"] == "assistant" else "generate"
            ids = encode_chat(self.tok, conv, mode)
            if len(ids) + max_new_tokens > self.llm.n_ctx():
                raise GenpiError(f"the conversation ({len(ids)} tokens) and the reply ({max_new_tokens}) do not fit "
                                 f"llama.cpp's context of {self.llm.n_ctx()} tokens: /reset, or lower --max-new-tokens")
            if seed is not None:
                self.llm.set_seed(seed)
            new = []
            for t in self.llm.generate(ids, temp=temperature, top_p=top_p, top_k=0 if temperature else 1,
                                       reset=False):
                if t in self.eos or t == self.llm.token_eos() or len(new) >= max_new_tokens:
                    break
                new.append(t)
            out.append(self.tok.decode(new, skip_special_tokens=True).strip())
        return out
