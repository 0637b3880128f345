"""Turn bench measurements into the bench report (schema: genpi.artifacts.BenchReport), its markdown and plot."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path

from ..artifacts import BenchDir
from .flops import forward_flops, turn_flops
from .runner import INTERNALIZED, MERGED, NO_PROMPT, PREFIX_CACHE, WITH_PROMPT

MiB = 1 << 20


def _mean(xs):
    return statistics.fmean(xs) if xs else 0.0


def _stat(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "per_repeat": xs}


def _variant(v, ctxs, shape, reply, prefix_len, warm, timings, memory) -> dict:
    """Figures of one variant, per conversation (means over the conversations)."""
    past = prefix_len if v.prefix is not None else 0
    per = [[turn_flops(shape, past, len(ids) - past, reply, v.lora_params) for ids in conv] for conv in ctxs]
    turns = len(ctxs[0])
    flops_turn = [_mean([sum(c[t][k] for k in ("prefill", "decode")) for c in per]) for t in range(turns)]
    cum_flops = [sum(flops_turn[:t + 1]) for t in range(turns)]
    last_ctx = _mean([len(conv[-1]) + reply - 1 for conv in ctxs])  # tokens in the cache after the last turn

    totals = [_mean([sum(c["turn_s"]) for c in rep]) for rep in timings]
    ttft = [statistics.median(_mean([c["ttft_s"][t] for c in rep]) for rep in timings) for t in range(turns)]
    cum_s = [statistics.median(_mean([sum(c["turn_s"][:t + 1]) for c in rep]) for rep in timings)
             for t in range(turns)]
    weights = sum(p.numel() * p.element_size() for p in v.model.parameters())
    bytes_per_value = next(v.model.parameters()).element_size()
    return {
        "tokens": {"prefilled_per_conversation": _mean([sum(len(ids) - past for ids in conv) for conv in ctxs]),
                   "prefilled_per_turn": [_mean([len(conv[t]) - past for conv in ctxs]) for t in range(turns)],
                   "decoded_per_conversation": turns * reply,
                   "prompt_tokens_from_cache_per_turn": past,
                   "cache_tokens_last_turn": last_ctx},
        "flops": {"per_conversation": cum_flops[-1],
                  "prefill": _mean([sum(t["prefill"] for t in c) for c in per]),
                  "decode": _mean([sum(t["decode"] for t in c) for c in per]),
                  "attention": _mean([sum(t["prefill_attention"] + t["decode_attention"] for t in c) for c in per]),
                  "decode_attention_per_token_last_turn": _mean([c[-1]["decode_attention"] / max(reply - 1, 1)
                                                                  for c in per]),
                  "per_turn": flops_turn, "cumulative_per_turn": cum_flops},
        "latency": {"total_s": _stat(totals), "ttft_s_per_turn": ttft, "ttft_s_mean": _mean(ttft),
                    "cumulative_s_per_turn": cum_s},
        "kv_bytes": _mean([r.kv_bytes for r in warm]),
        "kv_bytes_analytic": _mean([shape.kv_bytes(len(conv[-1]) + reply - 1, bytes_per_value) for conv in ctxs]),
        "peak_mem_bytes": memory,
        "weights_bytes": weights,
        "lora_params": v.lora_params,
    }


def _agreement(warm: dict, a: str, b: str) -> dict | None:
    if a not in warm or b not in warm:
        return None
    pairs = [(x, y) for ra, rb in zip(warm[a], warm[b]) for x, y in zip(ra.replies, rb.replies)]
    diff = max(float((ra.first_logits - rb.first_logits).abs().max()) for ra, rb in zip(warm[a], warm[b]))
    return {"identical_replies": sum(x == y for x, y in pairs), "replies": len(pairs), "max_abs_logit_diff": diff}


def _ratios(vs: dict, base: str, timings: dict) -> dict:
    ref = vs[base]
    out = {}
    for name, v in vs.items():
        paired = [_mean([sum(c["turn_s"]) for c in a]) / _mean([sum(c["turn_s"]) for c in b])
                  for a, b in zip(timings[name], timings[base])]
        out[name] = {
            "flops": v["flops"]["per_conversation"] / ref["flops"]["per_conversation"],
            "latency": v["latency"]["total_s"]["median"] / ref["latency"]["total_s"]["median"],
            "latency_per_repeat_range": [min(paired), max(paired)],
            "ttft": v["latency"]["ttft_s_mean"] / ref["latency"]["ttft_s_mean"],
            "prefilled_tokens": v["tokens"]["prefilled_per_conversation"] / ref["tokens"]["prefilled_per_conversation"],
            "decode_attention": (v["flops"]["decode_attention_per_token_last_turn"]
                                 / ref["flops"]["decode_attention_per_token_last_turn"]),
            "kv_bytes": v["kv_bytes"] / ref["kv_bytes"],
            "peak_mem": v["peak_mem_bytes"] / ref["peak_mem_bytes"] if ref["peak_mem_bytes"] else None,
        }
    return out


def build(*, scenario, model, adapter, shape, tok, variants, contexts, prefix, convs, warm, timings, memory,
          memory_method, settings, machine, max_positions) -> dict:
    reply = settings["reply_tokens"]
    vs = {v.name: _variant(v, contexts[v.name], shape, reply, len(prefix), warm[v.name], timings[v.name],
                           memory[v.name]) for v in variants}
    pc = next(v for v in variants if v.name == PREFIX_CACHE)
    bpv = next(pc.model.parameters()).element_size()
    notes = ["Per-conversation figures are means over the conversations; latency is the median over timed "
             "passes (min/max and every pass given), model time only (tokenizing excluded).",
             "with_prompt_prefix_cache: the prompt's KV is built once and shared; its one-time cost is in "
             "'prompt_cache', not in the per-conversation figures.",
             "FLOPs are analytic (formula in genpi/bench/flops.py): linear layers incl. unmerged LoRA A/B, "
             "the LM head on the last position of each call, causal attention over the context."]
    if adapter is None:
        notes.append("No adapter was given: the internalized variants were not run; 'no_prompt' is the base "
                     "model without the prompt, which costs exactly what a merged adapter costs.")
    internal = INTERNALIZED if INTERNALIZED in vs else NO_PROMPT
    return {
        "scenario": scenario.name,
        "model": model.name,
        "adapter": str(adapter) if adapter else None,
        "shape": asdict(shape),
        "settings": settings,
        "machine": machine,
        "prompt_cache": {"tokens": len(prefix), "flops": sum(forward_flops(shape, len(prefix)).values()),
                         "build_s": pc.prefix_build_s, "kv_bytes": shape.kv_bytes(len(prefix), bpv)},
        "context_window": {"max_positions": max_positions, "prompt_tokens": len(prefix),
                           "prompt_share": len(prefix) / max_positions if max_positions else None},
        "variants": vs,
        "ratios": _ratios(vs, WITH_PROMPT, timings),
        "ratios_to_prefix_cache": {k: v for k, v in _ratios(vs, PREFIX_CACHE, timings).items()
                                   if k in (INTERNALIZED, MERGED, NO_PROMPT)},
        "agreement": {"with_prompt_vs_prefix_cache": _agreement(warm, WITH_PROMPT, PREFIX_CACHE),
                      "internalized_vs_merged": _agreement(warm, INTERNALIZED, MERGED)},
        "conversations": [{"input": c.input, "turns": c.turns, "replies": {
            name: [tok.decode(r, skip_special_tokens=True) for r in warm[name][i].replies] for name in vs}}
            for i, c in enumerate(convs)],
        "peak_mem_method": memory_method,
        "internalized_variant": internal,
        "notes": notes,
    }


# -- writing -----------------------------------------------------------------------------------------


def write_all(result: dict, out: BenchDir) -> None:
    """bench.json, bench.md and bench.png, through the bench folder's owner."""
    out.write(result, markdown(result), lambda path: plot(result, path))


def _fmt_s(st: dict) -> str:
    return f"{st['median']:.2f} ({st['min']:.2f}–{st['max']:.2f})"


def markdown(r: dict) -> str:
    vs, ra, s, m = r["variants"], r["ratios"], r["settings"], r["machine"]
    lines = [f"# Inference cost: {r['scenario']}", "",
             f"{s['conversations']} conversation(s) × {s['turns']} agent turns, {s['reply_tokens']} tokens decoded "
             f"per turn; model {r['model']}; adapter {r['adapter'] or '(none)'}; median of {s['repeats']} timed "
             f"passes after a warm-up (min–max in brackets); {m['torch_threads']} torch threads on {m['cores']} "
             f"cores ({m['cpu']}); load average {m['loadavg_before'][0]} → {m['loadavg_after'][0]}.", "",
             "| variant | prefilled tok/conv | GFLOPs/conv | × FLOPs | latency s/conv | × latency | TTFT s | "
             "KV MiB (last turn) | peak mem MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, v in vs.items():
        lines.append(f"| {name} | {v['tokens']['prefilled_per_conversation']:.0f} | "
                     f"{v['flops']['per_conversation'] / 1e9:.1f} | {ra[name]['flops']:.2f} | "
                     f"{_fmt_s(v['latency']['total_s'])} | {ra[name]['latency']:.2f} | "
                     f"{v['latency']['ttft_s_mean']:.3f} | {v['kv_bytes'] / MiB:.1f} | "
                     f"{v['peak_mem_bytes'] / MiB:.0f} |")
    pcache = r["prompt_cache"]
    lines += ["", f"One-time prompt cache (shared by every conversation, not in the rows above): {pcache['tokens']} "
              f"tokens, {pcache['flops'] / 1e9:.1f} GFLOPs, {pcache['build_s']:.2f} s, "
              f"{pcache['kv_bytes'] / MiB:.1f} MiB of KV.", "", "## What it means", ""]
    load = max(m["loadavg_before"][0], m["loadavg_after"][0])
    if load > m["cores"]:
        lines += [f"**Warning:** load average {load:.1f} on {m['cores']} cores: other processes competed for the "
                  "CPU during the run, so latencies are noisy (see the min–max spread); FLOPs, tokens and KV bytes "
                  "are not affected.", ""]
    lines += [f"- {x}" for x in _findings(r)]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"] + [f"Peak memory: {r['peak_mem_method']}."]]
    return "\n".join(lines) + "\n"


def _change(saved: float, what: str) -> str:
    """'removes 82% of the FLOPs' or, when the share is negative, 'adds 7% to the latency'."""
    return f"removes {saved:.0%} of the {what}" if saved >= 0 else f"adds {-saved:.0%} to the {what}"


def _findings(r: dict) -> list[str]:
    vs, ra = r["variants"], r["ratios"]
    name = r["internalized_variant"]
    iv, pv = vs[name], vs[PREFIX_CACHE]
    out = []
    if name == NO_PROMPT:
        out.append("No adapter was given, so 'no_prompt' (the base model without the prompt) stands in for a "
                   "merged adapter; an unmerged adapter adds its LoRA matmuls on top.")
    sp, si = 1 - ra[PREFIX_CACHE]["flops"], 1 - ra[name]["flops"]
    lp, li = 1 - ra[PREFIX_CACHE]["latency"], 1 - ra[name]["latency"]
    out.append(f"Against re-sending the prompt every turn, prefix caching {_change(sp, 'FLOPs')} and "
               f"{_change(lp, 'latency')} per conversation; {name} {_change(si, 'FLOPs')} and {_change(li, 'latency')}.")
    if ra[name]["latency"] > 1 or ra[PREFIX_CACHE]["latency"] > 1:
        out.append("Latency rose where FLOPs fell: at this model size each decoded token costs a fixed launch "
                   "and framework overhead that fewer FLOPs do not remove (typical of a small model on a GPU); "
                   "the FLOPs, KV and context figures are what carries over to larger models.")
    share = sp / si if si > 0 else float("nan")
    if share >= 1:
        extra = iv["tokens"]["prefilled_per_turn"][0] - pv["tokens"]["prefilled_per_turn"][0]
        out.append(f"Per conversation, prefix caching saves at least as much compute as internalizing here "
                   f"({sp:.0%} vs {si:.0%} of the FLOPs, the cache's one-time cost aside): what is left of a cached "
                   f"prompt's cost is attention over it, while the no-prompt input re-sends its own template and "
                   f"chat-template preamble every turn ({extra:+.0f} tokens at turn 1 against the cached variant)"
                   + (" and the unmerged LoRA adds its matmuls." if vs[name]["lora_params"] else "."))
    elif share >= 0.75:
        out.append(f"Prefix caching already gets most of the compute saving here ({share:.0%} of what internalizing "
                   "saves): with a reused prompt cache the prompt's remaining cost is attention, not prefill.")
    else:
        out.append(f"Internalizing saves clearly more than prefix caching here: the cache gets only {share:.0%} of "
                   "the FLOPs saving, because every decoded and prefilled token still attends over the prompt.")
    a_p, a_i = pv["flops"]["decode_attention_per_token_last_turn"], iv["flops"]["decode_attention_per_token_last_turn"]
    out.append(f"Decode-time attention: at the last turn each decoded token attends over "
               f"{pv['tokens']['cache_tokens_last_turn']:.0f} cached tokens with the prompt vs "
               f"{iv['tokens']['cache_tokens_last_turn']:.0f} without: {a_p / 1e6:.1f} vs {a_i / 1e6:.1f} MFLOPs "
               f"of attention per token ({a_i / a_p:.2f}×); this gap grows with the prompt and with longer replies.")
    out.append(f"KV memory per concurrent user at the last turn: {pv['kv_bytes'] / MiB:.1f} MiB with the prompt vs "
               f"{iv['kv_bytes'] / MiB:.1f} MiB internalized ({iv['kv_bytes'] / pv['kv_bytes']:.2f}×). An engine "
               f"that shares prefix blocks between users (vLLM) stores the prompt's "
               f"{r['prompt_cache']['kv_bytes'] / MiB:.1f} MiB once, so there the per-user saving is smaller; "
               "engines that keep one cache per user (as here) pay it for every user.")
    cw = r["context_window"]
    if cw["max_positions"]:
        out.append(f"Context window: the prompt takes {cw['prompt_tokens']} of the model's {cw['max_positions']} "
                   f"positions ({cw['prompt_share']:.1%}) in every request, cache or not; internalized, they are "
                   "free for the conversation.")
    if INTERNALIZED in vs and MERGED in vs:
        extra = ra[INTERNALIZED]["latency"] / ra[MERGED]["latency"] - 1
        out.append(f"Unmerged vs merged: the adapter's LoRA matmuls add "
                   f"{vs[INTERNALIZED]['flops']['per_conversation'] / vs[MERGED]['flops']['per_conversation'] - 1:.1%} "
                   f"FLOPs and {extra:+.0%} latency; merge to serve one adapter, keep it unmerged to serve many "
                   "adapters from one base model.")
    ag = r["agreement"]["with_prompt_vs_prefix_cache"]
    out.append(f"Check: with_prompt and with_prompt_prefix_cache gave identical greedy replies in "
               f"{ag['identical_replies']} of {ag['replies']} turns.")
    return out


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, v in r["variants"].items():
        turns = range(1, len(v["flops"]["cumulative_per_turn"]) + 1)
        a.plot(turns, [x / 1e9 for x in v["flops"]["cumulative_per_turn"]], marker="o", label=name)
        b.plot(turns, v["latency"]["cumulative_s_per_turn"], marker="o", label=name)
    a.set(title="cumulative FLOPs per conversation", xlabel="agent turn", ylabel="GFLOPs")
    b.set(title="cumulative latency per conversation (median)", xlabel="agent turn", ylabel="seconds")
    for ax in (a, b):
        ax.set_xticks(list(turns))
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(f"{r['scenario']}: {r['model']} (prompt cache built once, not shown)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
