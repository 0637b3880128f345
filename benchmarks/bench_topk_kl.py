"""How far the top-K KL (teacher log-probabilities stored by `genpi synth --teacher-logprobs K`) is from the full KL.

On a data folder's records, for every agent-turn token: the full KL(prompted teacher || student) over the
whole vocabulary, and genpi.kl.topk_kl from the teacher's top K only, for each K asked; also the share of the
teacher's probability mass its top K hold. The teacher is the local base model with the prompt; the student is
the base model without the prompt, or with `--adapter` (an adapter trained on the folder: the KL that training
drives down). With `--llama-server`, the top-K also comes from llama.cpp's server over the model's GGUF (what a
served base model gives), against the same local full KL.

    python benchmarks/bench_topk_kl.py SCENARIO --data DATA [--model default] [--adapter DIR] [--k 1,5,20,100]
        [--records 8] [--llama-server]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.artifacts import DataDir  # noqa: E402
from genpi.generate.prompt_logprobs import logits_at  # noqa: E402
from genpi.kl import token_kl, top_logprobs, topk_kl  # noqa: E402
from genpi.models import load_adapter, load_model, load_tokenizer, render_chat, resolve_model  # noqa: E402
from genpi.scenario import load_scenario, student_messages, teacher_messages  # noqa: E402
from genpi.train.examples import teacher_rendering  # noqa: E402
from genpi.train.masking import assistant_spans  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("--data", required=True, help="a synthesis folder of this scenario")
    ap.add_argument("--model", default="default")
    ap.add_argument("--adapter", help="student = the base model with this adapter (default: without the prompt)")
    ap.add_argument("--k", default="1,5,20,100", help="comma-separated K values")
    ap.add_argument("--records", type=int, default=8, help="records to measure (the first N)")
    ap.add_argument("--llama-server", action="store_true", help="also the top-K from llama.cpp's server (largest K)")
    args = ap.parse_args()

    ks = sorted({int(k) for k in args.k.split(",")})
    sc = load_scenario(args.scenario)
    ref = resolve_model(args.model)
    tok = load_tokenizer(ref)
    records = DataDir(args.data).read_records(require=True)[:args.records]
    teacher = load_model(ref)
    student = load_adapter(load_model(ref), args.adapter) if args.adapter else teacher

    full, mass, approx, served_rows = [], {k: [] for k in ks}, {k: [] for k in ks}, []
    texts = []
    local_s = served_s = 0.0
    for rec in records:
        t = teacher_rendering(tok, sc, rec)
        s = assistant_spans(tok, student_messages(sc, rec.input, rec.turns()), first=1)
        t_pos = [p for a, b in t.spans for p in range(a, b)]
        s_pos = [p for a, b in s.spans for p in range(a, b)]
        if [t.ids[p] for p in t_pos] != [s.ids[p] for p in s_pos]:
            print(f"skipping record {rec.id}: teacher and student tokens of its turns differ", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        tl = logits_at(teacher, t.ids, t_pos)  # what the local source of --teacher-logprobs runs per record
        local_s += time.perf_counter() - t0
        sl = logits_at(student, s.ids, s_pos)
        full.append(token_kl(tl, sl))
        for k in ks:
            v, i = top_logprobs(tl, k)
            approx[k].append(topk_kl(i, v, sl))
            mass[k].append(v.exp().sum(-1))
        texts.append((render_chat(tok, teacher_messages(sc, rec.input) + rec.turns(), "complete"), t.ids, t_pos, sl))

    if args.llama_server:
        from genpi.generate.llama_server import LlamaServer, gguf_file
        from genpi.generate.openai_api import OpenAIBackend
        from genpi.generate.prompt_logprobs import Vocab, served_topk
        from genpi.generate.specs import ApiSpec

        vocab, k = Vocab(tok), ks[-1]
        with LlamaServer(gguf_file(ref)) as srv:
            backend = OpenAIBackend(ApiSpec(srv.url, srv.name, role="base", timeout=1800))
            for text, ids, pos, sl in texts:
                t0 = time.perf_counter()
                top = served_topk(backend, vocab, text, ids, pos, k)
                served_s += time.perf_counter() - t0
                served_rows.append(topk_kl(top.top_ids.long(), top.top_logprobs, sl))

    f = torch.cat(full)
    n = f.numel()
    student_name = f"adapter {args.adapter}" if args.adapter else "base model without the prompt"
    print(f"{n} agent-turn tokens of {len(full)} records; teacher: {ref.name} with the prompt; student: {student_name}")
    print(f"full KL (whole vocabulary): mean {f.mean():.4f} nats/token; the teacher's pass took "
          f"{local_s / len(full):.2f} s per record here")
    print("| K | teacher mass in top K | top-K KL | top-K / full | mean abs error per token |")
    print("|---:|---:|---:|---:|---:|")
    out = {"model": ref.name, "student": student_name, "records": len(full), "tokens": n,
           "teacher_seconds_per_record": round(local_s / len(full), 3),
           "full_kl": round(float(f.mean()), 4), "topk": {}, "machine": platform.processor() or platform.machine()}
    for k in ks:
        a, m = torch.cat(approx[k]), torch.cat(mass[k])
        row = {"mass": round(float(m.mean()), 4), "kl": round(float(a.mean()), 4),
               "ratio": round(float(a.mean() / f.mean()), 4) if f.mean() > 0 else None,
               "abs_err": round(float((a - f).abs().mean()), 4)}
        out["topk"][k] = row
        print(f"| {k} | {row['mass']:.3f} | {row['kl']:.4f} | {row['ratio']} | {row['abs_err']:.4f} |")
    if served_rows:
        a = torch.cat(served_rows)
        out["served"] = {"k": ks[-1], "kl": round(float(a.mean()), 4), "ratio": round(float(a.mean() / f.mean()), 4),
                         "abs_err": round(float((a - f).abs().mean()), 4),
                         "seconds_per_record": round(served_s / len(texts), 2)}
        print(f"llama.cpp server (GGUF), top-{ks[-1]}: KL {a.mean():.4f}, / full {out['served']['ratio']}, "
              f"mean abs error {out['served']['abs_err']:.4f}; {served_s / len(texts):.1f} s per record")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
