"""Generating each variant's replies on the eval inputs, and their KL to the prompted model.

Variants: `with_prompt` (base model, teacher messages), `no_prompt` (base model, student
messages) and one per adapter (base model + LoRA, student messages). Greedy, seeded, the same
token limit for all. Every finished batch is appended to outputs.jsonl under a key that names the
model, the scenario, the adapter and the settings, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..artifacts import AdapterDir, ReportDir, text_sha256
from ..envs import SimulatedEnvironment, run_episodes
from ..generate import LocalBackend
from ..scenario import Scenario, student_messages, teacher_messages
from . import kl as klmod
from .config import EvalConfig

FLOOR, CEILING = "no_prompt", "with_prompt"


@dataclass(frozen=True)
class Variant:
    name: str
    adapter_dir: Path | None = None  # None: the base model
    with_prompt: bool = False

    def messages(self, sc: Scenario, x: str, turns: list[dict] | None = None) -> list[dict]:
        return teacher_messages(sc, x, turns) if self.with_prompt else student_messages(sc, x, turns)


def plan_variants(adapter_dirs: list[Path]) -> list[Variant]:
    """with_prompt, no_prompt, then one per adapter named by its method and its distillation terms
    (genpi+kl, genpi+on-policy; else its folder); a name already taken gives way to the adapter's folder
    name (adapters of one method trained with other settings), then to a numbered one."""
    out = [Variant(CEILING, with_prompt=True), Variant(FLOOR)]
    taken = {CEILING, FLOOR}
    for d in adapter_dirs:
        folder = Path(d).resolve().name
        base = method_label(AdapterDir(d).read_meta()) or folder or "adapter"
        if base in taken and folder and folder not in taken:
            base = folder
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        out.append(Variant(name, Path(d)))
    return out


def method_label(meta) -> str | None:
    """'genpi', 'sft', ... with '+kl' / '+on-policy' when the adapter was trained with those terms ('+kl=W'
    for a KL weight W other than 1), '+grounded' / '+units' with those options, and '+cited=C' for a cited
    weight C other than 1 (the names benchmarks/compare_methods.py gives them)."""
    if not meta.method:
        return None
    hp = getattr(meta, "hyperparameters", None) or {}
    kl = hp.get("kl") or 0
    extra = (("+kl" if kl == 1 else f"+kl={kl:g}") if kl > 0 and meta.method == "genpi" else "") + \
        ("+on-policy" if (hp.get("on_policy") or 0) > 0 else "") + \
        ("+grounded" if (hp.get("grounded_repeats") or 1) > 1 else "") + ("+units" if hp.get("pg_units") else "") + \
        (f"+cited={hp['cited_weight']:g}" if (hp.get("cited_weight") or 1) != 1 else "")
    return meta.method + extra


def variant_key(v: Variant, sc: Scenario, model_fingerprint: str, cfg: EvalConfig) -> str:
    """What a stored reply depends on; a reply stored under another key is never reused."""
    parts = {"variant": v.name, "with_prompt": v.with_prompt, "model": model_fingerprint, "scenario": sc.sha256(),
             "adapter": AdapterDir(v.adapter_dir).weights_sha256() if v.adapter_dir else None,
             "max_new_tokens": cfg.max_new_tokens, "turns": cfg.turns, "seed": cfg.seed, "kl": cfg.kl}
    return text_sha256(parts)[:16]


def _base_only(model):
    """Context in which a PEFT model acts as its base model (no-op for a plain model)."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def _n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


class _BaseOnly:
    """A backend that runs with the adapter switched off: the environment is the base model, never the adapter."""

    def __init__(self, backend: LocalBackend, model):
        self.backend, self.model = backend, model

    def chat(self, conversations, **kw):
        with _base_only(self.model):
            return self.backend.chat(conversations, **kw)


def _conversations(backend: LocalBackend, env_backend: LocalBackend, model, sc: Scenario, v: Variant,
                   xs: list[str], cfg: EvalConfig) -> list[list[dict]]:
    """Agent/environment turns for each input: [agent, env, agent, ...]; the first is the first-turn reply.

    From the second agent turn on, the base model plays the scenario's environment (genpi.envs.simulated,
    the same role-play synthesis uses), until it ends the episode.
    """
    first = backend.chat([v.messages(sc, x) for x in xs], max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    env = SimulatedEnvironment(sc, _BaseOnly(env_backend, model), cfg.max_new_tokens, seed=cfg.seed)

    def agent(idx: list[int], convs: list[list[dict]]) -> list[str]:
        return backend.chat([v.messages(sc, xs[i], c) for i, c in zip(idx, convs)],
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)

    return run_episodes(xs, first, agent, env, cfg.turns, end_on_empty=False)


def reply_kl(model, tok, sc: Scenario, v: Variant, x: str, teacher_reply: str, max_new_tokens: int) -> float | None:
    """Teacher-forced mean KL(base model with prompt || variant) on the prompted reply to `x`."""
    teacher_msgs = teacher_messages(sc, x)
    finished = _n_tokens(tok, teacher_reply) < max_new_tokens
    target = klmod.reply_ids(tok, teacher_msgs, teacher_reply, finished)
    if not target:
        return None
    with _base_only(model):
        t_logits = klmod.continuation_logits(model, klmod.prefix_ids(tok, teacher_msgs), target)
    s_logits = klmod.continuation_logits(model, klmod.prefix_ids(tok, v.messages(sc, x)), target)
    return klmod.mean_kl(t_logits, s_logits)


def run_variant(model, tok, sc: Scenario, v: Variant, inputs: list[str], cfg: EvalConfig, key: str,
                store: dict, report_dir: ReportDir, teacher_replies: list[str] | None) -> list[dict]:
    """Rows {variant, key, input, output, conversation, kl} for every input, reusing stored ones."""
    backend = LocalBackend(model, tok, name=v.name, batch_size=cfg.batch_size)
    env_backend = LocalBackend(model, tok, name="environment", batch_size=cfg.batch_size)  # own caches: base weights
    todo = [x for x in dict.fromkeys(inputs) if (v.name, key, x) not in store]
    teacher_of = dict(zip(inputs, teacher_replies or []))
    bar = tqdm(total=len(set(inputs)), initial=len(set(inputs)) - len(todo), desc=f"eval {v.name}", unit="input",
               file=sys.stderr, dynamic_ncols=True)
    with report_dir.outputs_writer() as f:
        for i in range(0, len(todo), cfg.batch_size):
            xs = todo[i:i + cfg.batch_size]
            convs = _conversations(backend, env_backend, model, sc, v, xs, cfg)
            for x, conv in zip(xs, convs):
                kl = None
                if cfg.kl and not v.with_prompt and teacher_of.get(x) is not None:
                    kl = reply_kl(model, tok, sc, v, x, teacher_of[x], cfg.max_new_tokens)
                row = {"variant": v.name, "key": key, "input": x, "output": conv[0]["content"],
                       "conversation": conv, "kl_to_teacher": kl}
                store[(v.name, key, x)] = row
                f.write(row)
            bar.update(len(xs))
    bar.close()
    return [store[(v.name, key, x)] for x in inputs]
