"""Write a scenario file for a prompt, with comments, so checks and held-out inputs can be added.

    genpi init prompt.txt                  # writes prompt.yaml beside it
    genpi init prompt.txt --out my.yaml

The scenario points at the prompt file (never copies it), so the prompt stays where it is. Without
edits it runs as it is (`genpi run prompt.yaml`): evaluation then uses synthetic held-out inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import common

HELP = "write a commented scenario YAML for a prompt file (add seeds, checks and held-out inputs to it)"

TEMPLATE = """\
# genpi scenario for {prompt_name}. Edit, then: genpi run {out_name} --out runs/{name}
name: {name}
# the prompt to internalize: this file's path, relative to this scenario (or the text itself, or a
# list of {{role, content}} messages: a system prompt plus demonstration turns)
prompt: {{file: {prompt_rel}}}

# a few real requests users send: synthesis continues this list (it keeps a small model on topic)
seed_inputs: []
#  - How do I reset my password?

eval:
  # regexes every reply should match; each is a column of the report and a teacher-reply filter
  checks: []
  #  - {{name: greeting, regex: '^(Hi|Hello)'}}
  # held-out requests, never used for training; `expect` names what a correct reply contains.
  # Left empty, `genpi run` sets synthetic pseudo inputs aside for evaluation instead.
  inputs: []
  #  - How long is the warranty?
  #  - {{input: "Can I return a used helmet?", expect: {{contains_any: ["30 days", "thirty days"]}}}}

# for an agent whose replies act on an environment: who answers in role-play, and when it ends
# environment: {{role: a Linux shell, end_when: the agent gives its final answer, max_turns: 3}}
"""


def add_arguments(p):
    p.add_argument("prompt", metavar="PROMPT_FILE", help="a text file holding the prompt")
    p.add_argument("--out", default=None, metavar="FILE.yaml", help="where to write the scenario "
                   "(default: the prompt file's name with .yaml, beside it)")
    p.add_argument("--force", action="store_true", help="overwrite an existing scenario file")


def main(args) -> int:
    from ..scenario import load_scenario

    prompt = Path(args.prompt).expanduser()
    sc = load_scenario(prompt)  # one-line errors: missing, a folder, not text, empty
    if prompt.suffix.lower() in (".yaml", ".yml"):
        raise common.GenpiError(f"'{prompt}' is already a scenario: pass the prompt's text file")
    out = Path(args.out).expanduser() if args.out else prompt.with_suffix(".yaml")
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise common.GenpiError(f"--out '{out}' must end in .yaml")
    if out.exists() and not args.force:
        raise common.GenpiError(f"'{out}' exists: pass --force to overwrite it, or another --out")
    common.out_dir_arg(str(out.parent), "--out's folder")
    rel = os.path.relpath(prompt.resolve(), out.parent.resolve())
    out.write_text(TEMPLATE.format(prompt_name=prompt.name, out_name=out.name, name=sc.name, prompt_rel=rel))
    load_scenario(out)  # what was written loads
    print(f"wrote {out}: add seed inputs, checks and held-out inputs, then genpi run {out} --out runs/{sc.name}")
    return 0
