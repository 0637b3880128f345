"""What an environment episode costs, three ways: one conversation at a time with whole replies (how
`genpi eval` played episodes before batching), all open episodes batched with whole replies, and
batched with each reply ending at its first whole action (today's default).

Each way plays the same first N runnable problems of a scenario's environment with one variant
(with_prompt, or an adapter), greedy, each problem in a fresh sandbox. Needs root (the sandbox).

    python benchmarks/bench_episodes.py benchmarks/agentbench-os.yaml [--problems 8] [--adapter DIR]
        [--batch 8] [--env-tokens 160] [--model default]

Prints seconds per episode, generated tokens and outcomes per way, the speed-up as a ratio measured
in this one run, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.envs.episodes import play_episodes  # noqa: E402
from genpi.envs.protocols import action_end, first_action  # noqa: E402
from genpi.envs.shell import ShellEnvironment, protocol_and_limits  # noqa: E402
from genpi.evaluate.runner import Variant  # noqa: E402
from genpi.evaluate.tasks import load_task_problems  # noqa: E402
from genpi.generate import LocalBackend  # noqa: E402
from genpi.models import load_adapter, load_model, load_tokenizer, resolve_model  # noqa: E402
from genpi.scenario import load_scenario  # noqa: E402


def play(model, tok, sc, variant, problems, *, batch: int, stop: bool, env_tokens: int) -> dict:
    env = sc.eval.environment
    protocol, limits = protocol_and_limits(env)
    backend = LocalBackend(model, tok, batch_size=batch, conversation_cache=True, keep_prefixes=2 * batch)
    if stop:
        backend.stop_when = lambda text: action_end(protocol, text) is not None
    tokens = 0

    def agent(openings, turns):
        nonlocal tokens
        convs = [variant.messages(sc, o, t) for o, t in zip(openings, turns)]
        ids = backend.generate_ids([backend.encode(c) for c in convs], max_new_tokens=env_tokens)
        tokens += sum(len(x) for x in ids)
        replies = [tok.decode(x, skip_special_tokens=True).strip() for x in ids]
        return [first_action(protocol, r) for r in replies] if stop else replies

    t0 = time.perf_counter()
    episodes = play_episodes(problems, lambda: ShellEnvironment(protocol, limits), agent, env.round_limit,
                             width=batch)
    seconds = time.perf_counter() - t0
    ran = [e for e in episodes if not e.unrunnable]
    return {"seconds": round(seconds, 1), "s_per_episode": round(seconds / max(len(ran), 1), 2),
            "tokens": tokens, "episodes": len(ran), "solved": sum(bool(e.success) for e in ran),
            "turns": sum(e.turns for e in ran), "valid_turns": sum(e.valid_turns for e in ran),
            "env_s": round(sum(e.env_s for e in ran), 1),
            "outcomes": {e.problem_id: [bool(e.success), e.end_reason] for e in ran}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("--problems", type=int, default=8, help="first N runnable problems (default 8)")
    ap.add_argument("--adapter", default=None, help="play with this adapter, no prompt (default: with_prompt)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--env-tokens", type=int, default=160)
    ap.add_argument("--model", default=None)
    ap.add_argument("--ways", default="one-at-a-time,batched,batched+stop")
    a = ap.parse_args()

    sc = load_scenario(a.scenario)
    if sc.eval.environment is None or sc.eval.environment.kind != "shell":
        sys.exit(f"bench_episodes: {a.scenario} declares no shell environment (eval.environment, kind shell)")
    from genpi.envs.agentbench import setup
    from genpi.envs.base import Unrunnable
    from genpi.envs.sandbox import Sandbox

    problems = []
    for p in load_task_problems(sc.eval.environment):  # the first N whose setup runs here
        if len(problems) == a.problems:
            break
        with Sandbox() as box:
            try:
                setup(p, box)
            except Unrunnable:
                continue
        problems.append(p)
    ref = resolve_model(a.model)
    tok, model = load_tokenizer(ref), load_model(ref)
    variant = Variant("with_prompt", with_prompt=True)
    if a.adapter:
        model, variant = load_adapter(model, a.adapter), Variant("adapter", Path(a.adapter))
    ways = {"one-at-a-time": dict(batch=1, stop=False), "batched": dict(batch=a.batch, stop=False),
            "batched+stop": dict(batch=a.batch, stop=True)}
    results = {}
    print(f"{len(problems)} problems of {sc.name}, {variant.name}, model {ref.name}, "
          f"CPU {platform.processor() or platform.machine()}", file=sys.stderr)
    for name in a.ways.split(","):
        r = results[name] = play(model, tok, sc, variant, problems, env_tokens=a.env_tokens, **ways[name])
        print(f"{name:>14}: {r['seconds']:7.1f} s  {r['s_per_episode']:6.2f} s/episode  {r['tokens']:6d} tokens  "
              f"solved {r['solved']}/{r['episodes']}  valid turns {r['valid_turns']}/{r['turns']}  "
              f"sandbox {r['env_s']} s", flush=True)
    base = results.get("one-at-a-time")
    for name, r in results.items():
        if base and name != "one-at-a-time":
            r["speedup_vs_one_at_a_time"] = round(base["seconds"] / r["seconds"], 2)
            print(f"{name}: {r['speedup_vs_one_at_a_time']}x faster than one at a time")
    if "batched" in results and "batched+stop" in results:
        same = sum(results["batched"]["outcomes"][k][0] == v[0]
                   for k, v in results["batched+stop"]["outcomes"].items())
        print(f"success agrees between whole replies and stop-at-action on {same}/{len(problems)} problems")
    print(json.dumps({"scenario": sc.name, "variant": variant.name, "problems": len(problems),
                      "batch": a.batch, "env_tokens": a.env_tokens, "results": results}))


if __name__ == "__main__":
    main()
