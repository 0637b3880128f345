"""`run_bench`: build the conversations, run every variant, write bench.json / bench.md / bench.png.

Timing: one untimed warm-up pass per variant (it also records the replies, KV size and peak memory),
then `repeats` timed passes; the variants take turns within each pass, so a change in machine load
hits all of them alike. Each timed pass is appended to REPORT_DIR/measurements.jsonl as it ends, and
a rerun with the same settings resumes from there.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from tqdm import tqdm

from ..artifacts import AdapterDir, BenchDir, text_sha256
from ..errors import GenpiError
from ..generate.local import shared_prefix_len
from ..models import ModelRef, encode_chat, load_adapter, load_model, load_tokenizer
from ..scenario import Scenario, teacher_messages
from . import conversations as conv_mod
from . import report
from .config import BenchConfig
from .flops import Shape
from .memory import PeakMemory
from .runner import INTERNALIZED, MERGED, NO_PROMPT, PREFIX_CACHE, WITH_PROMPT, Variant, run_conversation

def run_bench(scenario: Scenario, model_ref: ModelRef, adapter_dir: str | Path | None, out_dir: str | Path,
              config: BenchConfig, progress: bool = True) -> dict:
    """Measure the inference cost of the four variants on `scenario`; write the reports; return bench.json's dict.

    Without `adapter_dir` the internalized variants are replaced by `no_prompt` (the base model without
    the prompt, which costs exactly what a merged adapter costs) and the report says so.
    """
    adapter = AdapterDir(adapter_dir).require().path if adapter_dir else None
    out = BenchDir(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    try:
        return _run(scenario, model_ref, adapter, out, config, progress)
    finally:
        torch.set_num_threads(old_threads)


def _run(sc, ref, adapter, out: BenchDir, cfg: BenchConfig, progress) -> dict:
    load_before = os.getloadavg()
    inputs = conv_mod.pick_inputs(sc, cfg.conversations)
    tok = load_tokenizer(ref)
    base = load_model(ref)
    shape = Shape.from_config(base.config)
    eos = conv_mod.eos_ids(tok, base)

    key = {"scenario": sc.sha256(), "model": ref.fingerprint(), "inputs": inputs, "turns": cfg.turns,
           "reply_tokens": cfg.reply_tokens, "env_tokens": cfg.env_tokens}
    convs = conv_mod.load_or_build(out, key, lambda: conv_mod.build(
        sc, base, tok, inputs, cfg.turns, cfg.reply_tokens, cfg.env_tokens))

    variants = _variants(base, ref, adapter, shape)
    contexts = {v.name: [[encode_chat(tok, conv_mod.messages(sc, c, t, v.with_prompt)) for t in range(cfg.turns)]
                         for c in convs] for v in variants}
    prefix = _shared_prefix(sc, tok, contexts[WITH_PROMPT])
    for v in variants:
        if v.name == PREFIX_CACHE:
            v.prefix = prefix
            v.build_prefix_cache()

    warm, mem = {}, {}
    skey = _settings_hash(key, adapter)
    done = out.read_measurements(skey)
    todo = [(r, v) for r in range(cfg.repeats) for v in variants if (r, v.name) not in done]
    bar = tqdm(total=(len(variants) + len(todo)) * len(convs), desc="bench", unit="conv",
               disable=not progress, dynamic_ncols=True)
    for v in variants:  # warm-up: untimed, records replies, KV bytes and peak memory
        bar.set_postfix_str(f"warm-up {v.name}")
        runs = []
        for ctx in contexts[v.name]:
            with PeakMemory(v.model, _cache_tensors(v.cache)) as pm:
                runs.append(run_conversation(v, ctx, cfg.reply_tokens, eos))
            mem[v.name] = max(mem.get(v.name, 0), pm.peak)
            bar.update()
        warm[v.name] = runs
    by_name = {v.name: v for v in variants}
    with out.measurements_writer() as log:
        for r, v in todo:
            bar.set_postfix_str(f"pass {r + 1}/{cfg.repeats} {v.name}")
            runs = []
            for ctx in contexts[v.name]:
                run = run_conversation(by_name[v.name], ctx, cfg.reply_tokens, eos)
                runs.append({"ttft_s": run.ttft_s, "turn_s": run.turn_s})
                bar.update()
            done[(r, v.name)] = runs
            log.write({"key": skey, "repeat": r, "variant": v.name, "conversations": runs})
    bar.close()

    timings = {v.name: [done[(r, v.name)] for r in range(cfg.repeats)] for v in variants}
    result = report.build(
        scenario=sc, model=ref, adapter=adapter, shape=shape, tok=tok, variants=variants, contexts=contexts,
        prefix=prefix, convs=convs, warm=warm, timings=timings, memory=mem, memory_method=PeakMemory.method,
        settings={**cfg.to_dict(), "warmup_passes": 1, "dtype": str(base.dtype).removeprefix("torch."),
                  "device": str(base.device), "decode": "greedy, end-of-turn token masked (fixed reply length)"},
        machine=_machine(load_before), max_positions=getattr(base.config, "max_position_embeddings", None))
    report.write_all(result, out)
    return result


def _variants(base, ref: ModelRef, adapter: Path | None, shape: Shape) -> list[Variant]:
    vs = [Variant(WITH_PROMPT, base, True), Variant(PREFIX_CACHE, base, True)]
    if adapter is None:
        return vs + [Variant(NO_PROMPT, base, False)]
    lora = _lora_params(adapter)
    try:
        unmerged = load_adapter(load_model(ref), adapter, merge=False)
        merged = load_adapter(load_model(ref), adapter, merge=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise GenpiError(f"adapter '{adapter}' does not fit model '{ref.spec}' ({str(e).splitlines()[0][:160]}): "
                         "pass the --model the adapter was trained on")
    return vs + [Variant(INTERNALIZED, unmerged, False, lora_params=lora), Variant(MERGED, merged, False)]


def _lora_params(adapter: Path) -> int:
    """LoRA A/B parameters in the adapter file (each runs as a matmul per token when unmerged)."""
    from safetensors import safe_open

    n = 0
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        for k in f.keys():
            if "lora_" in k:
                shp = f.get_slice(k).get_shape()
                n += int(torch.tensor(shp).prod())
    return n


def _shared_prefix(sc: Scenario, tok, prompted: list[list[list[int]]]) -> list[int]:
    """The longest token prefix shared by every prompted context (the prompt, as the cache holds it).

    Two probe inputs are added so that the input itself never counts as prompt when there is only one
    conversation; one token is always left for the prefill.
    """
    seqs = [ids for conv in prompted for ids in conv]
    seqs += [encode_chat(tok, teacher_messages(sc, probe)) for probe in ("A", "Z")]
    return seqs[0][:shared_prefix_len(seqs)]


def _cache_tensors(cache) -> list:
    if cache is None:
        return []
    return [t for layer in cache.layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))]


def _settings_hash(key: dict, adapter: Path | None) -> str:
    """Timed passes are reused only under the same conversations, adapter weights and thread count."""
    return text_sha256({**key, "threads": torch.get_num_threads(),
                        "adapter": AdapterDir(adapter).weights_sha256() if adapter is not None else None})[:16]


def _machine(load_before) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import peft
    import transformers

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
