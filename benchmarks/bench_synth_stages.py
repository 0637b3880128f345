"""Wall time of `genpi synth` per stage (pseudo inputs, teacher, student, reason, role-play).

    python benchmarks/bench_synth_stages.py [--num-inputs 32] [--max-turns 3] [--preset quick] [--out DIR]

Runs the whole synthesis with the embedded model as base model and generator, in a fresh folder
(a resumed folder would time only the missing part), then prints the figures and one JSON line.
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
from genpi.models import resolve_model  # noqa: E402
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
    args = ap.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="genpi-synth-bench-"))
    if DataDir(out).has_records():
        sys.exit(f"{out} already holds records: pass a new --out so the whole run is timed")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    status = "done"
    try:
        sc = load_scenario(args.scenario)
        cfg = SynthConfig.from_preset(args.preset, sc, num_inputs=args.num_inputs, max_turns=args.max_turns)
        summary = synthesize(sc, resolve_model(args.model), None, out, cfg)
    except GenpiError as e:  # too few inputs: the figures of what ran are still in meta.json
        status = f"short: {e}"
        summary = None
    wall = time.perf_counter() - t0
    meta = DataDir(out).read_meta().model_dump()
    if summary:
        print(format_summary(summary))
    result = {"bench": "synth_stages", "scenario": meta["scenario"], "model": meta["models"]["base"],
              "num_inputs": args.num_inputs, "max_turns": args.max_turns, "preset": args.preset,
              "records": meta["counts"]["records"], "status": status, "wall_seconds": round(wall, 1),
              "stage_seconds": meta["stage_seconds"], "counts": meta["counts"], "filter_drops": meta["filter_drops"],
              "teacher_checks": meta["teacher_checks"], "out": str(out),
              "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "loadavg_before": round(load_before, 2),
                          "loadavg_after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
