"""The Hugging Face Trainer, with our loss: a subclass that overrides only `compute_loss` and `log`.

Everything else (optimizer, cosine schedule, clipping, gradient accumulation, checkpoints, resume,
accelerate / DDP) is the stock Trainer's. Under several processes (see parallel.py) the logged loss terms and
token counts are summed over all of them, and whatever a micro-step draws (on-policy replies) is keyed by its
index in the whole run, so N processes log and train what one process with N times the accumulation does.
"""

from __future__ import annotations

import copy
import math
import sys
import time

import torch
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback

from ..kl import token_kl, topk_kl
from . import losses
from .parallel import summed

TERMS = ("sft", "pg", "units", "kl", "on_policy")  # every loss term compute_loss may log, in a fixed order


class NonFiniteLoss(RuntimeError):
    """Raised from compute_loss when a term is NaN or infinite (before any optimizer step uses it)."""

    def __init__(self, step: int, terms: dict[str, float]):
        self.step, self.terms = step, terms
        bad = ", ".join(f"{k}={v}" for k, v in terms.items() if not math.isfinite(v))
        super().__init__(f"non-finite loss at step {step} ({bad})")


class GenpiTrainer(Trainer):
    """method: genpi | sft | sft-kl | prompt-mix; lam: SFT weight of the joint loss; kl_weight: the KL term's
    weight (sft-kl's, or genpi's --kl: 0 leaves genpi's KL term out)."""

    def __init__(self, *args, method: str, lam: float, kl_weight: float, on_policy: float = 0.0,
                 on_policy_every: int = 4, on_policy_tokens: int = 64, on_policy_temperature: float = 1.0,
                 cited_weight: float = 1.0, seed: int = 0, pad_id: int = 0, eos_id: int | None = None,
                 teacher_prefix: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # the tokens every teacher twin starts with (the prompt): their KV is computed once per run and
        # reused by every teacher pass, which then runs only the rest of each sequence
        self.teacher_prefix = list(teacher_prefix or [])
        self._prefix_caches: dict[int, object] = {}
        self.method, self.lam, self.kl_weight, self.cited_weight = method, lam, kl_weight, cited_weight
        self.on_policy, self.on_policy_every, self.seed = on_policy, on_policy_every, seed
        self.on_policy_tokens, self.on_policy_temperature = on_policy_tokens, on_policy_temperature
        self._micro, self.pad_id, self.eos_id = None, pad_id, eos_id
        self.loss_is_scaled_for_ga = False  # our terms are per-micro-batch token means
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.tokens = {"trained": 0, "teacher": 0, "on_policy_sampled": 0}  # this process's, since it started

    def _next_micro_step(self) -> int:
        """The 0-based index of the micro-step about to run, in the whole run's list: process k of N runs
        k, k + N, ...; a resumed run starts where its checkpoint left off."""
        if self._micro is None:
            self._micro = self.state.global_step * self.args.gradient_accumulation_steps
        self._micro += 1
        return (self._micro - 1) * self.accelerator.num_processes + self.accelerator.process_index

    def token_totals(self) -> dict[str, int]:
        """The token counters summed over all processes (a collective)."""
        return dict(zip(self.tokens, map(int, summed(self.accelerator, list(self.tokens.values())))))

    # -- loss ------------------------------------------------------------------------------
    def _term(self, model, inputs, kind: str):
        """(mean NLL, logits at supervised targets [N, V], supervised target ids [N]) for one kind's batch.
        With a cited weight other than 1, the SFT term counts each token of cited text that many times."""
        labels = inputs[f"{kind}_labels"]
        pos = losses.predict_positions(labels)
        out = model(input_ids=inputs[f"{kind}_input_ids"], attention_mask=inputs[f"{kind}_attention_mask"],
                    logits_to_keep=pos, use_cache=False)
        targets = losses.targets_at(labels, pos)
        uncited = inputs.get(f"{kind}_kl_keep")  # False at the tokens of text synthesis cited into a reply
        weights = None
        if kind == "sft" and self.cited_weight != 1.0 and uncited is not None:
            weights = torch.where(uncited, 1.0, self.cited_weight)
        total, n = losses.token_nll(out.logits, targets, weights)
        self.tokens["trained"] += int(inputs[f"{kind}_attention_mask"].sum())
        return losses.token_mean(total, n), out.logits, targets

    def _teacher_rows(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompted base model (adapter off, no grad) at the teacher twins' supervised targets."""
        peft_model = self.accelerator.unwrap_model(model)
        labels = inputs["teacher_labels"]
        pos = losses.predict_positions(labels)
        was_training = peft_model.training
        peft_model.eval()
        try:
            with torch.no_grad(), peft_model.disable_adapter():
                logits = self._teacher_logits(peft_model, inputs["teacher_input_ids"],
                                              inputs["teacher_attention_mask"], pos)
        finally:
            peft_model.train(was_training)
        targets = losses.targets_at(labels, pos)
        return losses.supervised_rows(logits, targets), targets[targets != losses.IGNORE]

    def _teacher_logits(self, peft_model, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Logits of the prompted base model at `pos` (call with the adapter off, under no_grad).

        When every row starts with the run's teacher prefix and nothing before its end is predicted,
        only the rest of each row is run, on top of the prefix's KV (computed once, copied per batch
        size, cut back to the prefix after each use)."""
        from ..models import cache_kwargs, output_cache

        n = len(self.teacher_prefix)
        prefix = torch.tensor(self.teacher_prefix, device=ids.device)
        if not n or ids.shape[1] <= n or int(pos.min()) < n or not bool((ids[:, :n] == prefix).all()):
            self.tokens["teacher"] += int(mask.sum())
            return peft_model(input_ids=ids, attention_mask=mask, logits_to_keep=pos, use_cache=False).logits
        rows = ids.shape[0]
        cache = self._prefix_caches.get(rows)
        if cache is None:
            if 1 not in self._prefix_caches:
                one = peft_model(input_ids=prefix[None], use_cache=True)
                self._prefix_caches[1] = output_cache(one)
                self.tokens["teacher"] += n
            if rows > 1:
                cache = copy.deepcopy(self._prefix_caches[1])
                cache.batch_repeat_interleave(rows)
                self._prefix_caches[rows] = cache
            cache = self._prefix_caches[rows]
        try:
            out = peft_model(input_ids=ids[:, n:], attention_mask=mask, logits_to_keep=pos - n, use_cache=True,
                             **cache_kwargs(peft_model, cache))
        finally:
            extra = cache.get_seq_length() - n
            if extra > 0:
                cache.crop(-extra)  # back to the prefix (a negative count: the same in old and new transformers)
        self.tokens["teacher"] += int(mask[:, n:].sum())
        return out.logits

    def _on_policy_kl(self, model, inputs, micro: int) -> torch.Tensor | None:
        """Mean per-token reverse KL(adapter || prompted teacher) on replies the adapter samples itself."""
        from .on_policy import contexts, sample_replies, scored_batch

        peft_model = self.accelerator.unwrap_model(model)
        pad, eos = self.pad_id, self.eos_id
        s_ctx = contexts(inputs["sft_input_ids"], inputs["sft_labels"], inputs["sft_attention_mask"])
        t_ctx = contexts(inputs["teacher_input_ids"], inputs["teacher_labels"], inputs["teacher_attention_mask"])
        was_training = peft_model.training
        peft_model.eval()
        try:
            replies = sample_replies(peft_model, s_ctx, pad, eos, self.on_policy_tokens, self.on_policy_temperature,
                                     seed=self.seed * 1_000_003 + micro + 1)
            rows = [i for i, r in enumerate(replies) if r]
            if not rows:
                return None
            student = scored_batch([s_ctx[i] for i in rows], [replies[i] for i in rows], pad)
            teacher = scored_batch([t_ctx[i] for i in rows], [replies[i] for i in rows], pad)
            with torch.no_grad(), peft_model.disable_adapter():
                t_pos = losses.predict_positions(teacher["labels"])
                t_logits = self._teacher_logits(peft_model, teacher["input_ids"].to(peft_model.device),
                                                teacher["attention_mask"].to(peft_model.device), t_pos)
        finally:
            peft_model.train(was_training)
        s_pos = losses.predict_positions(student["labels"])
        s_out = model(input_ids=student["input_ids"].to(peft_model.device),
                      attention_mask=student["attention_mask"].to(peft_model.device), logits_to_keep=s_pos,
                      use_cache=False)
        s_targets = losses.targets_at(student["labels"], s_pos).to(s_out.logits.device)
        t_targets = losses.targets_at(teacher["labels"], t_pos).to(t_logits.device)
        s_rows = losses.supervised_rows(s_out.logits, s_targets)
        t_rows = losses.supervised_rows(t_logits, t_targets)
        self.tokens["trained"] += int(student["attention_mask"].sum())
        self.tokens["on_policy_sampled"] += sum(len(r) for r in replies)
        # token_kl(p, q) = KL(p || q): the adapter's distribution first makes it the reverse KL
        return token_kl(s_rows, t_rows).mean()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms: dict[str, torch.Tensor] = {}
        micro = self._next_micro_step()
        if "sft_input_ids" in inputs:
            terms["sft"], s_logits, s_targets = self._term(model, inputs, "sft")
            wants_kl = self.method == "sft-kl" or (self.method == "genpi" and self.kl_weight > 0)
            keep = inputs.get("sft_kl_keep")  # None: every supervised token (no cited text in the batch)
            if wants_kl and "teacher_topk_ids" in inputs:  # the teacher's stored top-K: no teacher pass
                s_rows = losses.supervised_rows(s_logits, s_targets)
                top_ids, top_lp = inputs["teacher_topk_ids"], inputs["teacher_topk_logprobs"]
                if top_ids.shape[0] != s_rows.shape[0]:
                    raise RuntimeError("stored teacher rows and student targets are misaligned in a KL batch")
                terms["kl"] = losses.kept_mean(topk_kl(top_ids, top_lp, s_rows), keep)
            elif wants_kl:
                t_rows, t_ids = self._teacher_rows(model, inputs)
                s_rows = losses.supervised_rows(s_logits, s_targets)
                if not torch.equal(s_targets[s_targets != losses.IGNORE], t_ids):
                    raise RuntimeError("teacher and student targets are misaligned in an sft-kl batch")
                terms["kl"] = losses.kept_mean(token_kl(t_rows, s_rows), keep)
        if "pg_input_ids" in inputs:
            terms["pg"] = self._term(model, inputs, "pg")[0]
        if self.method == "genpi":
            loss = losses.joint_loss(terms.get("pg"), terms.get("sft"), self.lam, terms.get("kl"),
                                     self.kl_weight if "kl" in terms else 0.0)
            if "units_input_ids" in inputs:  # --pg-units: the named units, their own token mean, weighed as PG
                terms["units"] = self._term(model, inputs, "units")[0]
                loss = loss + (1.0 - self.lam) * terms["units"]
        elif self.method == "sft-kl":
            loss = losses.sft_kl_loss(terms["sft"], terms["kl"], self.kl_weight)
        else:
            loss = terms["sft"]
        if self.on_policy > 0 and "teacher_input_ids" in inputs and micro % self.on_policy_every == 0:
            opd = self._on_policy_kl(model, inputs, micro)
            if opd is not None:
                terms["on_policy"] = opd
                loss = losses.with_on_policy(loss, opd, self.on_policy)
        values = {k: float(v.detach()) for k, v in terms.items()}
        finite = all(math.isfinite(v) for v in values.values()) and bool(torch.isfinite(loss.detach()))
        # every process stops together (one that went on would wait for the others' gradients forever)
        if summed(self.accelerator, [float(not finite)])[0]:
            raise NonFiniteLoss(self.state.global_step, {**values, "loss": float(loss.detach())} if not finite
                                else {"loss in another process": float("nan")})
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1
        return (loss, None) if return_outputs else loss

    # -- logging ---------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add each loss term (its mean over the micro-steps since the last log line, in all processes) and
        the token counts (of all processes) to the log. The stock Trainer calls this on every process."""
        if "loss" in logs:
            local = [self._sums.get(k, 0.0) for k in TERMS] + [float(self._counts.get(k, 0)) for k in TERMS]
            both = summed(self.accelerator, local)
            for k, total, n in zip(TERMS, both[:len(TERMS)], both[len(TERMS):]):
                if n:
                    logs[f"loss_{k}"] = round(total / n, 4)
            self._sums, self._counts = {}, {}
            tokens = self.token_totals()
            logs["tokens"] = tokens["trained"]
            if tokens["teacher"]:
                logs["teacher_tokens"] = tokens["teacher"]
        super().log(logs, start_time)


class LogLineCallback(ProgressCallback):
    """Trainer's tqdm bar (steps, ETA), with one readable line per logging step on stderr instead of a dict."""

    def __init__(self):
        super().__init__()
        self._t0 = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.time()
        return super().on_train_begin(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        parts = [f"step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.4f}"]
        parts += [f"{k[5:]} {v:.4f}" for k, v in logs.items() if k.startswith("loss_")]
        if "learning_rate" in logs:
            parts.append(f"lr {logs['learning_rate']:.2e}")
        if "tokens" in logs and self._t0:  # tokens counted since this process started training
            parts.append(f"{logs['tokens'] / max(time.time() - self._t0, 1e-9):.0f} tok/s")
        line = " | ".join(parts)
        if self.training_bar is not None:
            self.training_bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

