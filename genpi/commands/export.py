"""Write an adapter in the form another engine loads.

    genpi export ADAPTER_DIR --format gguf-lora --out FILE.gguf   # llama.cpp / Ollama / LM Studio
    genpi export ADAPTER_DIR --format merged --out DIR            # a full model folder (any server)

gguf-lora needs the base model as a GGUF file (the embedded default model is one; else --model
FILE.gguf) and writes an Ollama Modelfile beside FILE.gguf. The base model is --model, else the one
recorded in the adapter's genpi.json, else 'default'.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import ADAPTER_META
from . import common

HELP = "write an adapter for llama.cpp / Ollama (GGUF LoRA) or as a merged model folder"
FORMATS = ("gguf-lora", "merged")


def add_arguments(p):
    p.add_argument("adapter", metavar="ADAPTER_DIR", help="an adapter folder from 'genpi train'")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="gguf-lora: a llama.cpp LoRA adapter file for the base model's GGUF; merged: the base "
                        "model with the adapter merged into its weights, a plain model folder")
    p.add_argument("--out", required=True, metavar="PATH", help="the .gguf file (gguf-lora) or folder (merged)")
    p.add_argument("--model", default=None, metavar="M",
                   help=f"the adapter's base model (default: the one recorded in its {ADAPTER_META}, else "
                        "'default'); for gguf-lora a .gguf file or 'default'")


def main(args) -> int:
    from .chat import base_model_spec

    adapter = common.adapters_arg([args.adapter])[0]
    ref = common.model_arg(base_model_spec(adapter, args.model))
    out = Path(args.out).expanduser()
    if args.format == "gguf-lora":
        return _gguf_lora(adapter, ref, out)
    return _merged(adapter, ref, out)


def _gguf_lora(adapter: Path, ref, out: Path) -> int:
    from ..artifacts.model_card import write_model_card
    from ..export import export_gguf_lora
    from ..generate.llama_server import gguf_file

    if out.suffix.lower() != ".gguf" or out.is_dir():
        raise common.GenpiError(f"--out '{out}' must be a file path ending in .gguf for --format gguf-lora")
    common.out_dir_arg(str(out.parent), "--out's folder")
    base = gguf_file(ref)
    info = export_gguf_lora(adapter, base, out)
    write_model_card(adapter, gguf={"file": str(out.resolve()), "base": str(base)})
    modelfile = out.with_name("Modelfile")
    modelfile.write_text(f"# Ollama: ollama create NAME -f {modelfile.name}; then ollama run NAME (no prompt needed)\n"
                         f"FROM {base}\nADAPTER {out.resolve()}\n")
    print(f"wrote {out} ({info['weights']} LoRA weights, rank {info['rank']}, alpha {info['alpha']:g}, "
          f"{info['bytes'] / 1e6:.1f} MB) and {modelfile}\n"
          f"  llama.cpp: llama-server -m {base} --lora {out}\n"
          f"  llama-cpp-python: Llama(model_path='{base}', lora_path='{out}')")
    return 0


def _merged(adapter: Path, ref, out: Path) -> int:
    from ..export.merged import write_merged

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise common.GenpiError(f"--out '{out}' is not empty: pass a new folder for the merged model")
    common.out_dir_arg(str(out.parent), "--out's folder")
    write_merged(ref, adapter, out)
    print(f"wrote {out}: {ref.name} with the adapter merged in (serve it as a plain model, send no prompt)")
    return 0
