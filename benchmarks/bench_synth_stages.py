"""Wall time and tokens/s of `genpi synth` per stage (pseudo inputs, teacher, student, reason, role-play).

    python benchmarks/bench_synth_stages.py [--num-inputs 32] [--max-turns 3] [--preset quick] [--out DIR]
    python benchmarks/bench_synth_stages.py --num-inputs 24 --max-turns 2 --out DIR \
        --model-api-base http://127.0.0.1:8080/v1 --model-api-name NAME [--also-local]

Runs the whole synthesis with the embedded model as base model and generator, in a fresh folder
(a resumed folder would time only the missing part), then prints the figures and one JSON line.
With --model-api-base the base model's roles (and the generator's) go to that OpenAI-compatible
server (`genpi synth --model-api-base`); --also-local then runs the local path too, one after the
other into DIR/local and DIR/served, so the two are compared on the same machine in one run.
Tokens per stage are the kept texts' tokens under the base model's tokenizer (inputs kept, teacher
and student replies, reasons, role-play turns after the first): what a stage delivered per second,
not what it generated (filtered inputs and resampled teacher replies are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.artifacts import DataDir  # noqa: E402
from genpi.errors import GenpiError  # noqa: E402
from genpi.generate.specs import ApiSpec  # noqa: E402
from genpi.models import load_tokenizer, resolve_model  # noqa: E402
from genpi.scenario import load_scenario  # noqa: E402
from genpi.synth import SynthConfig, format_summary, synthesize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(REPO / "benchmarks" / "agentbench-os.yaml"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--num-inputs", type=int, default=32)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--out", default=None, help="a new folder (default: a fresh temporary one)")
    ap.add_argument("--batch-size", type=int, default=None, help="records generated together (requests in "
                    "flight for a server; default: the preset's)")
    ap.add_argument("--env", default="auto", choices=("auto", "simulated", "shell"))
    ap.add_argument("--model-api-base", default=None, metavar="URL")
    ap.add_argument("--model-api-name", default=None, metavar="NAME")
    ap.add_argument("--also-local", action="store_true", help="with --model-api-base: run the local path too")
    ap.add_argument("--llama-server", action="store_true", help="start llama.cpp's server (llama-cpp-python) over "
                    "the model's GGUF on loopback for this run and use it as --model-api-base")
    args = ap.parse_args()
    if args.llama_server:
        from genpi.generate.llama_server import LlamaServer, gguf_file

        with LlamaServer(gguf_file(resolve_model(args.model))) as server:
            args.model_api_base, args.model_api_name = server.url, server.name
            return run_all(args)
    return run_all(args)


def run_all(args) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="genpi-synth-bench-"))
    runs = [("local", None)]
    if args.model_api_base:
        served = ApiSpec(api_base=args.model_api_base, api_model=args.model_api_name or "", role="base")
        runs = ([("local", None)] if args.also_local else []) + [("served", served)]
    results = []
    for label, api in runs:
        folder = out / label if len(runs) > 1 or api is not None else out
        results.append(one_run(args, folder, label, api))
    if len(results) == 2:
        a, b = results
        print("served / local, delivered tokens/s: " + ", ".join(
            f"{k} {b['tokens_per_s'][k] / a['tokens_per_s'][k]:.2f}x" for k in a["tokens_per_s"]
            if a["tokens_per_s"].get(k) and b["tokens_per_s"].get(k)) + f"; wall {a['wall_seconds'] / b['wall_seconds']:.2f}x faster")


class _Done(Exception):
    pass


def stage_tokens(data: DataDir, tok) -> dict[str, int]:
    """Tokens of the texts each stage delivered (see the module's docstring)."""
    def n(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    records = list(data.read_records())
    pool, _ = data.read_inputs()
    return {"inputs": sum(n(x) for x in pool), "teacher": sum(n(r.teacher_output) for r in records),
            "student": sum(n(r.student_output) for r in records), "reason": sum(n(r.reason) for r in records),
            "roleplay": sum(n(m.content) for r in records for m in r.conversation[1:])}


def one_run(args, out: Path, label: str, api) -> dict:
    data = DataDir(out)
    old = data.read_meta() if data.has_records() else None
    done = old is not None and old.status == "done" and old.stage_seconds == old.stage_seconds_total
    if data.has_records() and not done:
        sys.exit(f"{out} holds part of a run: pass a new --out so the whole run is timed")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    status = "done"
    ref = resolve_model(args.model)
    if done:  # a finished single run: its figures are read back, not measured again
        print(f"{out}: a finished run, its figures read back from its metadata")
        summary = None
    try:
        if done:
            raise _Done
        sc = load_scenario(args.scenario)
        sizes = {"num_inputs": args.num_inputs, "max_turns": args.max_turns, "env": args.env}
        if args.batch_size:
            sizes["batch_size"] = args.batch_size
        cfg = SynthConfig.from_preset(args.preset, sc, **sizes)
        summary = synthesize(sc, ref, None, out, cfg, base_api=api)
    except GenpiError as e:  # too few inputs: the figures of what ran are still in meta.json
        status = f"short: {e}"
        summary = None
    except _Done:
        pass
    wall = time.perf_counter() - t0
    meta = data.read_meta().model_dump()
    if done:
        wall = sum(meta["stage_seconds"].values())
    if summary:
        print(f"== {label}\n" + format_summary(summary))
    tokens = stage_tokens(data, load_tokenizer(ref))
    secs = meta["stage_seconds"]
    rate = {k: round(tokens[k] / secs[k], 1) for k in tokens if secs.get(k)}
    print(f"{label}: delivered tokens/s per stage: " + ", ".join(f"{k} {v}" for k, v in rate.items()))
    result = {"bench": "synth_stages", "backend": label, "endpoints": meta.get("endpoints"),
              "scenario": meta["scenario"], "model": meta["models"]["base"],
              "num_inputs": args.num_inputs, "max_turns": args.max_turns, "preset": args.preset,
              "batch_size": meta["settings"].get("batch_size"), "env": meta["settings"].get("env"),
              "records": meta["counts"]["records"], "status": status, "wall_seconds": round(wall, 1),
              "stage_seconds": secs, "stage_tokens": tokens, "tokens_per_s": rate,
              "counts": meta["counts"], "filter_drops": meta["filter_drops"],
              "teacher_checks": meta["teacher_checks"], "out": str(out),
              "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "cpu": _cpu(), "loadavg_before": round(load_before, 2),
                          "loadavg_after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(result))
    return result


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
