"""Task success: each variant plays the environment's problems for whole episodes and is judged by
whether it solved them (the paper's measure), not by the form of its first reply.

Every variant gets the same problems, greedy decoding, the same round limit and reply length; each
problem runs in a fresh environment (genpi.envs.shell: a sandboxed Linux system). Episodes are
appended to episodes.jsonl as they finish, under a key naming the model, adapter, scenario and
settings, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from ..artifacts import AdapterDir, ReportDir, text_sha256
from ..envs.episodes import play_episodes, repeated_turns
from ..scenario import EvalEnvironment, Scenario
from .checks import normalized, rate, retention
from .config import EvalConfig


def task_environment(sc: Scenario, cfg: EvalConfig) -> EvalEnvironment | None:
    """The environment whole episodes run in, or None (none declared, or --env simulated)."""
    env = sc.eval.environment
    if env is None or (cfg.env or env.kind) != "shell":
        return None
    if cfg.problems:  # --problems PATH: another copy of the problem set
        return env.model_copy(update={"problems": str(Path(cfg.problems).expanduser().resolve())})
    return env


def load_task_problems(env: EvalEnvironment) -> list:
    """The problem set, checked; raises a one-line error when the sandbox cannot start here."""
    from ..envs.agentbench import load_problems
    from ..envs.protocols import build_protocol
    from ..envs.sandbox import check_sandbox

    build_protocol(env.protocol)
    problems = load_problems(env.problems, env.scripts)
    check_sandbox()
    return problems


def task_key(variant, sc: Scenario, model_fingerprint: str, env: EvalEnvironment, cfg: EvalConfig) -> str:
    """What a stored episode depends on; an episode stored under another key is never reused."""
    parts = {"variant": variant.name, "with_prompt": variant.with_prompt, "model": model_fingerprint,
             "scenario": sc.sha256(), "templates": [sc.input_template, sc.student_template],
             "adapter": AdapterDir(variant.adapter_dir).weights_sha256() if variant.adapter_dir else None,
             "environment": env.model_dump(mode="json"), "env_tokens": cfg.env_tokens, "seed": cfg.seed}
    return text_sha256(parts)[:16]


def run_tasks(backend, sc: Scenario, variant, problems: list, env: EvalEnvironment, cfg: EvalConfig, key: str,
              store: dict, out: ReportDir, limit: int | None = None) -> list[dict]:
    """Episode rows for `problems` in order (stored ones reused); with `limit`, stop after that many
    runnable problems (the rows cover the problems up to there, unrunnable ones included)."""
    from ..envs.shell import ShellEnvironment, protocol_and_limits

    from ..envs.protocols import action_end, first_action

    protocol, limits = protocol_and_limits(env)
    if env.stop_at_action and hasattr(backend, "stop_when"):  # a local model stops there (faster)
        backend.stop_when = lambda text: action_end(protocol, text) is not None

    def agent(openings: list[str], turns: list[list[dict]]) -> list[str]:
        replies = backend.chat([variant.messages(sc, o, t) for o, t in zip(openings, turns)],
                               max_new_tokens=cfg.env_tokens, seed=cfg.seed)
        # every backend's replies cut the same way, whether or not it could stop there itself
        return [first_action(protocol, r) for r in replies] if env.stop_at_action else replies

    want = limit or len(problems)
    visited: list[str] = []                 # problem ids in order, stored or played
    count = {"runnable": 0, "new": 0, "new_unrunnable": 0}
    bar = tqdm(total=min(want, len(problems)), desc=f"episodes {variant.name}", unit="problem", file=sys.stderr,
               dynamic_ncols=True)

    def feed():
        """The problems still to play, in order, until `want` runnable ones are done or under way."""
        for p in problems:
            if count["runnable"] + count["new"] - count["new_unrunnable"] >= want:
                return
            visited.append(p.id)
            row = store.get((variant.name, key, p.id))
            if row is not None:
                count["runnable"] += not row["unrunnable"]
                bar.update(not row["unrunnable"])
                continue
            count["new"] += 1
            yield p

    with out.episodes_writer() as f:
        def keep(ep) -> None:
            row = {"variant": variant.name, "key": key, "problem": ep.problem_id, **asdict(ep)}
            row.pop("problem_id")
            store[(variant.name, key, ep.problem_id)] = row
            f.write(row)
            count["new_unrunnable"] += ep.unrunnable
            bar.update(not ep.unrunnable)

        play_episodes(feed(), lambda: ShellEnvironment(protocol, limits), agent, env.round_limit,
                      width=cfg.batch_size, on_episode=keep,
                      on_step=lambda n: bar.set_postfix_str(f"{n} open", refresh=True))
    bar.close()
    return [store[(variant.name, key, pid)] for pid in visited]


def wilson(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    """The 95% Wilson score interval of a success rate (small samples: the spread to quote)."""
    if n == 0:
        return None
    p = successes / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, mid - half), 4), round(min(1.0, mid + half), 4)]


def summarize_tasks(rows: list[dict]) -> dict:
    """A variant's `env` object: success and its spread, action validity, turns, end reasons, and how many
    episodes hold an agent turn that repeats the one before word for word (`repeated`)."""
    ran = [r for r in rows if not r["unrunnable"]]
    turns = sum(r["turns"] for r in ran)
    solved = sum(bool(r["success"]) for r in ran)
    return {"success": rate([bool(r["success"]) for r in ran]), "solved": solved, "success_ci95": wilson(solved, len(ran)),
            "invalid_action_rate": rate([r["end_reason"] == "invalid_action" for r in ran]),
            "valid_action_share": sum(r["valid_turns"] for r in ran) / turns if turns else None,
            "mean_turns": turns / len(ran) if ran else None,
            "end_reasons": dict(Counter(r["end_reason"] for r in ran).most_common()),
            "repeated": sum(repeated_turns(r["conversation"]) > 0 for r in ran),
            "n_problems": len(rows), "n_unrunnable": len(rows) - len(ran),
            "unrunnable": {r["problem"]: r["reason"] for r in rows if r["unrunnable"]},
            "outcomes": {r["problem"]: (None if r["unrunnable"] else bool(r["success"])) for r in rows},
            "env_s_per_episode": sum(r["env_s"] for r in ran) / len(ran) if ran else None,
            "setup_s_per_episode": sum(r["setup_s"] for r in ran) / len(ran) if ran else None}


def add_retention(envs: dict[str, dict], floor: str, ceiling: str) -> None:
    """Each variant's success retention (success / with_prompt success) and normalized retention."""
    top, bottom = envs[ceiling]["success"], envs[floor]["success"]
    for name, e in envs.items():
        if name != ceiling:
            e["retention"] = retention(e["success"], top)
            e["normalized"] = normalized(e["success"], bottom, top)
