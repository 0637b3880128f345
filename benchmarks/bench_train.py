"""Training cost of `genpi train` for a preset: tokens/s, wall time, peak memory, and where the time goes.

    python benchmarks/bench_train.py --data DATA_DIR            # records from `genpi synth` (preferred)
    python benchmarks/bench_train.py --records 32               # stand-in records built from the prompt itself

Runs train_adapter on the embedded model (quick preset, AgentBench OS prompt by default) for each
--methods entry, in a fresh output folder, and reports per run: wall time, training tokens (every
non-padding token that went through a forward and backward pass), tokens/s, peak RSS
(resource.getrusage maxrss), the SFT and PG token totals, and the final loss terms.

Stand-in records (when no --data): inputs from the scenario's seeds and held-out list, and for every
record the prompt's own demonstration conversation (three agent turns, two shell outputs) as the
role-play, a ~90-token no-prompt answer and a ~90-token reason: about the lengths `genpi synth`
writes at the quick preset (96 new tokens a turn), so the cost is representative; the figures are
labelled as such. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDENT = ("Sure! To solve this you can write a short Python script. First import the os module, then walk "
           "through the directory with os.walk and keep a counter for every entry that matches what you are "
           "looking for. Finally print the counter. Here is an example that you can adapt to your system, and "
           "remember to run it with enough permissions so that no folder is skipped.")
REASON = ("The hidden context tells the assistant to act on an Ubuntu shell through a strict protocol: every reply "
          "starts with a Think line, then takes exactly one action, either running one bash block or giving the "
          "answer. Without it the model answered in prose and proposed a Python script. With it, the model "
          "reasons briefly and issues a bash command, as in the worked example the context gives, and it "
          "waits for the shell's output before it answers.")


def stand_in_records(sc, n: int, folder: Path) -> Path:
    """Records shaped like synth output, from the scenario's own inputs and demonstration turns."""
    inputs = list(sc.seed_inputs) + [e.input for e in sc.eval.inputs]
    demo = [m.model_dump() for m in sc.prompt if m.role in ("user", "assistant")][1:]
    conv = [t for t in demo if t["content"].strip()]
    while conv and conv[-1]["role"] == "user":
        conv.pop()
    from genpi.artifacts import DataDir, Record

    data = DataDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data.records_path.unlink(missing_ok=True)
    with data.record_writer() as w:
        for i in range(n):
            x = inputs[i % len(inputs)] + (f" (case {i // len(inputs) + 1})" if i >= len(inputs) else "")
            w.write(Record(id=f"s{i}", input=x, teacher_output=conv[0]["content"], student_output=STUDENT,
                           reason=REASON, conversation=conv).to_json())
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(REPO / "benchmarks" / "agentbench-os.yaml"))
    ap.add_argument("--data", default=None, help="a folder written by `genpi synth` (default: stand-in records)")
    ap.add_argument("--records", type=int, default=32, help="stand-in records to build when no --data")
    ap.add_argument("--model", default="default")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--methods", default="genpi", help="comma-separated methods, each a separate run")
    ap.add_argument("--epochs", type=float, default=None, help="override the preset's epochs")
    ap.add_argument("--pg-fraction", type=float, default=None)
    ap.add_argument("--kl", type=float, default=None, help="genpi's KL term (default: the preset's)")
    ap.add_argument("--kl-teacher", default=None, choices=("auto", "model", "stored"),
                    help="where the KL term's teacher comes from (stored: `genpi synth --teacher-logprobs K` first)")
    ap.add_argument("--precision", default=None, choices=("auto", "bf16", "fp32"), help="default: the preset's, auto")
    ap.add_argument("--lora-dropout", type=float, default=None, help="default: the preset's")
    ap.add_argument("--out", default=None, help="keep the adapters here (default: a temp folder)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice; on a machine busy with other work, 1 thread "
                         "avoids OpenMP spin-waiting and was 3x faster here)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from genpi.models import resolve_model
    from genpi.scenario import load_scenario
    from genpi.train import TrainConfig, parse_methods, train_adapter

    sc = load_scenario(args.scenario)
    ref = resolve_model(args.model)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_train."))
    data = Path(args.data) if args.data else stand_in_records(sc, args.records, work / "data")
    runs = {}
    for method in parse_methods(args.methods):
        t0 = time.time()
        cfg = TrainConfig.from_preset(args.preset, method=method, epochs=args.epochs, pg_fraction=args.pg_fraction,
                                      kl=args.kl if method == "genpi" else None, precision=args.precision,
                                      lora_dropout=args.lora_dropout, kl_teacher=args.kl_teacher)
        s = train_adapter(sc, ref, data, work / f"adapter-{method}", cfg, progress=True)
        wall = time.time() - t0
        t, d = s["train"], s["data"]
        runs[method] = {"total_wall_s": round(wall, 1), "train_wall_s": t["wall_s"], "tokens": t["tokens"],
                        "teacher_tokens": t["teacher_tokens"], "tokens_per_s": t["tokens_per_s"],
                        "optimizer_steps": t["optimizer_steps"], "bf16": t.get("bf16"),
                        "lora_dropout": cfg.lora_dropout, "kl": cfg.kl, "kl_teacher": s.get("kl_teacher"),
                        "sft_examples": d["sft_examples"],
                        "pg_examples": d["pg_examples"], "pg_sections": d["pg_sections"],
                        "sft_tokens_per_epoch": d["sft_tokens"],
                        "pg_tokens_per_epoch": round(d["pg_tokens"] / max(d["pg_sections"], 1)
                                                     * s["hyperparameters"]["pg_fraction"]),
                        "final_loss": s["final_loss"]}
        print(f"{method}: {wall:.0f} s total, {t['wall_s']:.0f} s training, {t['tokens']} tokens, "
              f"{t['tokens_per_s']} tokens/s", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"bench": "train", "scenario": sc.name, "model": ref.name, "preset": args.preset,
              "data": str(data) if args.data else f"stand-in ({args.records} records)",
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads",
              "load_avg_1m": round(os.getloadavg()[0], 2), "peak_rss_mb": round(peak, 1), "runs": runs}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
