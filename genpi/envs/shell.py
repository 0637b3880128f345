"""The shell environment: one problem, one fresh sandboxed Linux system, the agent's commands run in it.

reset() starts a sandbox and runs the problem's setup (a setup that fails raises Unrunnable);
step() parses the agent's reply with the scenario's action protocol: a command runs in the sandbox's
one long-lived shell and its output comes back as the next user turn; an answer or "finish" ends the
episode; a reply that is no action ends it as invalid. judge() runs the problem's checks in the same
sandbox; close() removes the sandbox and every process in it.
"""

from __future__ import annotations

from . import agentbench
from .base import END_ANSWERED, END_FINISHED, END_INVALID, Judgement, Step
from .protocols import Protocol, build_protocol
from .sandbox import Sandbox, SandboxLimits


def protocol_and_limits(spec) -> tuple[Protocol, SandboxLimits]:
    """A scenario's eval.environment (genpi.scenario.EvalEnvironment) -> its action protocol and sandbox limits."""
    return build_protocol(spec.protocol), SandboxLimits(memory_mb=spec.memory_mb, pids=spec.pids,
                                                        command_timeout_s=spec.command_timeout_s)


class ShellEnvironment:
    def __init__(self, protocol: Protocol, limits: SandboxLimits | None = None):
        self.protocol, self.limits = protocol, limits or SandboxLimits()
        self.sandbox: Sandbox | None = None
        self.problem = None
        self.answer: str | None = None
        self.end: str | None = None

    def reset(self, problem: agentbench.Problem) -> str:
        self.close()
        self.problem, self.answer, self.end = problem, None, None
        self.sandbox = Sandbox(self.limits).start()
        try:
            agentbench.setup(problem, self.sandbox)
        except BaseException:
            self.close()
            raise
        return problem.description

    def step(self, agent_reply: str) -> Step:
        action = self.protocol.parse(agent_reply)
        if action.kind == "invalid":
            self.end = END_INVALID
            return Step(None, END_INVALID, valid_action=False)
        if action.kind == "answer":
            self.answer, self.end = action.content, END_ANSWERED
            return Step(None, END_ANSWERED)
        if action.kind == "finish":
            self.end = END_FINISHED
            return Step(None, END_FINISHED)
        result = self.sandbox.shell(action.content)
        return Step(self.protocol.observation(result.output))

    def judge(self) -> Judgement:
        """Only a concluded episode (an answer, or finish) is judged; any other end is a failure."""
        if self.end not in (END_ANSWERED, END_FINISHED):
            return Judgement(False, f"the episode ended without a conclusion ({self.end or 'still running'})")
        return agentbench.judge(self.problem, self.answer, self.sandbox)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


class ShellRoleplay:
    """Real observations for synthesis role-play: each pseudo input's commands run in its own fresh
    sandbox (created at its first command, kept for its later turns). Has the `respond` of the
    simulated environment, so the one role-play loop (episodes.run_episodes) drives either."""

    def __init__(self, protocol: Protocol, limits: SandboxLimits | None = None):
        self.protocol, self.limits = protocol, limits or SandboxLimits()
        self.sandboxes: dict[str, Sandbox] = {}

    def respond(self, inputs: list[str], conversations: list[list[dict]]) -> list[tuple[str, bool]]:
        """(observation, episode over?): a command's output; an answer, finish or no action ends it."""
        out = []
        for x, conv in zip(inputs, conversations):
            action = self.protocol.parse(conv[-1]["content"])
            if action.kind != "command":
                out.append(("", True))
                continue
            if x not in self.sandboxes:
                self.sandboxes[x] = Sandbox(self.limits).start()
            out.append((self.protocol.observation(self.sandboxes[x].shell(action.content).output), False))
        return out

    def close(self) -> None:
        for box in self.sandboxes.values():
            box.close()
        self.sandboxes.clear()
