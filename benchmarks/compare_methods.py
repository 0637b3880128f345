"""Compare training methods on the same footing: for each scenario and seed, one synthesis, one adapter
per method trained on it, one evaluation of them all; then mean and spread over the seeds.

    python benchmarks/compare_methods.py scenarios/support-desk.yaml scenarios/it-policy.yaml \\
        --out runs/compare --seeds 0,1,2

Methods (--methods): genpi (the paper's joint loss), sft, sft-kl, prompt-mix, genpi+kl (the joint loss
plus token-level KL to the prompted teacher), genpi+on-policy (plus the on-policy reverse KL),
genpi+kl+on-policy, genpi+kl+grounded (genpi+kl with `--grounded-repeats 3`: records whose teacher reply
uses a fact or rule of the prompt trained on three times per epoch), and genpi+kl+units (genpi+kl with
`--pg-units`: a PG example per record whose request names a unit, writing out that unit); `genpi+kl=W` is
the joint loss with the KL term at weight W (genpi is W = 0, genpi+kl W = 1), and any method
followed by `+cited=C` trains with `--cited-weight C`. Every step
writes into OUT and resumes: rerunning the same command skips what is done (synthesis, adapters and
replies are all resume stores), and a run with other methods on the same OUT trains only those and
evaluates them beside every adapter trained there before.

Evaluation is first replies on the scenario's held-out inputs (`genpi eval --env simulated`: no sandbox
episodes), greedy, with the checks, the expectations (facts) and the KL to the prompted model.
Prints a markdown table (mean ± sample standard deviation over seeds, and each seed's value for the
score) and writes OUT/compare.json, OUT/compare.md, OUT/compare.png (scores) and, where a scenario has
expectations, OUT/compare-facts.png (facts against KL to the teacher).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# each method: the TrainConfig fields it sets (on top of the preset)
METHODS: dict[str, dict] = {
    "genpi": {"method": "genpi", "kl": 0.0},  # the paper's loss, whatever the preset's kl
    "sft": {"method": "sft"},
    "sft-kl": {"method": "sft-kl"},
    "prompt-mix": {"method": "prompt-mix"},
    "genpi+kl": {"method": "genpi", "kl": 1.0},
    "genpi+on-policy": {"method": "genpi", "on_policy": 1.0},
    "genpi+kl+on-policy": {"method": "genpi", "kl": 1.0, "on_policy": 1.0},
    "genpi+kl+grounded": {"method": "genpi", "kl": 1.0, "grounded_repeats": 3},
    "genpi+kl+units": {"method": "genpi", "kl": 1.0, "pg_units": True},
    "genpi+12-epochs": {"method": "genpi", "kl": 0.0, "epochs": 12},
    "genpi+kl+12-epochs": {"method": "genpi", "kl": 1.0, "epochs": 12},
}
BASELINES = ("with_prompt", "no_prompt")


def method_fields(name: str) -> dict | None:
    """The TrainConfig fields of a method name: one of METHODS, or genpi+kl=W (the KL term at weight W >= 0),
    either followed by +cited=C (cited text counted C > 0 times by SFT); None for an unknown name."""
    base, sep, cited = name.partition("+cited=")
    if sep:
        fields = method_fields(base)
        try:
            c = float(cited)
        except ValueError:
            return None
        return {**fields, "cited_weight": c} if fields is not None and 0 < c < float("inf") else None
    if name in METHODS:
        return METHODS[name]
    weight = name.removeprefix("genpi+kl=")
    if weight == name:
        return None
    try:
        w = float(weight)
    except ValueError:
        return None
    return {"method": "genpi", "kl": w} if 0 <= w < float("inf") else None


# `genpi synth` options passed on, and what each does
SYNTH_FLAGS = {
    "aim_stems": "aimed requests open with their unit's label",
    "avoid_demo_copies": "teacher replies that repeat a demonstration's wording are sampled again",
    "act_first": "an agent's first teacher reply that answers without acting is sampled again for one that runs a "
                 "command",
    "avoid_repeats": "a role-play agent turn that repeats the agent's previous reply is sampled again, else the "
                     "conversation ends before it",
    "cite_units": "a first reply that leaves out the unit its request asks about is given that unit's text, kept out "
                  "of the KL term",
    "unit_questions": "a request aimed at a fact or rule is written by the generator shown that unit after fact / "
                      "request pairs",
}


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="+", help="scenario YAML files")
    ap.add_argument("--out", required=True, help="work folder (resumable)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (synthesis and training)")
    ap.add_argument("--methods", default="genpi,sft,sft-kl,prompt-mix,genpi+kl,genpi+on-policy",
                    help=f"comma-separated, from: {', '.join(METHODS)}, genpi+kl=W (the KL term at weight W); "
                         "any of them may end in +cited=C (--cited-weight C)")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--model", default=None, help="base model (default: the preset's)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="replies generated together in synthesis and evaluation (default: each stage's own, 8)")
    ap.add_argument("--synth-env", default=None, choices=("auto", "shell", "simulated"),
                    help="where role-play turns come from in synthesis (default: genpi synth's, auto)")
    for flag, what in SYNTH_FLAGS.items():
        name = flag.replace("_", "-")
        ap.add_argument(f"--{name}", action="store_true", help=f"synthesize with `genpi synth --{name}` ({what})")
    ap.add_argument("--num-inputs", type=int, default=None, metavar="N",
                    help="synthesize with `genpi synth --num-inputs N` (records per seed; default: the preset's)")
    ap.add_argument("--coverage", type=float, default=None, metavar="F",
                    help="synthesize with `genpi synth --coverage F` (the share of inputs aimed at one unit of the "
                         "prompt; default: genpi synth's)")
    ap.add_argument("--summary-only", action="store_true", help="only print the table of what OUT holds")
    args = ap.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds {args.seeds!r}: give integers separated by commas, e.g. 0,1,2")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if method_fields(m) is None]
    if bad or not args.methods or not args.seeds:
        ap.error(f"--methods: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}, "
                 "or genpi+kl=W with a weight W >= 0; any of them may end in +cited=C with C > 0")
    return args


def run_one(scenario_path: str, seed: int, methods: list[str], preset: str, model: str | None, out: Path,
            timings: dict, batch_size: int | None = None, synth_env: str | None = None,
            synth_flags: dict | None = None) -> Path:
    """Synthesize, train every method and evaluate them with the adapters earlier runs trained for this
    scenario and seed; return the report folder."""
    from genpi.evaluate import EvalConfig, evaluate
    from genpi.models import resolve_model
    from genpi.presets import preset_model
    from genpi.scenario import load_scenario
    from genpi.synth import SynthConfig, synthesize
    from genpi.train import TrainConfig, train_adapter

    sc = load_scenario(scenario_path)
    ref = resolve_model(model or preset_model(preset))
    work = out / sc.name / f"seed{seed}"
    t = timings.setdefault(f"{sc.name}/seed{seed}", {})
    t0 = time.time()
    synthesize(sc, ref, None, work / "data", SynthConfig.from_preset(preset, seed=seed, batch_size=batch_size,
                                                                         env=synth_env, **(synth_flags or {})))
    t["synth_s"] = round(time.time() - t0, 1)
    adapters = []
    for m in methods:
        t0 = time.time()
        cfg = TrainConfig.from_preset(preset, seed=seed, **method_fields(m))
        train_adapter(sc, ref, work / "data", work / "adapters" / m, cfg, progress=True)
        t[f"train_{m}_s"] = round(time.time() - t0, 1)
        adapters.append(work / "adapters" / m)
    # and every adapter an earlier run trained for this seed, so the report keeps them all
    adapters += sorted(d for d in (work / "adapters").iterdir()
                       if d.name not in methods and (d / "adapter_model.safetensors").is_file())
    t0 = time.time()
    env = "simulated" if sc.eval.environment is not None else None
    evaluate(sc, ref, adapters, work / "report", EvalConfig.from_preset(preset, env=env, batch_size=batch_size))
    t["eval_s"] = round(time.time() - t0, 1)
    return work / "report"


def _mean_sd(xs: list[float]) -> tuple[float | None, float | None]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _cell(xs: list[float], digits: int = 2) -> str:
    m, sd = _mean_sd(xs)
    return "–" if m is None else f"{m:.{digits}f} ± {sd:.{digits}f}"


def variant_names(report: dict, methods: list[str]) -> dict[str, str]:
    """Method -> the name evaluation gave its adapter, found by the adapter's folder (adapters/METHOD), which
    report.json records: the names themselves follow the order of evaluation."""
    return {Path(p).name: v for v, p in report.get("adapters", {}).items() if Path(p).name in methods}


def summarize(out: Path, scenarios: list[str], seeds: list[int], methods: list[str]) -> dict:
    """Per scenario and variant: every seed's score, checks, expectations and KL, with mean and spread."""
    from genpi.artifacts import ReportDir
    from genpi.scenario import load_scenario

    summary: dict = {}
    for sp in scenarios:
        name = load_scenario(sp).name
        per: dict = {}
        for seed in seeds:
            rd = ReportDir(out / name / f"seed{seed}" / "report")
            if not rd.report_path.is_file():
                continue
            rep = rd.read()
            names = variant_names(rep, methods)
            for v in (*BASELINES, *methods):
                r = rep["variants"].get(v if v in BASELINES else names.get(v, ""))
                if r is None:
                    continue
                row = per.setdefault(v, {"seeds": [], "score": [], "expectations": [], "expectations_kept": [],
                                         "kl_to_teacher": [], "retention": [], "checks": {}})
                row["seeds"].append(seed)
                for k in ("score", "expectations", "expectations_kept", "kl_to_teacher", "retention"):
                    row[k].append(r.get(k))
                for c, rate in r["checks"].items():
                    row["checks"].setdefault(c, []).append(rate)
        summary[name] = per
    return summary


def table(summary: dict) -> str:
    lines = ["| scenario | variant | seeds | score | score per seed | checks | expectations (facts) | facts kept | "
             "KL to teacher |", "|---|---|---:|---|---|---|---|---|---|"]
    for name, per in summary.items():
        for i, (v, r) in enumerate(per.items()):
            checks = ", ".join(f"{c} {_cell(x)}" for c, x in r["checks"].items()) or "–"
            seeds = " / ".join("–" if s is None else f"{s:.2f}" for s in r["score"])
            lines.append(f"| {name if i == 0 else ''} | {v} | {len(r['seeds'])} | {_cell(r['score'])} | {seeds} | "
                         f"{checks} | {_cell(r['expectations'])} | {_cell(r['expectations_kept'])} | "
                         f"{_cell(r['kl_to_teacher'], 3)} |")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> Path | None:
    """Bars: mean score per variant and scenario, with the seeds' spread as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(summary)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        per = summary[name]
        vs = list(per)
        stats = [_mean_sd(per[v]["score"]) for v in vs]
        ax.bar(range(len(vs)), [m or 0 for m, _ in stats], yerr=[sd or 0 for _, sd in stats], capsize=3,
               color=["#999" if v in BASELINES else "#3b7dd8" for v in vs])
        ax.set_xticks(range(len(vs)), vs, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{name}: score (mean ± sd over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_facts(summary: dict, path: Path) -> Path | None:
    """Facts against KL to the teacher, one panel per scenario with expectations: each method's mean with the
    seeds' spread both ways, the prompted model's facts and 0.8x of them, and the 0.5-nat closeness line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [n for n, per in summary.items() if any(x is not None for r in per.values() for x in r["expectations"])]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        per = summary[name]
        prompted, _ = _mean_sd(per.get("with_prompt", {}).get("expectations", []))
        if prompted is not None:
            ax.axhline(prompted, color="#999", lw=1, label=f"prompted model ({prompted:.2f})")
            ax.axhline(0.8 * prompted, color="#999", lw=1, ls="--", label="0.8x the prompted model")
        ax.axvline(0.5, color="#c44", lw=1, ls=":", label="KL 0.5 nats")
        for v, r in per.items():
            (y, ysd), (x, xsd) = _mean_sd(r["expectations"]), _mean_sd(r["kl_to_teacher"])
            if v in BASELINES or x is None or y is None:
                continue
            ax.errorbar(x, y, xerr=xsd, yerr=ysd, fmt="o", capsize=3, color="#3b7dd8")
            ax.annotate(f"{v} ({len(r['seeds'])})", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("KL to the prompted model (nats)", fontsize=8)
        ax.set_ylabel("facts (share of held-out answers)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.15)  # room for the labels of the outermost points
        ax.set_title(f"{name}: facts vs closeness (mean ± sd; seeds)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = _parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    if not args.summary_only:
        from genpi.errors import GenpiError

        start = time.time()
        for sp in args.scenarios:
            for seed in args.seeds:
                print(f"compare_methods: {sp}, seed {seed}", file=sys.stderr)
                try:
                    flags = {k: True for k in SYNTH_FLAGS if getattr(args, k)}
                    flags.update({k: getattr(args, k) for k in ("coverage", "num_inputs") if getattr(args, k) is not None})
                    run_one(sp, seed, args.methods, args.preset, args.model, out, timings, args.batch_size,
                            args.synth_env, flags)
                except GenpiError as e:
                    sys.exit(f"compare_methods: {e}")
        timings["total_s"] = round(time.time() - start, 1)
    summary = summarize(out, args.scenarios, args.seeds, args.methods)
    md = table(summary)
    import torch

    machine = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
               + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    if args.summary_only:  # the reports may come from another machine: say only what this run did
        machine = f"summary of the reports in {out} (each run's machine is in its logs)"
    result = {"bench": "compare_methods", "preset": args.preset, "seeds": args.seeds, "methods": args.methods,
              "machine": machine, "timings": timings, "summary": summary}
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    (out / "compare.md").write_text(md + "\n")
    pngs = [p for p in (plot(summary, out / "compare.png"), plot_facts(summary, out / "compare-facts.png")) if p]
    print(md)
    print(f"\n{machine}; timings (s): {json.dumps(timings)}" + (f"; plots: {', '.join(map(str, pngs))}" if pngs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
