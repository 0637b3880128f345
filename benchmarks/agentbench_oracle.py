"""AgentBench v0.2 OS problems in the sandbox: does an agent that knows the answer pass, and a wrong one fail?

For every problem, two fresh sandboxes: in one the oracle (genpi.envs.agentbench.run_oracle: the
match string, or the example run in the agent's shell and its output as the answer) is judged, in the
other a wrong answer (wrong_answer(): "wrong", no commands). A problem whose setup fails is reported
as unrunnable with the reason. Needs root and the sandbox (see genpi/envs/sandbox.py).

    python benchmarks/agentbench_oracle.py [--problems PATH] [--scripts DIR] [--only ID ...]

Prints one line per problem that is not "oracle passes, wrong answer fails", the totals, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.envs.agentbench import judge, load_problems, run_oracle, setup, wrong_answer  # noqa: E402
from genpi.envs.base import Unrunnable  # noqa: E402
from genpi.envs.sandbox import Sandbox, check_sandbox  # noqa: E402

DEFAULT = REPO.parent / "shared/data/agentbench-os/agentbench-v0.2/data/os_interaction/data"


def attempt(problem, oracle: bool) -> tuple[str, str, str | None]:
    """(outcome, reason, answer) in a fresh sandbox; outcome: pass | fail | unrunnable."""
    with Sandbox() as sb:
        try:
            setup(problem, sb)
        except Unrunnable as e:
            return "unrunnable", str(e), None
        answer = run_oracle(problem, sb) if oracle else wrong_answer(problem)
        verdict = judge(problem, answer, sb)
        return ("pass" if verdict.success else "fail"), verdict.reason, answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=str(DEFAULT), help="a problem file or folder (AgentBench layout)")
    ap.add_argument("--scripts", default=None, help="the script folder (default: AgentBench's layout)")
    ap.add_argument("--only", nargs="*", default=None, help="problem ids to run (default: all)")
    args = ap.parse_args()
    check_sandbox()
    problems = load_problems(args.problems, args.scripts)
    if args.only:
        problems = [p for p in problems if p.id in set(args.only)]
    t0 = time.perf_counter()
    tally = {"oracle_passed": 0, "wrong_failed": 0, "unrunnable": 0, "oracle_failed": 0, "wrong_passed": 0}
    odd = []
    for p in problems:
        t = time.perf_counter()
        outcome, reason, answer = attempt(p, oracle=True)
        if outcome == "unrunnable":
            tally["unrunnable"] += 1
            odd.append({"id": p.id, "what": "unrunnable", "reason": reason})
            print(f"{p.id:16} unrunnable: {reason}", flush=True)
            continue
        tally["oracle_passed" if outcome == "pass" else "oracle_failed"] += 1
        if outcome != "pass":
            odd.append({"id": p.id, "what": "oracle failed", "reason": reason, "answer": answer})
            print(f"{p.id:16} oracle failed: {reason}; its answer {answer!r:.80}", flush=True)
        w_outcome, w_reason, _ = attempt(p, oracle=False)
        tally["wrong_failed" if w_outcome == "fail" else "wrong_passed"] += 1
        if w_outcome != "fail":
            odd.append({"id": p.id, "what": f"wrong answer: {w_outcome}", "reason": w_reason})
            print(f"{p.id:16} wrong answer {w_outcome}: {w_reason}", flush=True)
        if time.perf_counter() - t > 5:
            print(f"{p.id:16} slow: {time.perf_counter() - t:.1f} s", flush=True)
    total = time.perf_counter() - t0
    n = len(problems)
    print(f"\n{n} problems, {total:.0f} s: oracle passed {tally['oracle_passed']}, failed "
          f"{tally['oracle_failed']}; wrong answer failed {tally['wrong_failed']}, passed "
          f"{tally['wrong_passed']}; unrunnable {tally['unrunnable']}; both right (oracle passes, wrong "
          f"fails): {sum(1 for p in problems if p.id not in {o['id'] for o in odd})}")
    print(json.dumps({"problems": n, "seconds": round(total, 1), **tally, "not_clean": odd}))


if __name__ == "__main__":
    main()
