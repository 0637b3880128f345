"""Task success in a real sandboxed shell: an agent that knows the answers solves every problem of the
shipped problem set, one that answers wrongly solves none; episodes resume; `genpi eval` reports `env`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genpi.envs.sandbox import SandboxError, check_sandbox

REPO = Path(__file__).resolve().parents[1]
SHELL_SCENARIO = REPO / "scenarios" / "shell-agent.yaml"

try:
    check_sandbox()
except SandboxError as e:  # not root, or no namespaces: the sandbox tests cannot run here
    pytest.skip(f"the sandbox cannot start here: {e}", allow_module_level=True)


class KnowingAgent:
    """A backend that plays the shell scenario's protocol and knows each problem's answer (or a wrong one)."""

    def __init__(self, problems, wrong: bool = False):
        self.problems, self.wrong, self.calls = problems, wrong, 0

    def _problem(self, first_user: str):
        return next(p for p in self.problems if p.description in first_user)

    def chat(self, conversations, **kw):
        from genpi.envs.agentbench import LAST_OUTPUT, oracle_actions, wrong_answer
        from genpi.envs.protocols import Action

        self.calls += 1
        out = []
        for msgs in conversations:
            p = self._problem(next(m["content"] for m in msgs if m["role"] == "user"))
            done = sum(m["role"] == "assistant" for m in msgs[1:])
            actions = [Action("answer", wrong_answer(p))] if self.wrong else oracle_actions(p)
            a = actions[min(done, len(actions) - 1)]
            if a.kind == "command":
                out.append(f"Plan: Run the command.\n```sh\n{a.content}\n```")
                continue
            text = a.content
            if text == LAST_OUTPUT:
                last = msgs[-1]["content"].removeprefix("Output:\n").strip()
                text = last.splitlines()[0] if last and "printed nothing" not in last else "done"
            out.append(f"Plan: I can answer now.\nFinal: {text}")
        return out


@pytest.fixture(scope="module")
def shell_setup():
    from genpi.envs.agentbench import load_problems
    from genpi.scenario import load_scenario

    sc = load_scenario(SHELL_SCENARIO)
    env = sc.eval.environment
    return sc, env, load_problems(env.problems, env.scripts)


def _run(sc, env, problems, backend, out, limit=None):
    from genpi.artifacts import ReportDir
    from genpi.evaluate import EvalConfig
    from genpi.evaluate.runner import Variant
    from genpi.evaluate.tasks import run_tasks

    rd = ReportDir(out)
    rd.path.mkdir(parents=True, exist_ok=True)
    cfg = EvalConfig.from_preset("smoke")
    return run_tasks(backend, sc, Variant("no_prompt"), problems, env, cfg, "k", rd.read_episodes(), rd, limit=limit)


def test_the_shipped_problem_set_is_solved_by_an_agent_that_knows_and_failed_by_one_that_does_not(shell_setup, tmp_path):
    from genpi.evaluate.tasks import summarize_tasks

    sc, env, problems = shell_setup
    assert len(problems) >= 30
    right = summarize_tasks(_run(sc, env, problems, KnowingAgent(problems), tmp_path / "right"))
    wrong = summarize_tasks(_run(sc, env, problems, KnowingAgent(problems, wrong=True), tmp_path / "wrong"))
    assert right["n_unrunnable"] == 0, right["unrunnable"]
    failed = [pid for pid, ok in right["outcomes"].items() if not ok]
    assert failed == [], failed
    assert right["valid_action_share"] == 1.0 and right["end_reasons"] == {"answered": len(problems)}
    assert wrong["solved"] == 0, [pid for pid, ok in wrong["outcomes"].items() if ok]
    assert right["setup_s_per_episode"] < 0.5 * 4  # sandbox start + setup: well under a second here


def test_episodes_resume_and_limit_counts_runnable_problems(shell_setup, tmp_path):
    sc, env, problems = shell_setup
    sample = problems[:3]
    rows = _run(sc, env, sample, KnowingAgent(sample), tmp_path, limit=2)
    assert [r["problem"] for r in rows] == [p.id for p in sample[:2]]
    assert all(r["success"] for r in rows)
    stored = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [r["problem"] for r in stored] == [p.id for p in sample[:2]]
    assert stored[0]["conversation"][0]["content"] == sample[0].description

    class Refuses:
        def chat(self, conversations, **kw):
            raise AssertionError("a stored episode was played again")

    again = _run(sc, env, sample[:2], Refuses(), tmp_path)
    assert [r["success"] for r in again] == [True, True]


def test_eval_cli_reports_task_success_per_variant(cli, tmp_path, tiny_ref):
    out = tmp_path / "R"
    res = cli("eval", str(SHELL_SCENARIO), "--model", "tiny", "--preset", "smoke", "--limit", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "task success: with_prompt 0/2" in res.stdout
    report = json.loads((out / "report.json").read_text())
    for name, v in report["variants"].items():
        e = v["env"]
        for key in ("success", "invalid_action_rate", "valid_action_share", "mean_turns", "end_reasons",
                    "repeated", "n_problems", "n_unrunnable"):
            assert key in e, (name, key)
        assert e["n_problems"] == 2
    assert "retention" in report["variants"]["no_prompt"]["env"]
    episodes = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted({(r["variant"], r["problem"]) for r in episodes}) == sorted(
        (v, p) for v in ("with_prompt", "no_prompt") for p in ("problems/0", "problems/1"))
    md = (out / "report.md").read_text()
    assert "## Task success" in md and "### Every problem" in md and "| turns | repeating | end reasons |" in md
    # --env simulated: no sandbox, no episodes, no env objects
    sim = cli("eval", str(SHELL_SCENARIO), "--model", "tiny", "--preset", "smoke", "--env", "simulated",
              "--out", str(tmp_path / "S"))
    assert sim.returncode == 0, sim.stderr[-3000:]
    assert all("env" not in v for v in json.loads((tmp_path / "S" / "report.json").read_text())["variants"].values())


def test_a_missing_problem_set_is_one_line(cli, write, tmp_path):
    from conftest import one_line_error

    s = write("s.yaml", "prompt: an agent\neval:\n  environment:\n    kind: shell\n    problems: {file: nope.json}\n")
    res = cli("eval", str(s), "--model", "tiny", "--out", str(tmp_path / "R"))
    one_line_error(res, "nope.json")
    bad = write("b.yaml", "prompt: an agent\neval:\n  environment:\n    kind: shell\n    protocol: magic\n"
                          "    problems: {file: nope.json}\n")
    one_line_error(cli("eval", str(bad), "--model", "tiny", "--out", str(tmp_path / "R")), "unknown protocol 'magic'")


SHELL_SYNTH = """\
name: shell
prompt: "You are a shell agent. Write Think, then Act: bash with a command, or Act: answer(...)."
student_template: "Problem: {input}"
seed_inputs: ["How many users are on this machine?", "Show the free disk space."]
environment: {role: a Linux shell, max_turns: 3}
eval:
  environment: {kind: shell, protocol: agentbench-os, problems: {file: p.json}}
"""


def test_synthesis_role_play_can_run_in_a_real_shell(write, tiny_ref, tmp_path):
    from genpi.artifacts import DataDir
    from genpi.errors import GenpiError
    from genpi.generate import FakeBackend
    from genpi.scenario import load_scenario
    from genpi.synth import SynthConfig, synthesize

    asked = {"env": 0, "n": 0}

    def canned(conv):
        first = conv[0]["content"]
        if "new requests that a user could send" in first:
            asked["n"] += 1
            return "\n".join(f"{i}. {x}" for i, x in enumerate(["Which kernel release is this machine running?",
                                                               "Compress /var/log/app into one archive.",
                                                               "Who owns the folder /data/shared?"], 1))
        if "explain why the second answer differs" in first:
            return "Explanation: the protocol."
        if first.startswith("You are playing"):
            asked["env"] += 1
            return "imagined output"
        if first.startswith("You are a shell agent"):
            if sum(m["role"] == "assistant" for m in conv) == 0:
                return "Think: look.\n\nAct: bash\n\n```bash\necho real-$((6*7)); hostname; ls /root | wc -l\n```"
            return "Think: done.\n\nAct: answer(42)"
        return "Sure."

    sc = load_scenario(write("s.yaml", SHELL_SYNTH))
    base = FakeBackend(canned, name="base")
    cfg = SynthConfig.from_preset("smoke", sc, num_inputs=2, max_turns=3, batch_size=2, env="shell")
    synthesize(sc, tiny_ref, None, tmp_path / "D", cfg, base_backend=base, generator_backend=base, progress=False)
    recs = DataDir(tmp_path / "D").read_records()
    assert len(recs) == 2 and asked["env"] == 0  # nobody imagined the output
    for r in recs:
        turns = r.to_json()["conversation"]
        assert [t["role"] for t in turns] == ["assistant", "user", "assistant"]
        assert turns[1]["content"] == "The output of the OS:\n\nreal-42\nsandbox\n0\n"  # a clean machine's answer
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["identity"]["settings"]["env"] == "shell"
    plain = load_scenario(write("p.yaml", "prompt: an agent\n"))
    with pytest.raises(GenpiError, match="needs the scenario's eval.environment"):
        synthesize(plain, tiny_ref, None, tmp_path / "E", SynthConfig.from_preset("smoke", plain, env="shell"),
                   base_backend=base, generator_backend=base, progress=False)
