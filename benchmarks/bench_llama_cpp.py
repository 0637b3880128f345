"""The internalized model on a CPU: transformers (fp32, PEFT adapter) against llama.cpp (the base GGUF with
the adapter exported as a LoRA GGUF), and the prompt's cost through llama.cpp.

    python benchmarks/bench_llama_cpp.py --adapter runs/shell-proto/adapters/genpi \\
        --scenario scenarios/shell-agent.yaml [--tokens 64] [--repeats 3]

Prints, one engine after the other in this process (so the figures compare as ratios on one machine):
  decode tokens/s: a fixed number of new tokens (end-of-turn ignored) for one held-out input, greedy;
  time to first token through llama.cpp, with the prompt (the base GGUF, no adapter) and internalized
  (LoRA, no prompt): cold (a fresh context) and warm (another held-out input right after the first, so
  llama.cpp reuses the KV of the prefix the two share, as its prompt cache does: the whole prompt when
  it is sent, only the chat template's opening when it is internalized).
Medians over --repeats. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from genpi.artifacts import AdapterDir  # noqa: E402
from genpi.export import export_gguf_lora  # noqa: E402
from genpi.generate.llama_server import gguf_file  # noqa: E402
from genpi.models import encode_chat, load_adapter, load_model, load_tokenizer, resolve_model  # noqa: E402
from genpi.scenario import load_scenario, student_messages, teacher_messages  # noqa: E402


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--model", default=None, help="base model (default: the adapter's)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import llama_cpp

    ref = resolve_model(args.model or AdapterDir(args.adapter).base_model_spec() or "default")
    sc = load_scenario(args.scenario)
    xs = [e.input for e in sc.eval.inputs][:2] or list(sc.seed_inputs[:2])
    x, y = xs[0], xs[-1]
    tok = load_tokenizer(ref)
    internal = encode_chat(tok, student_messages(sc, x), "generate")
    prompted = encode_chat(tok, teacher_messages(sc, x), "generate")
    internal2 = encode_chat(tok, student_messages(sc, y), "generate")
    prompted2 = encode_chat(tok, teacher_messages(sc, y), "generate")
    threads = os.cpu_count() or 1
    n = args.tokens

    # transformers, fp32, PEFT adapter unmerged (what genpi eval and chat run)
    model = load_adapter(load_model(ref), args.adapter).eval()
    ids = torch.tensor([internal])

    def hf_decode():
        with torch.no_grad():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    hf_decode()  # warm-up
    hf_s = median_time(hf_decode, args.repeats)

    lora = Path(tempfile.mkdtemp(prefix="genpi-bench-")) / "adapter.gguf"
    export_gguf_lora(args.adapter, gguf_file(ref), lora)
    with_lora = llama_cpp.Llama(model_path=str(gguf_file(ref)), lora_path=str(lora), n_ctx=4096,
                                n_threads=threads, verbose=False)
    plain = llama_cpp.Llama(model_path=str(gguf_file(ref)), n_ctx=4096, n_threads=threads, verbose=False)

    def lc_decode(llm, prompt, count, reset=True):
        got = 0
        for _ in llm.generate(prompt, temp=0.0, top_k=1, reset=reset):
            got += 1
            if got >= count:
                break

    lc_decode(with_lora, internal, n)  # warm-up
    lc_s = median_time(lambda: lc_decode(with_lora, internal, n), args.repeats)

    def ttft(llm, prompt) -> float:  # llama-cpp-python reuses the KV of the longest prefix it has seen
        t0 = time.perf_counter()
        lc_decode(llm, prompt, 1)
        return time.perf_counter() - t0

    def cold_then_warm(llm, first, second):
        cold, warm = [], []
        for _ in range(args.repeats):
            llm.reset()  # forget the tokens seen: the whole first request is read
            cold.append(ttft(llm, first))
            warm.append(ttft(llm, second))
        return statistics.median(cold), statistics.median(warm)

    p_cold, p_warm = cold_then_warm(plain, prompted, prompted2)
    i_cold, i_warm = cold_then_warm(with_lora, internal, internal2)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"{ref.name}; {cpu}, {threads} threads; held-out inputs of '{sc.name}'; {n} new tokens, median of "
          f"{args.repeats}")
    print(f"decode: transformers fp32 + PEFT {n / hf_s:.1f} tokens/s; llama.cpp GGUF + LoRA {n / lc_s:.1f} tokens/s "
          f"({hf_s / lc_s:.2f}x)")
    print(f"time to first token, llama.cpp: with the prompt ({len(prompted)} tokens) cold {p_cold * 1000:.0f} ms, "
          f"warm {p_warm * 1000:.0f} ms; internalized ({len(internal)} tokens) cold {i_cold * 1000:.0f} ms, "
          f"warm {i_warm * 1000:.0f} ms ({p_cold / i_cold:.1f}x cold, {p_warm / i_warm:.1f}x warm)")
    print(json.dumps({"bench": "llama_cpp", "model": ref.name, "adapter": args.adapter, "scenario": sc.name,
                      "tokens": n, "repeats": args.repeats, "threads": threads, "cpu": cpu,
                      "decode_tokens_per_s": {"transformers_fp32_peft": round(n / hf_s, 1),
                                              "llama_cpp_gguf_lora": round(n / lc_s, 1)},
                      "ttft_ms": {"with_prompt": {"cold": round(p_cold * 1000, 1), "warm": round(p_warm * 1000, 1),
                                                  "prompt_tokens": len(prompted)},
                                  "internalized": {"cold": round(i_cold * 1000, 1), "warm": round(i_warm * 1000, 1),
                                                   "prompt_tokens": len(internal)}}}))


if __name__ == "__main__":
    main()
