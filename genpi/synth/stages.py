"""The four synthesis stages as data: what each asks (an instruction template, our own words), how it
samples, and how its reply is read (a parser on plain text).

  inputs    the generator, shown the prompt as an agent's rule book and a few example requests,
            lists new requests of the same kind (sampled)
  outputs   the base model answers each input with the prompt (teacher) and without it (student),
            through scenario.teacher_messages / student_messages (greedy)
  reason    the generator, as a commentator, explains why the teacher's answer differs from the
            student's, referring to the prompt (sampled)
  roleplay  the generator plays the environment the prompt implies (genpi.envs.simulated), the
            prompted base model the agent, through the one episode loop (genpi.envs.run_episodes)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from ..scenario import RULE_BOOK_CLOSE, RULE_BOOK_OPEN, Scenario
from .text import clean_reply, parse_list



@dataclass(frozen=True)
class Stage:
    """One generation step: a template filled per row, sampling settings, and a reply parser."""

    name: str
    template: str
    parse: Callable[[str], object]
    temperature: float
    top_p: float = 1.0

    def render(self, **fields) -> str:
        return self.template.format(**fields)

    def sampling(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p}


# -- pseudo inputs ------------------------------------------------------------------------

INPUTS = Stage(
    name="inputs",
    temperature=1.0,
    top_p=0.9,
    parse=parse_list,
    template=(
        "You are helping to test an AI agent. The agent works by the rule book below.\n\n"
        f"{RULE_BOOK_OPEN}\n{{prompt}}\n{RULE_BOOK_CLOSE}\n\n"
        "{examples}"
        "Write {n} new requests that a user could send to this agent. {focus} Every request must make "
        "sense on its own and differ from the examples and from the other requests. Reply with a "
        "numbered list, one request per line, and nothing else: no answers, no comments."),
)

# Ways to vary the request from call to call, so that a small generator does not repeat itself.
FOCUS_HINTS = (
    "Make them short and simple.",
    "Make them harder: each one should need several steps.",
    "Use concrete names, numbers, files or places in them.",
    "Choose topics that the examples do not touch.",
    "Mix questions with commands.",
    "Make each one about a different topic.",
    "Make them the kind of thing a beginner would ask.",
    "Make them the kind of thing an expert would ask.",
)


def pick_examples(seeds: list[str], kept: list[str], k: int, rng: random.Random) -> list[str]:
    """Up to k example requests: real seeds first (all but one slot when there are kept inputs), so
    that a weak generator stays anchored to them, and a kept input for variety."""
    from_kept = min(len(kept), max(k - len(seeds), 1 if k > 1 else 0))
    shown = rng.sample(seeds, min(len(seeds), k - from_kept)) + rng.sample(kept, from_kept)
    rng.shuffle(shown)
    return shown


def aimed_focus(parts: list[str]) -> str:
    """The focus of a call aimed at one part of the rule book (or two): requests that need it."""
    if len(parts) == 1:
        return ("Each request must be one that this part of the rule book decides how to answer: "
                f"\"{parts[0]}\"")
    return ("Each request must need both of these parts of the rule book to be answered well: "
            + " and ".join(f"\"{p}\"" for p in parts))


def topic_stem(names: list[str]) -> str | None:
    """How an aimed request opens, naming what it is about ("What about the child seat"): the generator
    then ends the question, which keeps a small model on the unit far more often than telling it in an
    instruction which part to ask about, and the prompted model answers such a question with the unit's
    content more often than the generator's own questions."""
    if not names:
        return None
    low = [n if n[1:2].isupper() else n[:1].lower() + n[1:] for n in dict.fromkeys(names)]
    return f"What about the {' and the '.join(low)}"


def inputs_prompt(sc: Scenario, shown: list[str], n: int, rng: random.Random, continues: bool,
                  focus: str | None = None, stem: str | None = None) -> list[dict]:
    """One call's messages: the rule book, the example requests and a random focus.

    With a backend that continues a started assistant turn (`continues`), the examples open the
    reply as items 1..k of the numbered list and the generator writes the next items: a small model
    continues a list of real requests far more faithfully than it follows an instruction to write
    one (on the embedded 135M model most instruction-written requests were off-topic). Otherwise
    the examples are quoted in the instruction. `parse_inputs` reads either reply. `focus` (e.g.
    `aimed_focus(...)`) replaces the random one; `stem` (e.g. `topic_stem(...)`) opens the first
    new item of a continued list.
    """
    listed = "\n".join(f"{i}. {' '.join(x.split())}" for i, x in enumerate(shown, 1))  # one line per item
    focus = focus or rng.choice(FOCUS_HINTS)
    if continues:
        user = INPUTS.render(prompt=sc.prompt_text, examples="", n=n + len(shown), focus=focus)
        return [{"role": "user", "content": user},
                {"role": "assistant",
                 "content": (listed + "\n" if listed else "") + f"{len(shown) + 1}." + (f" {stem}" if stem else "")}]
    examples = (f"Some requests users have sent to this agent:\n{listed}\n\n" if shown else
                "No example requests are available; infer their kind from the rule book.\n\n")
    return [{"role": "user", "content": INPUTS.render(prompt=sc.prompt_text, examples=examples, n=n, focus=focus)}]


def parse_inputs(messages: list[dict], reply: str) -> list[str]:
    """The new requests in a reply to `inputs_prompt(...)` (a continued list loses its example items)."""
    if messages[-1]["role"] != "assistant":
        return INPUTS.parse(reply)
    started = messages[-1]["content"]
    shown = started.count("\n")  # items 1..k, one per line, before the open "k+1."
    joint = "" if reply[:1] in "?!.,;:" else " "  # a stemmed item's question may just end ("What about X" + "?")
    return INPUTS.parse(f"{started}{joint}{reply}")[shown:]


def _first_line(reply: str) -> list[str]:
    line = next((ln.strip() for ln in clean_reply(reply).splitlines() if ln.strip()), "")
    line = _strip_label(line, ("question:", "request:"))
    return [line.strip('"')] if line and not line.lower().startswith("fact:") else []


UNIT_QUESTION = Stage(
    name="unit_question",
    temperature=0.0,
    parse=_first_line,
    template="For each fact, write a request that a user of this agent could send and that this fact answers.",
)


QUESTION_TOKENS = 48  # one request: the continuation stops being one after its first line


def unit_question_prompt(shown: list[tuple[str, str]], fact: str, continues: bool) -> list[dict]:
    """One `--unit-questions` call: fact / request pairs (`coverage.question_pairs`, never the target's own),
    then the target fact, whose request the generator writes. A continuing backend gets the pairs as the
    started reply and ends the open "Question:" line: given a fact and shown how a request asks for one,
    the embedded 135M model mostly asks about that fact, where told in an instruction to aim at it, it
    mostly wrote about something else. Greedy: the shown pairs vary from call to call."""
    body = "".join(f"Fact: {' '.join(f.split())}\nQuestion: {q}\n\n" for f, q in shown)
    opened = f"{body}Fact: {' '.join(fact.split())}\nQuestion:"
    if continues:
        return [{"role": "user", "content": UNIT_QUESTION.template},
                {"role": "assistant", "content": opened}]
    return [{"role": "user", "content": f"{UNIT_QUESTION.template} Reply with the last question only.\n\n{opened}"}]


# -- teacher / student outputs --------------------------------------------------------------

def parse_output(reply: str) -> str:
    return clean_reply(reply)


# -- reason -----------------------------------------------------------------------------------

REASON = Stage(
    name="reason",
    temperature=0.7,
    top_p=0.9,
    parse=lambda reply: _strip_label(clean_reply(reply)),
    template=(
        "An AI model answered the same user input twice. The first time it had no instructions; the "
        "second time it followed the instructions below. In about {sentences} sentences, explain why the "
        "second answer differs from the first, pointing to the parts of the instructions that caused "
        "each change.\n\n"
        f"{RULE_BOOK_OPEN}\n{{prompt}}\n{RULE_BOOK_CLOSE}\n\n"
        "User input:\n{input}\n\n"
        "First answer (no instructions):\n{student}\n\n"
        "Second answer (with the instructions):\n{teacher}\n\n"
        "Explain the difference."),
)


def reason_prompt(sc: Scenario, x: str, student: str, teacher: str, sentences: int = 5) -> list[dict]:
    text = REASON.render(prompt=sc.prompt_text, input=x, student=student, teacher=teacher, sentences=sentences)
    return [{"role": "user", "content": text}]


def _strip_label(text: str, labels: tuple[str, ...] = ("explanation:", "reason:", "answer:", "the difference:")) -> str:
    for label in labels:
        if text.lower().startswith(label):
            return text[len(label):].strip()
    return text
