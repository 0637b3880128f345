"""`evaluate()`: run every variant on the held-out inputs, score them, write the reports."""

from __future__ import annotations

import sys
from pathlib import Path

from ..artifacts import AdapterDir, Report, ReportDir
from ..artifacts.model_card import prompt_facts, write_model_card
from ..models import ModelRef, fingerprint_aliases, load_adapter, load_model, load_tokenizer
from ..generate import LocalBackend
from ..scenario import EvalInput, Scenario
from . import checks as scoring
from .agreement import agreement
from .config import EvalConfig
from .report import write_all
from .runner import CEILING, FLOOR, plan_variants, run_variant, variant_key
from .tasks import add_retention, load_task_problems, run_tasks, summarize_tasks, task_environment, task_key


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def overlap_warnings(sc: Scenario, adapter_dirs: list[Path]) -> list[str]:
    """One line per eval input that equals a seed input or an adapter's training input."""
    seeds = {_norm(s) for s in sc.seed_inputs}
    trained = {str(d): {_norm(x) for x in AdapterDir(d).training_inputs()} for d in adapter_dirs}
    out = []
    for e in sc.eval.inputs:
        x = _norm(e.input)
        if x in seeds:
            out.append(f"eval input {e.input!r} is also a seed input; it is not held out")
        for d, xs in trained.items():
            if x in xs:
                out.append(f"eval input {e.input!r} is in the training data of adapter '{d}'; it is not held out")
    return out


FACTS_HINT_BELOW = 0.8  # of the prompted model's facts: the target, and where the hint speaks up


def too_few_facts(found: float, ceiling: float, n: int) -> bool:
    """Whether found * n answers with the fact fall short of 0.8x the prompted model's ceiling * n, compared as
    counts (4 of 18 is 0.8x of 5 of 18, which the rates alone miss by a rounding error)."""
    return round(found * n) < FACTS_HINT_BELOW * round(ceiling * n) - 1e-9


def facts_hints(sc: Scenario, variants: dict, adapters: dict[str, Path]) -> list[str]:
    """A line for each adapter trained with a KL term to the teacher (the default) whose replies state the
    expected fact in fewer than 0.8x as many held-out answers as the prompted model's: the `facts` preset
    (the paper's loss on data that asks about every unit) is what kept them on the two fact sheets measured."""
    n = sum(1 for e in sc.eval.inputs if e.expect)
    ceiling = variants[CEILING].get("expectations")
    if not n or not ceiling:
        return []
    out = []
    for name, folder in adapters.items():
        meta = AdapterDir(folder).read_meta()
        hp = getattr(meta, "hyperparameters", None) or {}
        found = variants[name].get("expectations")
        if meta.method != "genpi" or not (hp.get("kl") or 0) > 0 or found is None:
            continue
        if too_few_facts(found, ceiling, n):
            out.append(f"{name} states the expected fact in {round(found * n)} of {n} held-out answers, the prompted "
                       f"model in {round(ceiling * n)}: for a prompt that is mostly facts, `--preset facts` kept "
                       "about as many as the prompted model on the README's two fact sheets, at a larger KL to its "
                       "replies (README: \"Facts against closeness\")")
    return out


def _variant_summary(sc: Scenario, rows: list[dict], teacher_rows: list[dict] | None, turns: int) -> dict:
    outputs = [r["output"] for r in rows]
    expects = [e.expect for e in sc.eval.inputs]
    s = scoring.summarize(sc.eval.checks, expects, outputs)
    v: dict = {"score": s["score"], "checks": s["checks"], "expectations": s["expectations"]}
    if teacher_rows is not None:
        teacher = [r["output"] for r in teacher_rows]
        v["agreement"] = agreement(outputs, teacher)
        if s["expectations"] is not None:
            v["expectations_kept"] = scoring.expectations_kept(expects, outputs, teacher)
        kls = [r["kl_to_teacher"] for r in rows if r.get("kl_to_teacher") is not None]
        v["kl_to_teacher"] = sum(kls) / len(kls) if kls else None
    if turns > 1:
        per_turn = []
        for t in range(turns):
            agent = [r["conversation"][2 * t]["content"] for r in rows if len(r["conversation"]) > 2 * t]
            if agent:
                per_turn.append({"turn": t + 1, "n": len(agent),
                                 "checks": {c.name: scoring.rate([c.passes(a) for a in agent]) for c in sc.eval.checks}})
        v["multi_turn"] = per_turn
    return v


def _adopt(store: dict, old_key: str, key: str) -> None:
    """File the rows stored under `old_key` under `key` too (a store maps (variant, key, item) to a row)."""
    for (name, k, item), row in list(store.items()):
        if k == old_key:
            store.setdefault((name, key, item), {**row, "key": key})


def evaluate(scenario: Scenario, model_ref: ModelRef, adapter_dirs: list[str | Path], out_dir: str | Path,
             config: EvalConfig, notes: list[str] | tuple[str, ...] = ()) -> dict:
    """Evaluate no_prompt, with_prompt and each adapter on `scenario`'s held-out inputs.

    With an environment (the scenario's eval.environment of kind shell), each variant also plays the
    environment's problems for whole episodes, judged by task success (report: each variant's `env`).

    Writes OUT_DIR/report.json, report.md, report.png, outputs.jsonl (every reply) and episodes.jsonl
    (every episode's transcript); both are resume stores: rerunning with the same settings reuses
    what is finished. Returns the report.
    """
    sc, ref, cfg = scenario, model_ref, config
    task_env = task_environment(sc, cfg)
    problems = load_task_problems(task_env) if task_env is not None else []
    if not problems:
        sc.require_eval_inputs("evaluate")
    adapters = [AdapterDir(a).require().path for a in adapter_dirs]
    out = ReportDir(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)

    warnings = overlap_warnings(sc, adapters)
    for n in warnings:
        print(f"genpi eval: warning: {n}", file=sys.stderr)
    notes = list(notes) + warnings
    if not sc.eval.checks and not any(e.expect for e in sc.eval.inputs):
        notes.append("the scenario has no checks and no expectations, so scores are null; "
                     "agreement and KL still compare each variant with the prompted model")

    tok = load_tokenizer(ref)
    model = load_model(ref)
    fingerprint, legacy = ref.fingerprint(), list(fingerprint_aliases(ref))
    if sc.eval.inputs:
        inputs = [e.input for e in sc.eval.inputs]
    else:  # the problems' own texts serve as the first-turn inputs
        sc = sc.model_copy(update={"eval": sc.eval.model_copy(update={"inputs": [
            EvalInput(input=p.description) for p in problems[:cfg.limit or len(problems)]]})})
        inputs = [e.input for e in sc.eval.inputs]
    store, episodes = out.read_outputs(), out.read_episodes()
    rows: dict[str, list[dict]] = {}
    task_rows: dict[str, list[dict]] = {}
    keys: dict[str, str] = {}
    for v in plan_variants(adapters):
        if v.adapter_dir is not None:
            model = load_adapter(model, v.adapter_dir)
        keys[v.name] = variant_key(v, sc, fingerprint, cfg)
        for old in legacy:  # replies stored by an older genpi under its model fingerprint are still this model's
            _adopt(store, variant_key(v, sc, old, cfg), keys[v.name])
        teacher = None if v.with_prompt else [r["output"] for r in rows[CEILING]]
        rows[v.name] = run_variant(model, tok, sc, v, inputs, cfg, keys[v.name], store, out, teacher)
        if task_env is not None:
            # episodes grow round by round: each continues from its own kept KV cache
            backend = LocalBackend(model, tok, name=v.name, batch_size=cfg.batch_size, conversation_cache=True,
                                   keep_prefixes=2 * cfg.batch_size)
            first = not task_rows
            key = task_key(v, sc, fingerprint, task_env, cfg)
            for old in legacy:
                _adopt(episodes, task_key(v, sc, old, task_env, cfg), key)
            task_rows[v.name] = run_tasks(backend, sc, v, problems, task_env, cfg, key, episodes, out,
                                          limit=cfg.limit if first else None)
            if first:  # every later variant plays exactly these problems
                ids = {r["problem"] for r in task_rows[v.name]}
                problems = [p for p in problems if p.id in ids]
        if v.adapter_dir is not None:
            model = model.unload()  # back to the plain base model for the next adapter

    # keep only this run's rows, in input order (drops replies stored under other settings)
    out.keep_outputs([r for v in rows for r in rows[v]])
    if task_env is not None:
        out.keep_episodes([r for v in task_rows for r in task_rows[v]])

    variants = {name: _variant_summary(sc, rs, None if name == CEILING else rows[CEILING], cfg.turns)
                for name, rs in rows.items()}
    floor, ceiling = variants[FLOOR]["score"], variants[CEILING]["score"]
    for name, v in variants.items():
        if name != CEILING:
            v["retention"] = scoring.retention(v["score"], ceiling)
            v["normalized"] = scoring.normalized(v["score"], floor, ceiling)
            # the same ratio per check: retention of the reply protocol is what the quality targets name
            v["check_retention"] = {c: scoring.retention(rate, variants[CEILING]["checks"].get(c))
                                    for c, rate in v["checks"].items()}
    if task_env is not None:
        envs = {name: summarize_tasks(rs) for name, rs in task_rows.items()}
        add_retention(envs, FLOOR, CEILING)
        for name, e in envs.items():
            variants[name]["env"] = e
        for pid, why in envs[CEILING]["unrunnable"].items():
            notes.append(f"problem {pid} could not run here: {why}")
        if envs[CEILING]["success"] == 0:
            notes.append("with_prompt solved no problem, so success retention is undefined and left null")
    adapter_folders = {v.name: v.adapter_dir for v in plan_variants(adapters) if v.adapter_dir}
    for hint in facts_hints(sc, variants, adapter_folders):
        print(f"genpi eval: note: {hint}", file=sys.stderr)
        notes.append(hint)
    if ceiling == 0:
        notes.append("with_prompt scored 0, so retention (score / with_prompt score) is undefined and left null")
    elif ceiling is not None and ceiling == floor:
        notes.append("with_prompt and no_prompt scored the same, so normalized is undefined and left null")

    report = {"scenario": sc.name, "model": ref.name, "n_inputs": len(inputs), "variants": variants,
              "adapters": {name: str(d) for name, d in adapter_folders.items()},
              "settings": {"decoding": "greedy", "seed": cfg.seed,
                           "max_new_tokens": cfg.max_new_tokens, "turns": cfg.turns, "model_spec": ref.spec,
                           "model_fingerprint": fingerprint, "scenario_sha256": sc.sha256(),
                           **({"environment": task_env.model_dump(mode="json"), "env_tokens": cfg.env_tokens,
                               "limit": cfg.limit} if task_env is not None else {})},
              "notes": notes}
    examples = [{"input": x, "outputs": {n: rows[n][i]["output"] for n in rows}} for i, x in enumerate(inputs)]
    write_all(out, report, examples, task_rows)
    for name, folder in report["adapters"].items():  # each adapter's model card gets these figures
        write_model_card(folder, prompt=prompt_facts(scenario, tok), report=report, report_dir=out.path,
                         variant=name)
    return Report.model_validate(report).to_json()

