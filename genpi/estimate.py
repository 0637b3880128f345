"""What a `genpi run` will cost before it starts: the tokens each stage generates or trains on, and the
time at the pace earlier runs measured on this machine.

Token counts are upper bounds from the settings (every reply at its token limit) and the prompt's real
length under the model's tokenizer. Time comes from RATES (GENPI_CACHE/rates.json, this module is its
only reader and writer): after a stage ran in full, `genpi run` stores the stage's estimated tokens per
second of its wall time, keyed by stage, model, device and backend, so an estimate divides the new
run's estimated tokens by the pace of the same estimate on the last comparable run. A stage never
measured here has no time, and the plan says so.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .models import cache_dir, encode_chat

RATES = "rates.json"
UNIT_TOKENS = 32  # a fact or rule of a prompt, written out by a --pg-units PG example
PG_TEMPLATE = 40  # tokens a PG example's instruction adds around the input, replies and reason


@dataclass
class Plan:
    """Estimated tokens per stage: {"synth": ..., "train genpi": ..., "eval": ...} and their details."""

    tokens: dict[str, int] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 0


def plan(scenario, tok, config, methods, *, episodes: int = 0, rounds: int = 8) -> Plan:
    """Token estimate of a run (see the module's docstring). episodes: problems played per variant, each
    for at most `rounds` agent turns."""
    s, t, e = config.synth, config.train, config.eval
    prompt = len(encode_chat(tok, [m.model_dump() for m in scenario.prompt], "complete"))
    examples = list(scenario.seed_inputs) or [x.input for x in scenario.eval.inputs] or ["a typical request"]
    inp = math.ceil(sum(len(tok(scenario.input_template.replace("{input}", x))["input_ids"]) for x in examples)
                    / len(examples))
    n, T, R, K = s.num_inputs, s.max_new_tokens, s.reason_tokens, s.max_turns
    aimed = math.ceil(n * s.coverage)
    calls = math.ceil(1.5 * (math.ceil((n - aimed) / s.inputs_per_call) + math.ceil(aimed / s.aimed_per_call)))
    per_record = 2 * T + R + (K - 1) * 2 * T
    p = Plan(prompt_tokens=prompt)
    p.tokens["synth"] = calls * s.input_tokens + n * per_record
    p.details["synth"] = (f"{calls} pseudo-input calls of {s.input_tokens} tokens; {n} records x (teacher {T} + "
                          f"student {T} + reason {R} + {K - 1} role-play rounds x {2 * T}); the {prompt}-token "
                          f"prompt read {n * K} times")
    sft = inp + (2 * K - 1) * T
    stored = bool(s.teacher_logprobs) and t.kl_teacher != "model"  # the KL term then reads, not runs, the teacher
    if s.teacher_logprobs:
        p.tokens["teacher log-probs"] = n * (prompt + sft)
        p.details["teacher log-probs"] = (f"{n} records x ({prompt}-token prompt + {sft} conversation) read once "
                                          f"for the teacher's top {s.teacher_logprobs}")
    pg = min(prompt, t.max_target_tokens) + R + inp + 2 * T + PG_TEMPLATE
    for m in methods:
        per = {"genpi": sft + t.pg_fraction * pg, "prompt-mix": sft + prompt / 2}.get(m, sft)
        if m == "genpi" and t.pg_units:  # at most: every request may name a unit (one short PG target each)
            per += inp + 2 * T + PG_TEMPLATE + UNIT_TOKENS
        kl = sft if (m == "sft-kl" or (m == "genpi" and t.kl > 0)) and not stored else 0
        g = t.grounded_repeats  # at most: every record's teacher reply may use the prompt
        p.tokens[f"train {m}"] = math.ceil(t.epochs * n * (per + (g - 1) * sft + g * kl))
        p.details[f"train {m}"] = (f"{t.epochs:g} epochs x {n} records x ({per:.0f} trained"
                                   + (f" + {kl} teacher" if kl else "") + " tokens)"
                                   + (f", at most, with records whose teacher uses the prompt x{g}" if g > 1 else ""))
    variants = 2 + len(methods)
    first = len(scenario.eval.inputs) * variants * e.max_new_tokens
    played = episodes * variants * rounds * e.env_tokens
    p.tokens["eval"] = first + played
    p.details["eval"] = (f"{len(scenario.eval.inputs)} held-out inputs x {variants} variants x {e.max_new_tokens}"
                         + (f"; {episodes} episodes x {variants} variants x {rounds} turns x {e.env_tokens}"
                            if episodes else ""))
    return p


def rate_key(stage: str, model_ref, backend: str = "local", fingerprint: str | None = None) -> str:
    """Where a stage's pace is kept: the stage ("synth", "train genpi", ...), model, device and backend.
    fingerprint: the model's as another genpi recorded it (default: today's)."""
    from .models import default_device

    return f"{stage}|{fingerprint or model_ref.fingerprint()}|{default_device()}|{backend}"


def older_keys(keys: dict[str, str], model_ref) -> dict[str, list[str]]:
    """Per stage, the keys an older genpi kept the same pace under (its model fingerprint:
    genpi.models.fingerprint_aliases), for `seconds` to read where today's key has no pace yet."""
    from .models import fingerprint_aliases

    return {stage: [key.replace(f"|{new}|", f"|{old}|", 1) for old, new in fingerprint_aliases(model_ref).items()]
            for stage, key in keys.items()}


def _path() -> Path:
    return cache_dir() / RATES


def read_rates() -> dict:
    try:
        return json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}


def record(key: str, tokens: int, seconds: float) -> None:
    """Store a stage's pace (estimated tokens / wall second), written atomically."""
    if seconds <= 1 or tokens <= 0:
        return
    rates = read_rates()
    rates[key] = {"tokens_per_s": round(tokens / seconds, 2), "seconds": round(seconds, 1), "tokens": tokens,
                  "measured": time.strftime("%Y-%m-%d %H:%M")}
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rates, indent=1, sort_keys=True))
    tmp.replace(path)


def seconds(p: Plan, keys: dict[str, str], older: dict[str, list[str]] | None = None) -> dict[str, float | None]:
    """Estimated seconds per stage at the measured paces (None where no pace is known); a stage with no pace
    under its key reads one under its `older` keys."""
    rates = read_rates()
    out: dict[str, float | None] = {}
    for stage in p.tokens:
        found = [k for k in [keys.get(stage), *(older or {}).get(stage, [])] if k in rates]
        out[stage] = p.tokens[stage] / rates[found[0]]["tokens_per_s"] if found else None
    return out


def describe(p: Plan, secs: dict[str, float | None]) -> str:
    """The plan as lines a person reads."""
    lines = [f"plan: a {p.prompt_tokens}-token prompt; at most these tokens per stage (every reply at its limit):"]
    for stage, n in p.tokens.items():
        t = secs.get(stage)
        when = f", about {_minutes(t)} here" if t is not None else ", no pace measured here yet"
        lines.append(f"  {stage}: {n:,} tokens{when} ({p.details[stage]})")
    known = [t for t in secs.values() if t is not None]
    if known:
        missing = len(secs) - len(known)
        lines.append(f"  total: about {_minutes(sum(known))}" + (f" plus {missing} stage(s) not yet measured here"
                                                                   if missing else "")
                     + " (paces from the last full run of each stage on this machine, in "
                     + str(_path()) + ")")
    else:
        lines.append("  no stage has run here yet: after one run (e.g. --preset quick) this plan gives times too")
    return "\n".join(lines)


def _minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else (f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h")
