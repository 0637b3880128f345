"""The episode loop over environment objects and the task-success summary, without a sandbox or a model."""

from __future__ import annotations

from genpi.envs.base import END_ANSWERED, END_INVALID, END_ROUND_LIMIT, Judgement, Step, Unrunnable
from genpi.envs.episodes import play_episodes, repeated_turns
from genpi.evaluate.tasks import add_retention, summarize_tasks, wilson


class Problem:
    def __init__(self, id, answer, broken=False):
        self.id, self.answer, self.broken = id, answer, broken


class CountingEnv:
    """Commands are 'run X' (observation 'ran X'), 'answer X' ends the episode; the answer is judged."""

    live = 0

    def reset(self, problem):
        if problem.broken:
            raise Unrunnable("setup needs the network")
        CountingEnv.live += 1
        self.problem, self.given = problem, None
        return f"solve {problem.id}"

    def step(self, reply):
        if reply.startswith("run "):
            return Step(f"ran {reply[4:]}")
        if reply.startswith("answer "):
            self.given = reply[7:]
            return Step(None, END_ANSWERED)
        return Step(None, END_INVALID, valid_action=False)

    def judge(self):
        ok = self.given == self.problem.answer
        return Judgement(ok, "right" if ok else f"expected {self.problem.answer}")

    def close(self):
        if getattr(self, "problem", None) is not None:
            CountingEnv.live -= 1
            self.problem = None


def test_episodes_end_by_answer_invalid_reply_round_limit_or_unrunnable():
    problems = [Problem("a", "1"), Problem("b", "2"), Problem("c", "3"), Problem("d", "4", broken=True),
                Problem("e", "5")]
    calls = []

    def agent(openings, turns):
        calls.append(len(openings))
        out = []
        for o, t in zip(openings, turns):
            pid, n = o.split()[-1], len(t) // 2
            out.append({"a": ["run ls", "answer 1"], "b": ["answer 7"], "c": ["hello"],
                        "e": ["run x", "run y", "run z"]}[pid][min(n, 2 if pid == "e" else 1)])
        return out

    seen = []
    eps = play_episodes(problems, CountingEnv, agent, round_limit=3, on_episode=lambda e: seen.append(e.problem_id))
    by = {e.problem_id: e for e in eps}
    assert [e.problem_id for e in eps] == seen == ["d", "b", "c", "a", "e"]  # in the order they finished
    assert by["a"].success and by["a"].end_reason == END_ANSWERED and by["a"].turns == 2
    assert [t["role"] for t in by["a"].conversation] == ["user", "assistant", "user", "assistant"]
    assert by["a"].conversation[2]["content"] == "ran ls"
    assert not by["b"].success and by["b"].reason == "expected 2"
    assert by["c"].end_reason == END_INVALID and by["c"].valid_turns == 0 and by["c"].success is False
    assert by["d"].unrunnable and by["d"].success is None and "network" in by["d"].reason and by["d"].turns == 0
    assert by["e"].end_reason == END_ROUND_LIMIT and by["e"].turns == 3 and by["e"].success is False
    assert calls == [4, 2, 1]  # one batched call per round, only for episodes still going
    assert CountingEnv.live == 0  # every environment closed


def test_a_freed_slot_goes_to_the_next_problem():
    problems = [Problem(str(i), str(i)) for i in range(5)]
    sizes = []

    def agent(openings, turns):  # problem i answers right after i turns of 'run'
        sizes.append(len(openings))
        return [f"run {len(t)}" if len(t) // 2 < int(o.split()[-1]) else f"answer {o.split()[-1]}"
                for o, t in zip(openings, turns)]

    eps = play_episodes(iter(problems), CountingEnv, agent, round_limit=10, width=2)
    assert all(e.success for e in eps) and sorted(e.turns for e in eps) == [1, 2, 3, 4, 5]
    assert max(sizes) == 2 and sum(sizes) == 15 and len(sizes) < 15  # two at a time, refilled as they end
    assert CountingEnv.live == 0


def test_environments_are_closed_when_the_agent_fails():
    CountingEnv.live = 0

    def agent(openings, turns):
        raise RuntimeError("the model crashed")

    try:
        play_episodes([Problem("a", "1"), Problem("b", "2")], CountingEnv, agent, round_limit=2)
    except RuntimeError:
        pass
    assert CountingEnv.live == 0


def _row(pid, success, end, turns, valid, unrunnable=False, replies=("run ls", "answer 1")):
    conv = [{"role": "user", "content": f"solve {pid}"}]
    for r in replies:
        conv += [{"role": "assistant", "content": r}, {"role": "user", "content": "ran ls"}]
    return {"problem": pid, "success": success, "end_reason": end, "turns": turns, "valid_turns": valid,
            "unrunnable": unrunnable, "reason": "no network" if unrunnable else "", "setup_s": 0.1, "env_s": 0.5,
            "conversation": conv[:-1]}


def test_summary_counts_only_problems_that_ran():
    rows = [_row("1", True, "answered", 3, 3), _row("2", False, "round_limit", 8, 7, replies=["run x", "run  x"]),
            _row("3", False, "invalid_action", 1, 0), _row("4", None, None, 0, 0, unrunnable=True)]
    e = summarize_tasks(rows)
    assert e["success"] == 1 / 3 and e["solved"] == 1
    assert e["n_problems"] == 4 and e["n_unrunnable"] == 1 and e["unrunnable"] == {"4": "no network"}
    assert e["valid_action_share"] == 10 / 12 and e["mean_turns"] == 4
    assert e["invalid_action_rate"] == 1 / 3
    assert e["end_reasons"] == {"answered": 1, "round_limit": 1, "invalid_action": 1}
    assert e["repeated"] == 1  # the round-limit episode said "run x" twice
    assert e["outcomes"] == {"1": True, "2": False, "3": False, "4": None}
    lo, hi = e["success_ci95"]
    assert lo < 1 / 3 < hi


def test_wilson_interval_and_retention():
    assert wilson(0, 0) is None
    lo, hi = wilson(5, 10)
    assert abs(lo - 0.2366) < 1e-3 and abs(hi - 0.7634) < 1e-3
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    envs = {"with_prompt": {"success": 0.5}, "no_prompt": {"success": 0.1}, "genpi": {"success": 0.3}}
    add_retention(envs, "no_prompt", "with_prompt")
    assert abs(envs["genpi"]["retention"] - 0.6) < 1e-9 and abs(envs["genpi"]["normalized"] - 0.5) < 1e-9
    envs = {"with_prompt": {"success": 0.0}, "no_prompt": {"success": 0.0}, "genpi": {"success": 0.1}}
    add_retention(envs, "no_prompt", "with_prompt")
    assert envs["genpi"]["retention"] is None and envs["genpi"]["normalized"] is None


def test_repeated_turns_count_agent_turns_equal_to_the_one_before_up_to_whitespace():
    a, u = "assistant", "user"
    conv = [{"role": a, "content": "ls  /tmp"}, {"role": u, "content": "x"}, {"role": a, "content": "ls /tmp\n"},
            {"role": u, "content": "x"}, {"role": a, "content": "ls /var"}, {"role": u, "content": "ls /var"},
            {"role": a, "content": "ls /tmp"}]
    assert repeated_turns(conv) == 1  # the second turn; the user's words and a turn two back do not count
    assert repeated_turns(conv[:1]) == 0 and repeated_turns([]) == 0
