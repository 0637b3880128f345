"""ADAPTER_DIR/README.md: the adapter's model card, in the Hugging Face convention (a YAML header with
`base_model`, `library_name: peft` and tags, then prose). This module is its only writer.

It says what was internalized (the prompt's SHA-256 and length, never its text), how (method, loss
weights, LoRA sizes, data), how well (the evaluation figures of every report that evaluated this
adapter, when one exists) and how to serve it with no prompt (vLLM, SGLang, llama.cpp, Ollama).
`write_model_card` is called by training, evaluation and export; each call rewrites the card from
what the folder and the reports hold, so the card never disagrees with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .io import read_json, write_text_atomic

CARD = "README.md"
EVALS = "evaluations.json"  # report folder -> this adapter's figures, gathered by write_model_card
HUB_IDS = {"default": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # the embedded model's upstream repository


def prompt_facts(scenario, tok=None) -> dict:
    """What the card says about the prompt: its SHA-256 and length (characters, and tokens with `tok`)."""
    facts = {"scenario": scenario.name, "prompt_sha256": scenario.prompt_sha256,
             "prompt_chars": len(scenario.prompt_text)}
    if tok is not None:
        from ..models import encode_chat

        facts["prompt_tokens"] = len(encode_chat(tok, [m.model_dump() for m in scenario.prompt], "complete"))
    return facts


def write_model_card(adapter_dir: str | Path, *, prompt: dict | None = None, report: dict | None = None,
                     report_dir: str | Path | None = None, variant: str | None = None,
                     gguf: dict | None = None) -> Path:
    """(Re)write ADAPTER_DIR/README.md. prompt: prompt_facts(...) (kept in the card's sidecar for later
    rewrites); report + report_dir + variant: an evaluation of this adapter to add; gguf: a llama.cpp
    export ({"file", "base"}) to name in the serving section."""
    folder = Path(adapter_dir)
    side = folder / EVALS
    state = read_json(side) if side.is_file() else {"prompt": None, "evaluations": {}, "gguf": None}
    if prompt:
        state["prompt"] = prompt
    if gguf:
        state["gguf"] = gguf
    if report is not None and variant is not None:
        state["evaluations"][str(report_dir)] = _figures(report, variant)
    write_text_atomic(side, json.dumps(state, indent=1))
    meta = read_json(folder / "genpi.json") if (folder / "genpi.json").is_file() else {}
    cfg = read_json(folder / "adapter_config.json") if (folder / "adapter_config.json").is_file() else {}
    path = folder / CARD
    write_text_atomic(path, render(folder, meta, cfg, state))
    return path


def _figures(report: dict, variant: str) -> dict:
    v, ceiling = report["variants"][variant], report["variants"].get("with_prompt", {})
    out = {"scenario": report.get("scenario"), "n_inputs": report.get("n_inputs"), "variant": variant,
           "score": v.get("score"), "with_prompt_score": ceiling.get("score"), "retention": v.get("retention"),
           "checks": v.get("checks"), "expectations": v.get("expectations"),
           "expectations_kept": v.get("expectations_kept"), "kl_to_teacher": v.get("kl_to_teacher"),
           "checks_with_prompt": ceiling.get("checks"), "expectations_with_prompt": ceiling.get("expectations"),
           "chrf": (v.get("agreement") or {}).get("chrf")}
    env = v.get("env")
    if env:
        out["task"] = {k: env.get(k) for k in ("solved", "n_problems", "success", "valid_action_share")}
        out["task_with_prompt"] = {k: (ceiling.get("env") or {}).get(k) for k in ("solved", "success",
                                                                                   "valid_action_share")}
    return out


def render(folder: Path, meta: dict, cfg: dict, state: dict) -> str:
    base = meta.get("base_model") or {}
    run, data = meta.get("run") or {}, meta.get("data") or {}
    base_id = HUB_IDS.get(base.get("spec", ""), cfg.get("base_model_name_or_path") or base.get("spec") or "unknown")
    header = {"base_model": base_id, "library_name": "peft",
              "tags": ["genpi", "prompt-internalization", "lora", f"method:{meta.get('method', 'unknown')}"]}
    p = state.get("prompt") or {}
    name = p.get("scenario") or folder.name
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
             f"# {name}: a prompt internalized into a LoRA adapter", "",
             f"This adapter makes **{base.get('name') or base_id}** behave as if it had been given a fixed prompt, "
             "which is then never sent: send the user's messages only. It was made with "
             "genpi (Generative Prompt Internalization, Shin et al., NAACL 2025).", "",
             "## The prompt", ""]
    if p:
        length = f"{p['prompt_chars']:,} characters" + (f", {p['prompt_tokens']:,} tokens" if "prompt_tokens" in p else "")
        lines += [f"- scenario: `{p['scenario']}`; prompt SHA-256 `{p['prompt_sha256']}`; {length}",
                  "- the prompt's text is not part of this card or of the adapter files", ""]
    else:
        lines += ["- not recorded (the adapter was written before genpi kept prompt facts)", ""]
    lines += ["## How it was trained", "",
              f"- method `{meta.get('method')}`" + (f": (1-λ)·PG + λ·SFT with λ = {run['lam']}" if "lam" in run else "")
              + (f", plus KL to the prompted teacher with weight {run['kl']}" if run.get("kl") else ""),
              f"- LoRA rank {cfg.get('r')}, alpha {cfg.get('lora_alpha')}, target modules "
              f"{', '.join(sorted(cfg.get('target_modules') or [])) or '?'}",
              f"- {data.get('records', '?')} synthesized records ({data.get('sft_examples', '?')} SFT / "
              f"{data.get('pg_examples', '?')} PG examples), {run.get('epochs', '?')} epochs, learning rate "
              f"{run.get('learning_rate', '?')}", f"- base model fingerprint `{base.get('fingerprint')}`", ""]
    evals = state.get("evaluations") or {}
    lines += ["## Evaluation", ""]
    if not evals:
        lines += ["No evaluation yet: `genpi eval SCENARIO --adapter " + str(folder) + " --out REPORT_DIR` adds it here.", ""]
    for where, e in evals.items():
        lines.append(f"From `{where}` (variant `{e['variant']}`, {e.get('n_inputs')} held-out inputs of "
                     f"scenario `{e.get('scenario')}`):")
        lines.append("")
        lines.append("| | this adapter | the prompted base model |")
        lines.append("|---|---:|---:|")
        lines.append(f"| score (mean of checks and expectations) | {_f(e.get('score'))} | {_f(e.get('with_prompt_score'))} |")
        ceiling = e.get("checks_with_prompt") or {}
        for k, v in (e.get("checks") or {}).items():
            lines.append(f"| check `{k}` | {_f(v)} | {_f(ceiling.get(k))} |")
        if e.get("expectations") is not None:
            lines.append(f"| expectations (facts) | {_f(e['expectations'])} | {_f(e.get('expectations_with_prompt'))} |")
        if e.get("expectations_kept") is not None:
            lines.append(f"| of the facts the prompted model used, the share it uses too | "
                         f"{_f(e['expectations_kept'])} | 1.00 |")
        if e.get("kl_to_teacher") is not None:
            lines.append(f"| KL to the prompted model (nats/token) | {_f(e['kl_to_teacher'])} | – |")
        if e.get("chrf") is not None:
            lines.append(f"| chrF of its replies against the prompted model's | {_f(e['chrf'])} | – |")
        t, tw = e.get("task"), e.get("task_with_prompt") or {}
        if t:
            lines.append(f"| task success ({t.get('n_problems')} problems) | {t.get('solved')} solved | "
                         f"{tw.get('solved')} solved |")
            lines.append(f"| valid actions | {_f(t.get('valid_action_share'))} | {_f(tw.get('valid_action_share'))} |")
        lines.append("")
    lines += ["## Serving it (send no prompt)", "", "```bash",
              f"vllm serve {base_id} --enable-lora --max-lora-rank {cfg.get('r', 16)} --lora-modules {name}={folder.resolve()}",
              f"python -m sglang.launch_server --model-path {base_id} --enable-lora --lora-paths {name}={folder.resolve()}",
              "```", ""]
    g = state.get("gguf")
    if g:
        lines += ["On a CPU with llama.cpp (a GGUF LoRA written by `genpi export --format gguf-lora`):", "", "```bash",
                  f"llama-server -m {g['base']} --lora {g['file']}",
                  f"ollama create {name} -f {Path(g['file']).with_name('Modelfile')}", "```", ""]
    else:
        lines += [f"For llama.cpp and Ollama: `genpi export {folder} --format gguf-lora --out {name}.gguf`.", ""]
    return "\n".join(lines)


def _f(v) -> str:
    return "–" if v is None else f"{v:.2f}"
