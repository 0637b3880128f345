"""`synthesize`: scenario -> DATA_DIR/records.jsonl + meta.json, resumable (step 1 of the method).

Order of work: keep enough pseudo inputs (persisted in inputs.jsonl as they are kept), then take
them `batch_size` at a time through teacher / student outputs, reasons and role-play, appending
each finished record. A rerun reads what is there and only does what is missing.

Every generation call goes through a CachedBackend writing DATA_DIR/calls.jsonl. A rerun with other
shaping settings (--max-turns, reply lengths) but the same scenario and models keeps the old
records.jsonl aside (records.<hash of its settings>.jsonl) and starts afresh; the cache answers
every call asked before, so only what the new settings add is generated.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..artifacts import DataDir, Record, SynthMeta, input_id, text_sha256
from ..envs import SimulatedEnvironment, run_episodes
from ..envs.episodes import repeated_turns, squash
from ..envs.protocols import Protocol, build_protocol, first_action
from ..errors import GenpiError
from ..generate.cache import CachedBackend
from ..generate.local import local_backend
from ..generate.same_model import PROBES
from ..generate.specs import ApiSpec, GeneratorSpec, SameSpec, build_backend
from ..models import fingerprint_aliases
from ..scenario import Scenario, student_messages, teacher_messages
from . import stages, store
from .config import SynthConfig
from .coverage import (DemoCopies, asked_unit, citing, content_words, coverage, distinctive_words, drawn_on, on_target,
                       question_pairs, split_units, topics)
from .filters import InputFilter
from .interrupts import critical, graceful_interrupts

STAGES = ("inputs", "teacher", "student", "reason", "roleplay")


def synthesize(scenario: Scenario, model_ref, generator_spec: GeneratorSpec | None, out_dir: str | Path,
               config: SynthConfig, *, base_api: ApiSpec | None = None, base_backend=None, generator_backend=None,
               progress: bool = True) -> dict:
    """Make (or complete) the records of `scenario` in `out_dir`; return a summary dict.

    model_ref: the base model (genpi.models.ModelRef); generator_spec: what commands.common.generator_arg
    returns (a genpi.generate spec; None = SameSpec(), the base model); config: SynthConfig.from_preset(...).
    base_api: the base model served at an OpenAI-compatible endpoint (commands.common.model_api_arg): the
    teacher, student and role-play agent turns (and a SameSpec generator) go there, after a check that it
    is `model_ref`'s model (generate.same_model).
    base_backend / generator_backend: ready backends to use instead of loading the models (tests pass FakeBackends).
    """
    cfg = config.resolved(scenario)
    env = scenario.eval.environment
    if config.env == "auto" and cfg.env == "simulated" and env is not None and env.kind == "shell":
        print("genpi synth: the sandbox cannot start here, so the generator imagines the shell's output in "
              "role-play (--env simulated); run as root for real command output", file=sys.stderr)
    if cfg.cite_units and agent_protocol(scenario)[0] is not None:
        print("genpi synth: --cite-units leaves an agent scenario's replies as they are (each is one action of "
              "its protocol)", file=sys.stderr)
    run = _Run(scenario, model_ref, generator_spec or SameSpec(), Path(out_dir), cfg,
               base_backend, generator_backend, progress)
    run.base_api = base_api
    with graceful_interrupts():
        return run.go()


class _Run:
    def __init__(self, sc, ref, gen_spec, out, cfg, base, gen, progress):
        self.sc, self.ref, self.gen_spec, self.out, self.cfg = sc, ref, gen_spec, out, cfg
        self._base, self._gen = base, gen
        self._caches: list[CachedBackend] = []
        self.progress = progress
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = DataDir(self.out)
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.counts = {"candidates": 0, "rounds": 0, "rejected_outputs": 0, "sampled_retries": 0,
                       "teacher_broke_checks": 0, "teacher_resampled": 0, "teacher_missed_unit": 0,
                       "teacher_unit_resampled": 0, "agent_broke_checks": 0, "agent_resampled": 0,
                       "aimed_off_target": 0, "teacher_copied_demo": 0, "teacher_copy_resampled": 0,
                       "teacher_answered_at_once": 0, "teacher_act_resampled": 0, "agent_repeated": 0,
                       "agent_repeat_resampled": 0, "agent_repeat_dropped": 0, "teacher_left_out_asked": 0,
                       "teacher_cited": 0, "unit_questions": 0, "unit_questions_off_target": 0}
        self.shortfall: str | None = None
        self.protocol, self.cut = agent_protocol(sc)
        self.base_api: ApiSpec | None = None

    # -- setup ------------------------------------------------------------------------------
    def identity(self) -> dict:
        settings = self.cfg.shaping()
        if self.protocol is not None:  # folders made before agent replies were held to the protocol start afresh
            settings["agent_replies"] = "valid actions" + (", cut after the first" if self.cut else "")
        return {"scenario_sha256": self.sc.sha256(),
                "base_model": {"spec": self.ref.spec, "fingerprint": self.ref.fingerprint()},
                "generator": self.gen_spec.describe(self.ref.spec),
                "settings": settings}

    def base(self):
        if self._base is None:
            self._base = (served_base(self.base_api, self.ref) if self.base_api is not None else
                          local_backend(self.ref, batch_size=self.cfg.batch_size))
        return self._cached(self._base)

    def endpoints(self) -> dict:
        """Which model or endpoint produced each role's text (meta.json `endpoints`)."""
        base = ({"kind": "api", "api_base": self.base_api.api_base, "api_model": self.base_api.api_model}
                if self.base_api is not None else {"kind": "local", "model": self.ref.name})
        gen = base if isinstance(self.gen_spec, SameSpec) else self.ident["generator"]
        env = ({"kind": "sandboxed shell"} if self.cfg.env == "shell" else gen) if self.cfg.max_turns > 1 else None
        return {"inputs": gen, "teacher": base, "student": base, "reason": gen, "roleplay_agent": base,
                "roleplay_environment": env}

    def gen(self):
        if self._gen is None:
            self._gen = build_backend(self.gen_spec, self.base() if isinstance(self.gen_spec, SameSpec) else None)
        return self._cached(self._gen)

    def _cached(self, backend) -> CachedBackend:
        """One CachedBackend per backend, all on calls.jsonl (their identities tell the models apart)."""
        for c in self._caches:
            if backend is c or backend is c.inner:
                return c
        self._caches.append(CachedBackend(backend, self.data.calls_path))
        return self._caches[-1]

    # -- the run ----------------------------------------------------------------------------
    def go(self) -> dict:
        if self.cfg.env == "shell":
            shell_roleplay(self.sc).close()  # the protocol and the sandbox are checked before any work
        if self.base_api is not None:
            self.base()  # so is the served model
            if self.cfg.teacher_logprobs:  # and whether it gives the teacher's log-probabilities
                from ..generate.prompt_logprobs import probe
                from ..models import load_tokenizer

                probe(self._base, load_tokenizer(self.ref), self.cfg.teacher_logprobs)
        self.ident = self.identity()
        old = self.data.resumable_meta()
        old = self._reshaped(old)
        store.check_same_run(old, self.ident, self.out,
                             fingerprint_aliases(self.ref, getattr(self.gen_spec, "model", None)))
        self.old = old or SynthMeta()
        self.records: dict[str, Record] = {}
        for r in self.data.read_records():
            self.records.setdefault(r.id, r)
        self.pool, self.rejected = self.data.read_inputs()
        self.heldout = self.data.read_heldout()
        self.units = split_units([m.model_dump() for m in self.sc.prompt])
        self.demo_copies = DemoCopies(self.units)
        self.input_units = self.data.read_input_units()
        self.filter = InputFilter(self.sc.seed_inputs, self.sc.prompt_text, self.cfg.filter, kept=self.pool)
        self.started = time.time()
        self._write_meta("running")
        try:
            todo = self._inputs()
            self._records(todo)
            if self.cfg.teacher_logprobs and not self.shortfall:
                self._teacher_logprobs()
        except KeyboardInterrupt:
            self._write_meta("interrupted")
            print(f"\ngenpi synth: stopped; {len(self.records)} of {self.cfg.num_inputs} records are saved in "
                  f"{self.data.records_path}. Rerun the same command to resume.", file=sys.stderr)
            raise
        finally:
            for c in self._caches:
                c.close()
        status = "short" if self.shortfall else "done"
        summary = self._write_meta(status)
        if self.shortfall:
            raise GenpiError(self.shortfall)
        return summary

    def _teacher_logprobs(self) -> None:
        from .teacher_logprobs import store_teacher_logprobs

        served = self._base if self.base_api is not None else None
        self.topk = store_teacher_logprobs(self.data, self.sc, list(self.records.values()), self.ref,
                                           self.cfg.teacher_logprobs, served=served, progress=self.progress)

    def _reshaped(self, old: SynthMeta | None) -> SynthMeta | None:
        """When only the shaping settings differ from the folder's, keep its records aside and start afresh;
        return the meta to go on from (what check_same_run then compares)."""
        before = old.identity if old is not None else {}
        now = self.ident["settings"]
        if old is None or before.get("settings") == now or any(
                before.get(k) != v for k, v in self.ident.items() if k != "settings"):
            return old
        was = before.get("settings") or {}
        changed = ", ".join(f"{k} {was.get(k)} -> {v}" for k, v in now.items() if was.get(k) != v)
        kept, aside = "no records to keep", list(getattr(old, "set_aside", None) or [])
        moved = self.data.set_records_aside(text_sha256(was)[:8])
        if moved is not None:
            aside.append({"file": moved.name, "settings": was})
            kept = f"kept its records as {moved.name}"
        reuse = ("calls made before come from the call cache" if self.data.calls_path.exists() else
                 "no call cache from before, so every call is made again")
        print(f"genpi synth: {self.out} was made with other settings ({changed}): {kept} and started "
              f"the records afresh; {reuse}", file=sys.stderr)
        return SynthMeta.model_validate({**old.model_dump(), "identity": {**before, "settings": now},
                                         "set_aside": aside})

    def _todo(self) -> list[str]:
        """The inputs the next records answer: a `coverage` share aimed at units, one unit after another
        (the least covered by records first), the rest from the plain list continuation, in pool order."""
        need = self.cfg.num_inputs - len(self.records)
        out = {input_id(x) for x in self.heldout} | self.rejected
        free = [x for x in self.pool if input_id(x) not in self.records and input_id(x) not in out]
        if need <= 0:
            return []
        units_of = lambda x: self.input_units.get(input_id(x), ())  # noqa: E731
        aimed, plain = [x for x in free if units_of(x)], [x for x in free if not units_of(x)]
        have: dict[str, int] = {}
        for r in self.records.values():
            for uid in self.input_units.get(r.id, ()):
                have[uid] = have.get(uid, 0) + 1
        queues: dict[str, list[str]] = {}
        for x in aimed:
            queues.setdefault(units_of(x)[0], []).append(x)
        spread = []
        while any(queues.values()):  # round-robin over units, least covered first
            for uid in sorted(queues, key=lambda u: (have.get(u, 0), int(u[1:]))):
                if queues[uid]:
                    spread.append(queues[uid].pop(0))
                    have[uid] = have.get(uid, 0) + 1
        n_aimed = min(len(spread), max(need - len(plain), round(need * self.cfg.coverage)))
        picked = set(spread[:n_aimed] + plain[:need - n_aimed])
        return [x for x in free if x in picked]

    def _set_aside(self, writer) -> None:
        """Mark plain pool inputs (the list continuation's, not aimed at a unit: what users send) held out
        until `holdout` are, taking the latest first so that records keep the earlier ones."""
        want = self.cfg.holdout - len(self.heldout)
        taken = set(self.records) | self.rejected | {input_id(x) for x in self.heldout}
        plain = [x for x in self.pool if input_id(x) not in taken and not self.input_units.get(input_id(x))]
        # keep enough plain inputs for the records' plain share
        spare = len(plain) - (self.cfg.num_inputs - len(self.records) - round(
            (self.cfg.num_inputs - len(self.records)) * self.cfg.coverage))
        for x in list(reversed(plain))[:max(0, min(want, spare))]:
            with critical():
                writer.write({"id": input_id(x), "heldout": True})
                self.heldout.append(x)

    # -- stage 1: pseudo inputs -------------------------------------------------------------
    def _inputs(self) -> list[str]:
        with self.data.input_writer() as w:
            self._set_aside(w)
        todo = self._todo()
        need = self.cfg.num_inputs - len(self.records)
        if len(todo) >= need and len(self.heldout) >= self.cfg.holdout:
            return todo
        cfg, t0 = self.cfg, time.time()
        missing = lambda: max(0, need - len(todo)) + max(0, cfg.holdout - len(self.heldout))  # noqa: E731
        rounds = cfg.rounds_allowed(missing())
        bar = self._bar("inputs", need, initial=len(todo))
        writer = self.data.input_writer()
        gen = self.gen()
        continues = bool(getattr(gen, "continues", False))  # a registered third-party backend may not say
        pairs = question_pairs(self.units, self.sc.seed_inputs) if cfg.unit_questions else []
        try:
            for r in range(rounds):
                rng = random.Random(f"{cfg.seed}/{len(self.pool)}/{self.counts['candidates']}/{r}")
                n_calls = min(cfg.calls_per_round, max(2, missing()))
                aims = self._aims(self._aimed_calls(max(0, need - len(todo)), n_calls), rng)
                aims += [()] * max(1 if cfg.coverage < 1 else 0, round(n_calls * (1 - cfg.coverage)))
                by_id, named = {u.id: u for u in self.units}, topics(self.units)
                words = distinctive_words(self.units)
                naming = {u: words[u][0] | content_words(named.get(u, "")) for u in by_id}
                calls, asks = [], []  # asks: the unit a --unit-questions call asks about, else None
                for aim in aims:
                    shown = [(by_id[u].text, q) for u, q in pairs if aim and u != aim[0]]
                    if shown and len(aim) == 1 and by_id[aim[0]].kind != "example":
                        shown = rng.sample(shown, min(cfg.examples_shown, len(shown)))
                        calls.append(stages.unit_question_prompt(shown, by_id[aim[0]].text, continues))
                        asks.append(aim[0])
                        continue
                    calls.append(stages.inputs_prompt(
                        self.sc, stages.pick_examples(self.sc.seed_inputs, self.pool, cfg.examples_shown, rng),
                        cfg.aimed_per_call if aim else cfg.inputs_per_call, rng, continues,
                        focus=stages.aimed_focus([by_id[u].describe() for u in aim]) if aim else None,
                        stem=stages.topic_stem([named[u] for u in aim if u in named]) if cfg.aim_stems else None))
                    asks.append(None)
                replies = self._input_replies(gen, calls, asks, rng)
                aimed: dict[str, tuple[str, ...]] = {}
                candidates = []
                for call, reply, aim, ask in zip(calls, replies, aims, asks):
                    for c in stages.UNIT_QUESTION.parse(reply) if ask else stages.parse_inputs(call, reply):
                        candidates.append(c)  # aimed at those of its units it names (else a plain input)
                        if c not in aimed:
                            named_it = tuple(u for u in aim if on_target(c, naming[u]))
                            aimed[c] = named_it if cfg.aim_stems or ask else aim
                            self.counts["aimed_off_target"] += bool(aim) and not aimed[c]
                        if ask:
                            self.counts["unit_questions"] += 1
                            self.counts["unit_questions_off_target"] += not aimed[c]
                kept = self.filter.add(candidates)
                with critical():
                    for x in kept:
                        units = list(aimed.get(x, ()))
                        writer.write({"id": input_id(x), "input": x, **({"units": units} if units else {})})
                        if units:
                            self.input_units[input_id(x)] = units
                    self.pool += kept
                self._set_aside(writer)
                self.counts["candidates"] += len(candidates)
                self.counts["rounds"] += 1
                new_todo = self._todo()
                bar.update(len(new_todo) - len(todo))
                bar.set_postfix(candidates=self.counts["candidates"], dropped=sum(self.filter.drops.values()))
                todo = new_todo
                if len(todo) >= need and len(self.heldout) >= cfg.holdout:
                    break
        finally:
            writer.close()
            bar.close()
            self.seconds["inputs"] += time.time() - t0
        if len(todo) < need:
            drops = ", ".join(f"{k} {v}" for k, v in self.filter.drop_counts().items() if v)
            self.shortfall = (
                f"only {len(todo) + len(self.records)} of {cfg.num_inputs} pseudo inputs survived the filters "
                f"after {self.counts['rounds']} rounds ({self.counts['candidates']} candidates; dropped: "
                f"{drops or 'none'}): use a stronger --generator or --api-base/--api-model, add seed_inputs "
                f"to the scenario, or lower --num-inputs; rerun to keep trying (kept inputs are saved)")
        return todo

    def _input_replies(self, gen, calls: list[list[dict]], asks: list[str | None], rng: random.Random) -> list[str]:
        """The generator's replies to a round's calls: list continuations sampled, unit questions greedy."""
        out: list[str] = [""] * len(calls)
        for stage, tokens, rows in ((stages.INPUTS, self.cfg.input_tokens, [i for i, a in enumerate(asks) if not a]),
                                    (stages.UNIT_QUESTION, stages.QUESTION_TOKENS, [i for i, a in enumerate(asks) if a])):
            if rows:
                replies = gen.chat([calls[i] for i in rows], max_new_tokens=tokens, seed=rng.randrange(2**31),
                                   **stage.sampling())
                for i, reply in zip(rows, replies):
                    out[i] = reply
        return out

    def _aimed_calls(self, missing: int, n_calls: int) -> int:
        """How many of a round's calls aim at units: one for each input of the `coverage` share still
        missing (so that share can come from as many different units), at most one per unit and at
        most two rounds' worth of calls."""
        cfg = self.cfg
        if not self.units or cfg.coverage <= 0:
            return 0
        return max(1, min(round(missing * cfg.coverage), len(self.units), 2 * n_calls))

    def _aims(self, n: int, rng: random.Random) -> list[tuple[str, ...]]:
        """The units the next `n` calls aim at: the least covered unit each (demonstrations after the
        other units), until every unit has coverage_k inputs in the pool; then pairs (the least covered
        unit and another at random)."""
        counts = {u.id: 0 for u in self.units}
        kinds = {u.id: u.kind for u in self.units}  # demonstrations last: their form is learnt anyway
        for x in self.pool:
            for uid in self.input_units.get(input_id(x), ()):
                if uid in counts:
                    counts[uid] += 1
        out: list[tuple[str, ...]] = []
        for _ in range(n):
            low = min(counts, key=lambda uid: (counts[uid], kinds[uid] == "example", int(uid[1:])))
            if counts[low] < self.cfg.coverage_k or len(counts) < 2:
                out.append((low,))
            else:
                other = rng.choice([uid for uid in counts if uid != low])
                out.append(tuple(sorted((low, other), key=lambda uid: int(uid[1:]))))
            for uid in out[-1]:
                counts[uid] += self.cfg.aimed_per_call  # what the call should bring, so the next aims elsewhere
        return out

    # -- stages 2-4: outputs, reasons, role-play, one batch of records at a time ---------------
    def _records(self, todo: list[str]) -> None:
        if not todo:
            return
        bars = {s: self._bar(s, len(todo)) for s in STAGES[1:]}
        writer = self.data.record_writer()
        try:
            queue = list(todo)
            while queue:
                chunk, queue = queue[:self.cfg.batch_size], queue[self.cfg.batch_size:]
                for rec, x in zip(self._chunk(chunk, bars), chunk):
                    with critical():
                        if rec is None:
                            self.rejected.add(input_id(x))
                            self.counts["rejected_outputs"] += 1
                            with self.data.input_writer() as w:
                                w.write({"id": input_id(x), "rejected": "an empty reply after retries"})
                        else:
                            writer.write(rec.to_json())
                            self.records[rec.id] = rec
                if not queue and len(self.records) < self.cfg.num_inputs and not self.shortfall:
                    if self.counts["rejected_outputs"] > max(8, self.cfg.num_inputs):
                        self.shortfall = (f"the models gave empty replies for {self.counts['rejected_outputs']} "
                                          "inputs even after sampled retries: check --model and --generator")
                        break
                    queue = self._inputs()  # some inputs were rejected: top the pool up
                    for b in bars.values():
                        b.total += len(queue)
                        b.refresh()
        finally:
            writer.close()
            for b in bars.values():
                b.close()

    def _chunk(self, xs: list[str], bars) -> list[Record | None]:
        cfg, sc = self.cfg, self.sc
        teacher = self._timed("teacher", bars, lambda: self._obeying(
            [teacher_messages(sc, x) for x in xs], [self.input_units.get(input_id(x), ()) for x in xs]))
        cited: list[tuple[str, ...]] = [()] * len(xs)
        if cfg.cite_units and self.protocol is None:
            teacher, cited = self._cite(xs, teacher)
        student = self._timed("student", bars, lambda: self._nonempty(
            self.base(), [student_messages(sc, x) for x in xs]))
        ok = [i for i in range(len(xs)) if teacher[i] and student[i]]
        reasons = [""] * len(xs)
        if ok:
            got = self._timed("reason", bars, lambda: self._nonempty(
                self.gen(), [stages.reason_prompt(sc, xs[i], student[i], teacher[i], cfg.reason_sentences)
                             for i in ok], stage=stages.REASON, max_new_tokens=cfg.reason_tokens), n=len(ok))
            for i, r in zip(ok, got):
                reasons[i] = r
        ok = [i for i in ok if reasons[i]]
        convs = self._timed("roleplay", bars, lambda: self._roleplay([xs[i] for i in ok], [teacher[i] for i in ok]),
                            n=len(ok))
        out: list[Record | None] = [None] * len(xs)
        for i, conv in zip(ok, convs):
            out[i] = Record(id=input_id(xs[i]), input=xs[i], teacher_output=teacher[i],
                            student_output=student[i], reason=reasons[i], conversation=conv, cited=cited[i])
        return out

    def _cite(self, xs: list[str], replies: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
        """With cfg.cite_units: each reply that leaves out the unit its request asks about (coverage.asked_unit)
        gets that unit's text, at the first place (coverage.citing) where the scenario's checks still pass."""
        words = distinctive_words(self.units)
        out, cited = list(replies), [()] * len(xs)
        for i, (x, r) in enumerate(zip(xs, replies)):
            unit = asked_unit(x, self.units, tuple(self.input_units.get(input_id(x), ())), words) if r else None
            if unit is None or unit.id in drawn_on(r, self.units, distinctive=words):
                continue
            self.counts["teacher_left_out_asked"] += 1
            text = " ".join(unit.text.split())
            new = next((c for c in citing(r, text) if all(k.passes(c) for k in self.sc.eval.checks)), None)
            if new is not None:
                out[i], cited[i] = new, (text,)
                self.counts["teacher_cited"] += 1
        return out, cited

    def _roleplay(self, xs: list[str], firsts: list[str]) -> list[list[dict]]:
        """Agent (base model with the prompt) and environment (the generator, simulated) take turns."""
        sc, cfg = self.sc, self.cfg

        def agent(idx: list[int], convs: list[list[dict]]) -> list[str]:
            msgs = [teacher_messages(sc, xs[i], c) for i, c in zip(idx, convs)]
            if self.protocol is None:
                return self._nonempty(self.base(), msgs)
            return self._obeying(msgs, counts="agent")  # later turns hold a valid action too (checks: first replies)

        if cfg.env == "shell":  # real command output: a fresh sandbox per pseudo input
            env = shell_roleplay(sc)
            try:
                return run_episodes(xs, firsts, agent, env, cfg.max_turns)
            finally:
                env.close()
        env = SimulatedEnvironment(sc, self.gen(), cfg.max_new_tokens, seed=cfg.seed)
        return run_episodes(xs, firsts, agent, env, cfg.max_turns)

    def _obeying(self, convs: list[list[dict]], aims: list[tuple[str, ...]] | None = None,
                 counts: str = "teacher") -> list[str]:
        """Teacher replies, greedy; one that breaks a scenario check (or, in an agent scenario, holds no valid
        action of its protocol) is sampled again (up to cfg.teacher_samples times) and the first sample
        passing them all replaces it. A reply to an input aimed at units of the prompt that draws on none of
        them is sampled again too, and the first sample that passes and draws on one of those units replaces
        it (else it stays); with cfg.aim_stems it is sampled cfg.teacher_samples times and the sample sharing
        most of the units' words replaces it. With cfg.avoid_demo_copies a first reply that repeats a
        demonstration's wording (DemoCopies) is sampled again too, for the first sample that does not; with
        cfg.act_first a first reply of an agent scenario that answers or finishes without acting, for the first
        sample whose action is a command. A role-play turn that repeats the agent's previous reply word for
        word is sampled again, with cfg.avoid_repeats, for one that does not; if none does it becomes empty,
        which ends the conversation before it. An agent scenario's replies end at their first action, as in
        evaluation.
        counts: "teacher" (first replies) or "agent" (role-play turns: held to the protocol only, as the
        scenario's checks are written for first replies), the meta.json counters to add to."""
        cfg = self.cfg
        checks = self.sc.eval.checks if counts == "teacher" else []
        aims = aims or [()] * len(convs)
        words = distinctive_words(self.units) if any(aims) else {}

        def passes(r: str) -> bool:
            return all(c.passes(r) for c in checks) and (
                self.protocol is None or self.protocol.parse(r).kind != "invalid")

        def draws(r: str, i: int) -> bool:
            return not aims[i] or bool(set(drawn_on(r, self.units, distinctive=words)) & set(aims[i]))

        def overlap(r: str, i: int) -> int:
            said = content_words(r)
            return sum(len(words[u][0] & said) for u in aims[i])

        def cut(r: str) -> str:
            return first_action(self.protocol, r) if self.cut and r else r

        def copies(r: str, i: int) -> bool:
            return avoid and self.demo_copies(r, convs[i][-1]["content"])

        def acts(r: str) -> bool:  # with cfg.act_first: a first reply whose action is a command
            return not act or self.protocol.parse(r).kind == "command"

        def repeats(r: str, i: int) -> bool:  # a role-play turn saying again what the agent said last
            return previous[i] is not None and squash(r) == previous[i]

        avoid = cfg.avoid_demo_copies and counts == "teacher"
        act = cfg.act_first and counts == "teacher" and self.protocol is not None
        previous = [None] * len(convs)
        if counts == "agent" and cfg.avoid_repeats:
            for i, c in enumerate(convs):
                said = [m["content"] for m in c if m["role"] == "assistant"]
                previous[i] = squash(said[-1]) if said else None
        order = ("checks", "repeat", "act", "copy", "unit")  # what a reply is sampled again for, first things first

        def fault(r: str, i: int) -> str | None:
            """The first of `order` that reply r to input i fails, or None."""
            if not passes(r):
                return "checks"
            if repeats(r, i):
                return "repeat"
            if not acts(r):
                return "act"
            if copies(r, i):
                return "copy"
            return None if draws(r, i) else "unit"

        out = [cut(r) for r in self._nonempty(self.base(), convs)]
        fix: dict[str, set[int]] = {f: set() for f in order}
        for i, r in enumerate(out):
            if r and (f := fault(r, i)):
                fix[f].add(i)
        if avoid:
            self.counts["teacher_copied_demo"] += len(fix["copy"])
        if act:
            self.counts["teacher_answered_at_once"] += len(fix["act"])
        best: dict[int, tuple[int, str]] = {}  # aimed inputs: the best sample drawing on their units so far
        self.counts[f"{counts}_broke_checks"] += len(fix["checks"])
        if counts == "agent":
            self.counts["agent_repeated"] += len(fix["repeat"])
        if counts == "teacher":
            self.counts["teacher_missed_unit"] += len(fix["unit"])
        replaced = {"checks": f"{counts}_resampled", "repeat": "agent_repeat_resampled", "act": "teacher_act_resampled",
                    "copy": "teacher_copy_resampled"}
        for attempt in range(cfg.teacher_samples):
            todo = sorted(set().union(*fix.values()))
            if not todo:
                break
            again = self.base().chat([convs[i] for i in todo], max_new_tokens=cfg.max_new_tokens, temperature=0.7,
                                     top_p=0.9, seed=cfg.seed + 101 + attempt)
            for i, r in zip(todo, again):
                r = cut(stages.parse_output(r))
                now = next(f for f in order if i in fix[f])
                f = fault(r, i) if r else "checks"
                if f is not None and order.index(f) <= order.index(now):
                    continue  # no better than the reply it would replace
                if now != "unit":  # the first sample that mends it replaces the reply, which may still need the next
                    out[i] = r
                    fix[now].discard(i)
                    self.counts[replaced[now]] += 1
                    if f is not None:
                        fix[f].add(i)
                elif overlap(r, i) > best.get(i, (0, ""))[0]:
                    best[i] = (overlap(r, i), r)
                    if not cfg.aim_stems:  # the first sample that draws on the unit
                        fix["unit"].discard(i)
        for i, (_, r) in best.items():
            out[i] = r
        for i in fix["repeat"]:  # no sample said anything new: the conversation ends before this turn
            out[i] = ""
        self.counts["agent_repeat_dropped"] += len(fix["repeat"])
        self.counts["teacher_unit_resampled"] += len(best)
        return out

    def _nonempty(self, backend, convs, stage: stages.Stage | None = None, max_new_tokens: int | None = None):
        """Replies (parsed); an empty one is retried sampled, up to cfg.empty_retries times, else left empty."""
        cfg = self.cfg
        parse = stage.parse if stage else stages.parse_output
        sampling = stage.sampling() if stage else {"temperature": 0.0, "top_p": 1.0}
        n = max_new_tokens or cfg.max_new_tokens
        out = [parse(r) for r in backend.chat(convs, max_new_tokens=n, seed=cfg.seed, **sampling)]
        for attempt in range(cfg.empty_retries):
            empty = [i for i, r in enumerate(out) if not r]
            if not empty:
                break
            self.counts["sampled_retries"] += len(empty)
            again = backend.chat([convs[i] for i in empty], max_new_tokens=n, temperature=0.7, top_p=0.9,
                                 seed=cfg.seed + 1 + attempt)
            for i, r in zip(empty, again):
                out[i] = parse(r)
        return out

    def _timed(self, stage: str, bars, fn, n: int | None = None):
        t0 = time.time()
        result = fn()
        self.seconds[stage] += time.time() - t0
        bars[stage].update(len(result) if n is None else n)
        return result

    def _bar(self, stage: str, total: int, initial: int = 0):
        return tqdm(total=total, initial=initial, desc=f"{stage:>8}", unit="rec" if stage != "inputs" else "input",
                    position=STAGES.index(stage), leave=True, file=sys.stderr, disable=not self.progress,
                    dynamic_ncols=True, mininterval=0.5)

    # -- meta / summary -----------------------------------------------------------------------
    def _write_meta(self, status: str) -> dict:
        old = self.old
        old_drops = old.filter_drops
        drops = {k: v + int(old_drops.get(k, 0)) for k, v in self.filter.drop_counts().items()}
        old_counts = old.counts
        counts = {"records": len(self.records), "requested": self.cfg.num_inputs, "input_pool": len(self.pool),
                  "rejected_inputs": len(self.rejected), "heldout": len(self.heldout),
                  "repeated_turns_kept": sum(repeated_turns([t.model_dump() for t in r.conversation])
                                             for r in self.records.values()),
                  **{k: v + int(old_counts.get(k, 0)) for k, v in self.counts.items()}}
        checks = {c.name: sum(c.passes(r.teacher_output) for r in self.records.values())
                  for c in self.sc.eval.checks}
        if self.protocol is not None:
            checks["valid action"] = sum(self.protocol.parse(r.teacher_output).kind != "invalid"
                                         for r in self.records.values())
        old_secs = old.stage_seconds_total
        meta = {
            "genpi_version": __version__, "status": status, "scenario": self.sc.name,
            "identity": self.ident,
            "models": {"base": self.ref.name, "generator": self.ident["generator"]},
            "sampling": {"inputs": stages.INPUTS.sampling(), "teacher": "greedy", "student": "greedy",
                         "reason": stages.REASON.sampling(), "roleplay": "greedy",
                         "empty_reply_retry": {"temperature": 0.7, "top_p": 0.9},
                         "teacher_resample": {"temperature": 0.7, "top_p": 0.9},
                         **({"unit_questions": "greedy"} if self.cfg.unit_questions else {})},
            "settings": self.cfg.to_dict(),
            "counts": counts, "filter_drops": drops, "set_aside": getattr(old, "set_aside", None) or [],
            "teacher_checks": checks,
            "coverage": self._coverage(),
            "endpoints": self.endpoints(),
            "teacher_logprobs": getattr(self, "topk", None) or old.teacher_logprobs,
            "stage_seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "stage_seconds_total": {k: round(v + float(old_secs.get(k, 0)), 2) for k, v in self.seconds.items()},
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        with critical():
            self.data.write_meta(SynthMeta.model_validate(meta))
        return {"out_dir": str(self.out), "records_file": str(self.data.records_path), "status": status, "records": len(self.records),
                "requested": self.cfg.num_inputs, "counts": counts, "filter_drops": drops,
                "env": self.cfg.env, "teacher_checks": checks, "teacher_logprobs": meta["teacher_logprobs"], "coverage": meta["coverage"], "stage_seconds": meta["stage_seconds"],
                "wall_seconds": round(time.time() - self.started, 2), "shortfall": self.shortfall}


    def _coverage(self) -> dict:
        """The prompt's units in the records: inputs aimed at each, teacher replies drawing on each."""
        words = distinctive_words(self.units)
        aimed: dict[str, int] = {}
        for rid in self.records:
            for uid in self.input_units.get(rid, ()):
                aimed[uid] = aimed.get(uid, 0) + 1
        used = {rid: drawn_on(r.teacher_output, self.units, distinctive=words) for rid, r in self.records.items()}
        copied = sum(self.demo_copies(r.teacher_output, r.input) for r in self.records.values())
        return coverage(self.units, aimed, used, k=self.cfg.coverage_k, demo_copies=copied)


def served_base(spec: ApiSpec, ref):
    """The base model's endpoint as a backend, once the local model has shown it is the same model.
    Prompts go to its text-completion route rendered by the local tokenizer's chat template, so the
    server sees what the local model and training see (a server's own template can differ)."""
    from ..generate.openai_api import OpenAIBackend
    from ..generate.same_model import check_same_model
    from ..models import render_chat

    from ..models import load_tokenizer

    tok = load_tokenizer(ref)
    served = OpenAIBackend(spec, render=lambda conv, mode: render_chat(tok, conv, mode))
    served.check()  # an unreachable endpoint fails here, before the local model loads
    local = local_backend(ref, batch_size=len(PROBES))
    check_same_model(local, served, ref.name, served.name, spec.flags[0])
    return served  # the local model is freed here


def agent_protocol(sc: Scenario) -> tuple[Protocol | None, bool]:
    """An agent scenario's action protocol (its eval.environment's), which every teacher and role-play reply
    must hold a valid action of, and whether replies end at their first action; (None, False) otherwise."""
    env = sc.eval.environment
    if env is None or env.kind != "shell":
        return None, False
    return build_protocol(env.protocol), env.stop_at_action


def shell_roleplay(sc: Scenario):
    """The real shell for role-play, with the scenario's eval.environment protocol and limits."""
    from ..envs.sandbox import check_sandbox
    from ..envs.shell import ShellRoleplay, protocol_and_limits

    env = sc.eval.environment
    if env is None or env.kind != "shell":
        raise GenpiError(f"--env shell needs the scenario's eval.environment of kind shell (its protocol tells "
                         f"commands from answers): add one to '{sc.source or sc.name}', or use --env simulated")
    check_sandbox()
    return ShellRoleplay(*protocol_and_limits(env))


def format_summary(s: dict) -> str:
    """A one-screen summary of a synthesis run."""
    c = s["counts"]
    lines = [f"synth: {s['records']} of {s['requested']} records in {s['records_file']} ({s['status']})",
             f"  pseudo inputs: {c['candidates']} candidates in {c['rounds']} rounds, pool {c['input_pool']}, "
             f"rejected after generation {c['rejected_inputs']}"]
    drops = ", ".join(f"{k} {v}" for k, v in s["filter_drops"].items() if v)
    lines.append(f"  dropped by the filters: {drops or 'none'}")
    if c.get("heldout"):
        lines.append(f"  set aside for evaluation (never trained on): {c['heldout']} pseudo inputs")
    if s.get("env"):
        lines.append("  role-play environment: " + {"shell": "a real sandboxed shell per input",
                                                     "simulated": "imagined by the generator"}.get(s["env"], s["env"]))
    cov = s.get("coverage") or {}
    if cov.get("units"):
        lines.append(f"  prompt units: {cov['units']}; with at least {cov['k']} inputs aimed at them "
                     f"{cov['units_with_k_inputs']}; drawn on by a teacher reply {cov['units_drawn_on']}")
    if c.get("unit_questions"):
        lines.append(f"  requests written for one unit (--unit-questions): {c['unit_questions']}, naming none of its "
                     f"distinctive words (kept as plain inputs): {c.get('unit_questions_off_target', 0)}")
    if cov.get("teacher_demo_copies") or c.get("teacher_copied_demo"):
        lines.append(f"  teacher replies repeating a demonstration's wording: {cov.get('teacher_demo_copies', 0)} kept"
                     + (f" (of {c['teacher_copied_demo']} greedy ones, {c['teacher_copy_resampled']} replaced by "
                        "a sample that does not)" if c.get("teacher_copied_demo") else ""))
    if c.get("teacher_answered_at_once"):
        lines.append(f"  greedy first replies that answered without acting: {c['teacher_answered_at_once']}, replaced "
                     f"by a sample that runs a command: {c.get('teacher_act_resampled', 0)}")
    if c.get("agent_repeated") or c.get("repeated_turns_kept"):
        line = ("  role-play agent turns repeating the agent's previous reply, in the records: "
                f"{c.get('repeated_turns_kept', 0)}")
        if c.get("agent_repeated"):
            line += (f" (of {c['agent_repeated']} greedy ones, {c.get('agent_repeat_resampled', 0)} replaced by a "
                     f"sample that does not, {c.get('agent_repeat_dropped', 0)} ending the conversation)")
        lines.append(line)
    if s["teacher_checks"]:
        lines.append("  teacher outputs passing the scenario's checks: " + ", ".join(
            f"{k} {v}/{s['records']}" for k, v in s["teacher_checks"].items()))
        lines.append(f"  greedy teacher replies that broke a check: {c.get('teacher_broke_checks', 0)}, "
                     f"replaced by a sample that passes: {c.get('teacher_resampled', 0)}")
        if c.get("agent_broke_checks"):
            lines.append(f"  role-play agent turns that broke a check or held no valid action: "
                         f"{c['agent_broke_checks']}, replaced by a sample that passes: {c.get('agent_resampled', 0)}")
        if c.get("teacher_missed_unit"):
            lines.append(f"  teacher replies to aimed inputs that drew on none of their units: "
                         f"{c['teacher_missed_unit']}, replaced by a sample that does: "
                         f"{c.get('teacher_unit_resampled', 0)}")
    if c.get("teacher_left_out_asked"):
        lines.append(f"  first replies leaving out the unit their request asks about: {c['teacher_left_out_asked']}, "
                     f"given its text (--cite-units): {c.get('teacher_cited', 0)}")
    top = s.get("teacher_logprobs") or {}
    if top.get("records"):
        lines.append(f"  teacher top-{top['k']} log-probabilities stored for {top['records']} records "
                     f"({', '.join(top['sources'])}): {top['matched']} of {top['tokens']} agent-turn tokens "
                     f"({top['matched_share']:.0%}) in {top['seconds']:.1f} s")
    lines.append("  seconds per stage (this run): " + ", ".join(f"{k} {v:.1f}" for k, v in s["stage_seconds"].items())
                 + f"; wall {s['wall_seconds']:.1f}")
    return "\n".join(lines)
