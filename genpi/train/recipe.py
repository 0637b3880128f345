"""Training as a recipe: setup (records -> examples -> a plan of steps), fit (LoRA + the joint loss on the
stock Trainer), save (the PEFT adapter, genpi.json, the loss curve, optionally a merged model).

    summary = train_adapter(scenario, model_ref, "data/", "adapter/", TrainConfig.from_preset("quick"))

ADAPTER_DIR gets adapter_config.json + adapter_model.safetensors (standard PEFT), genpi.json and loss.png;
with `merge`, merged/ (a full model folder). While training, checkpoints/ holds resumable checkpoints:
rerunning the same call resumes from the last one, and returns at once when the adapter is done.
Started by `torchrun` or `accelerate launch`, the processes train one adapter together (parallel.py);
the main process writes every file.
"""

from __future__ import annotations

import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from .. import __version__
from ..artifacts import AdapterDir, AdapterMeta, DataDir, text_sha256
from ..errors import GenpiError
from ..models import ModelRef, default_device, fingerprint_aliases, load_tokenizer
from ..scenario import Scenario
from .base import check_4bit, load_base
from .config import TrainConfig
from .examples import build_examples
from .parallel import process_state


def train_adapter(scenario: Scenario, model_ref: ModelRef, data_dir: str | Path, out_dir: str | Path,
                  config: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume, or find finished) the adapter for `scenario` on DATA_DIR's records; return genpi.json."""
    recipe = TrainRecipe(scenario, model_ref, data_dir, out_dir, config, progress)
    done = recipe.setup()
    if done is not None:
        return done
    recipe.fit()
    return recipe.save()


class TrainRecipe:
    def __init__(self, scenario: Scenario, model_ref: ModelRef, data_dir: str | Path, out_dir: str | Path,
                 config: TrainConfig, progress: bool = True):
        self.sc, self.ref, self.cfg = scenario, model_ref, config
        self.data = DataDir(data_dir)
        self.out = AdapterDir(out_dir)
        self.procs = process_state()
        self.main = self.procs.is_main_process
        self.progress = progress and self.main

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> dict | None:
        """Read and check the data, sign the run; return genpi.json when this very run is already done."""
        cfg, sc, out = self.cfg, self.sc, self.out
        if cfg.load_in_4bit:
            check_4bit(self.ref, self.procs.device)
        if self.main:
            out.path.mkdir(parents=True, exist_ok=True)
        self.records = self.data.read_records(require=True)
        self.data_meta = self.data.read_meta()
        want = self.data_meta.identity.get("scenario_sha256") if self.data_meta else None
        if want and want != sc.sha256():
            raise GenpiError(f"'{self.data.path}' was synthesized for another scenario (or another version of it): "
                             "rerun 'genpi synth' for this scenario or pass the matching --data folder")
        self.data_sha = self.data.records_sha256()
        self.topk = self._stored_teacher()
        self.run_key = {**cfg.signed(), "data_sha256": self.data_sha,
                        # micro-batches per optimizer step in all processes: N processes with G are the same
                        # run (the same steps, the same signature) as one process with N * G
                        "grad_accum": cfg.grad_accum * self.procs.num_processes,
                        "scenario_sha256": sc.sha256(), "prompt_sha256": sc.prompt_sha256,
                        "model": self.ref.fingerprint()}
        if self.topk:  # the KL term reads the stored top-K: another run than one with the teacher's passes
            self.run_key["teacher_logprobs"] = self.topk
        self.signature = text_sha256(self.run_key)[:16]
        # the same run as older genpi signed it (its model fingerprint: genpi.models.fingerprint_aliases)
        self.signatures = {self.signature} | {text_sha256({**self.run_key, "model": old})[:16]
                                              for old in fingerprint_aliases(self.ref)}
        self.tok = load_tokenizer(self.ref)
        if out.meta_path.is_file():
            done = out.read_meta()
            if done.signature not in self.signatures:
                raise GenpiError(f"'{out.path}' already holds an adapter trained differently (differs in: "
                                 f"{_differences(getattr(done, 'run', None) or {}, self.run_key)}): "
                                 "pass a new --out or delete that folder")
            if out.is_complete():
                if cfg.merge and not (out.merged / "config.json").is_file() and self.main:
                    done.merged = str(self._write_merged())
                    out.write_meta(done)
                if self.main:
                    print(f"genpi train: '{out.path}' is already trained with these settings; nothing to do",
                          file=sys.stderr)
                return done.to_json()
        old = out.read_checkpoint_run()
        if old is not None and old.get("signature") not in self.signatures:
            raise GenpiError(f"'{out.checkpoints}' holds checkpoints of a different run (differs in: "
                             f"{_differences(old.get('run', {}), self.run_key)}): pass a new --out or delete "
                             f"'{out.checkpoints}'")
        self.built = build_examples(self.tok, sc, self.records, cfg, self.progress,
                                    stored=self.data.read_teacher_logprobs if self.topk else None)
        if self.topk and self.main and self.progress:
            print(f"genpi train: the KL term reads the teacher's stored top-{self.topk['k']} log-probabilities "
                  f"({', '.join(self.topk['sources'])}); no teacher pass", file=sys.stderr)
        return None

    def _stored_teacher(self) -> dict | None:
        """The stored teacher log-probabilities this run's KL term reads (meta.json's summary), or None when it
        runs the prompted teacher (--kl-teacher model, no KL term, or auto with some record lacking them)."""
        cfg = self.cfg
        if not cfg.uses_kl or cfg.kl_teacher == "model" or cfg.method not in ("sft-kl", "genpi") or \
                (cfg.method == "genpi" and cfg.kl == 0):
            return None
        have = all(self.data.has_teacher_logprobs(r.id) for r in self.records)
        top = (self.data_meta.teacher_logprobs if self.data_meta else None) or {}
        if not have or not top.get("records"):
            if cfg.kl_teacher == "stored":
                raise GenpiError(f"--kl-teacher stored: '{self.data.path}' has no stored teacher log-probabilities "
                                 "for every record: run 'genpi synth' on it again with --teacher-logprobs K, or "
                                 "pass --kl-teacher model")
            return None
        return {"k": top["k"], "sources": top.get("sources", []), "records": top["records"]}

    # -- fit ------------------------------------------------------------------------------------
    def fit(self) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import TrainingArguments
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from transformers.utils import logging as hf_logging

        from .batches import StepCollator, StepDataset, build_plan
        from .trainer import GenpiTrainer, LogLineCallback, NonFiniteLoss

        cfg, built, ckpt, procs = self.cfg, self.built, self.out.checkpoints, self.procs
        hf_logging.set_verbosity_error()
        # every optimizer step takes grad_accum micro-steps in each process; the plan is drawn to fill the last one
        per_step = cfg.grad_accum * procs.num_processes
        plan = build_plan([len(e) for e in built.sft], built.pg_pool, [len(e) for e in built.pg], cfg.batch_size,
                          cfg.epochs, cfg.pg_fraction, cfg.seed, multiple=per_step, units=built.pg_needed)
        opt_steps = len(plan.steps) // per_step

        torch.manual_seed(cfg.seed)
        device = str(procs.device) if procs.num_processes > 1 else default_device()  # one GPU per process
        bf16 = use_bf16(cfg.precision, torch.device(device))
        model = load_base(self.ref, device, bf16, cfg.load_in_4bit, cfg.gradient_checkpointing)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
        self.model = get_peft_model(model, lora)
        cuda = model.device.type == "cuda"
        args = TrainingArguments(
            output_dir=str(ckpt), per_device_train_batch_size=1, gradient_accumulation_steps=cfg.grad_accum,
            num_train_epochs=1, learning_rate=cfg.learning_rate, lr_scheduler_type="cosine",
            warmup_steps=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm, weight_decay=cfg.weight_decay,
            logging_steps=cfg.logging_steps or max(1, opt_steps // 20), save_strategy="steps",
            save_steps=cfg.save_steps or max(1, -(-opt_steps // 10)), save_total_limit=2,
            report_to="none", dataloader_num_workers=0, remove_unused_columns=False,
            train_sampling_strategy="sequential", seed=cfg.seed, logging_nan_inf_filter=False,
            bf16=bf16, dataloader_pin_memory=cuda, disable_tqdm=not self.progress,
            use_cpu=model.device.type == "cpu",
            # every LoRA weight takes part in every step; the frozen buffers (rotary tables) are the same
            # everywhere, and not broadcasting them lets a process run an extra forward pass (on-policy)
            ddp_find_unused_parameters=False, ddp_broadcast_buffers=False,
        )
        if args.n_gpu > 1:  # one process drives one GPU: nn.DataParallel would cut our micro-steps apart
            args._n_gpu = 1
            if self.main:
                print(f"genpi train: {torch.cuda.device_count()} GPUs visible, one used; for all of them run "
                      f"'torchrun --nproc-per-node {torch.cuda.device_count()} -m genpi train ...'", file=sys.stderr)
        trainer = GenpiTrainer(model=self.model, args=args,
                               train_dataset=StepDataset(plan, built.sft, built.pg, built.teacher,
                                                         built.teacher_topk),
                               data_collator=StepCollator(self.tok.pad_token_id),
                               method=cfg.method, lam=cfg.lam,
                               kl_weight=cfg.kl if cfg.method == "genpi" else cfg.kl_weight,
                               on_policy=cfg.on_policy, on_policy_every=cfg.on_policy_every,
                               on_policy_tokens=cfg.on_policy_tokens,
                               on_policy_temperature=cfg.on_policy_temperature,
                               cited_weight=cfg.cited_weight, seed=cfg.seed,
                               pad_id=self.tok.pad_token_id, eos_id=self.tok.eos_token_id,
                               teacher_prefix=teacher_prefix(built.teacher))
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        if self.progress:
            trainer.add_callback(LogLineCallback())
        with procs.main_process_first():  # the main process sets up checkpoints/, then the others read it
            if self.main:
                ckpt.mkdir(parents=True, exist_ok=True)
                self.out.write_checkpoint_run({"signature": self.signature, "run": self.run_key})
            last = last_complete_checkpoint(ckpt, clean=self.main)
        if self.progress:
            what = f"resuming from {Path(last).name}" if last else "training"
            on = f" on {procs.num_processes} processes" if procs.num_processes > 1 else ""
            print(f"genpi train: {what}{on}: {cfg.method}, {len(plan.steps)} micro-steps ({opt_steps} optimizer "
                  f"steps), {len(built.sft)} SFT / {len(built.pg)} PG examples"
                  + (f" ({built.sections} prompt sections)" if built.sections else ""), file=sys.stderr)
        t0 = time.time()
        try:
            trainer.train(resume_from_checkpoint=last)
        except NonFiniteLoss as e:
            kept = last_complete_checkpoint(ckpt, clean=self.main)
            where = f"the last good checkpoint is kept in '{kept}' and a rerun resumes from it" if kept else \
                "no checkpoint had been saved yet"
            raise GenpiError(f"training stopped: {e}; {where}; lower the learning rate (--lr) or check the data")
        wall = time.time() - t0
        tokens = trainer.token_totals()  # of all processes
        trained = tokens["trained"]
        self.trainer = trainer
        self.fit_stats = {
            "micro_steps": len(plan.steps), "optimizer_steps": trainer.state.global_step,
            "steps_per_epoch": plan.steps_per_epoch, "epochs": cfg.epochs,
            "resumed_from": Path(last).name if last else None, "wall_s": round(wall, 2),
            "tokens": trained, "teacher_tokens": tokens["teacher"],
            "tokens_per_s": round(trained / wall, 1) if wall > 0 else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "device": str(model.device), "bf16": bool(args.bf16), "threads": torch.get_num_threads(),
            "processes": procs.num_processes, "global_batch": cfg.batch_size * per_step,
            "gradient_checkpointing": cfg.gradient_checkpointing, "load_in_4bit": cfg.load_in_4bit}

    # -- save -----------------------------------------------------------------------------------
    def save(self) -> dict:
        from ..artifacts.model_card import prompt_facts, write_model_card
        from .plot import plot_loss_curve

        cfg, ref, sc, out = self.cfg, self.ref, self.sc, self.out
        self.procs.wait_for_everyone()  # every process is done with checkpoints/ (and its rng_state file)
        # what a user (or vLLM's --lora-modules) loads the base from: the hub id, else the local folder / file
        self.model.peft_config["default"].base_model_name_or_path = (
            ref.spec if ref.kind == "hub" else str(Path(ref.path) / ref.gguf_file) if ref.gguf_file else ref.path)
        if self.main:
            self.model.save_pretrained(str(out.path), safe_serialization=True)
        history = self.trainer.state.log_history
        logged = [r for r in history if "loss" in r]
        final = {k[5:] if k.startswith("loss_") else k: v for k, v in (logged[-1] if logged else {}).items()
                 if k == "loss" or k.startswith("loss_")}
        dm = self.data_meta.model_dump() if self.data_meta else {}
        meta = {
            "signature": self.signature, "run": self.run_key,
            "adapter": {"dir": str(out.path), "r": cfg.lora_r, "alpha": cfg.lora_alpha, "target_modules": "all-linear",
                        "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad)},
            "final_loss": final, "train": self.fit_stats,
            "base_model": {"spec": ref.spec, "kind": ref.kind, "name": ref.name, "path": ref.path,
                           "gguf_file": ref.gguf_file, "fingerprint": ref.fingerprint()},
            "scenario": {"name": sc.name, "sha256": sc.sha256(), "prompt_sha256": sc.prompt_sha256,
                         "source": sc.source},
            "method": cfg.method, "lambda": cfg.lam, "kl_weight": cfg.kl_weight,
            "kl_teacher": ("stored top-K log-probabilities" if self.topk else "the prompted base model")
            if self.built.teacher is not None else None,
            "data": {"dir": str(self.data.path), "sha256": self.data_sha, **self.built.stats,
                     "synth_meta": {k: dm[k] for k in ("genpi_version", "identity", "models", "counts", "sampling")
                                    if k in dm}},
            "hyperparameters": cfg.to_dict(), "versions": _versions(),
            "loss_history": [{"step": r["step"], **{k[5:] if k.startswith("loss_") else k: r[k] for k in r
                                                    if k == "loss" or k.startswith("loss_")}}
                             for r in history if "loss" in r and "step" in r],
        }
        if not self.main:  # the same summary, nothing written
            meta["merged"] = str(out.merged) if cfg.merge else None
            meta["loss_curve"] = out.loss_png.name
            return AdapterMeta.model_validate(meta).to_json()
        if cfg.merge:
            meta["merged"] = str(self._write_merged())
        png = plot_loss_curve(history, out.loss_png, f"{sc.name}: {cfg.method} ({ref.name})")
        meta["loss_curve"] = png.name if png else None
        out.write_meta(meta)
        write_model_card(out.path, prompt=prompt_facts(sc, self.tok))  # replaces PEFT's boilerplate README.md
        shutil.rmtree(out.checkpoints, ignore_errors=True)
        return AdapterMeta.model_validate(meta).to_json()

    def _write_merged(self) -> Path:
        """ADAPTER_DIR/merged: base + adapter merged into plain weights, with the tokenizer (servable as is)."""
        from ..export.merged import write_merged

        return write_merged(self.ref, self.out.path, self.out.merged)


def teacher_prefix(teacher) -> list[int]:
    """The tokens all teacher twins start with, up to the first position a KL term reads (their prompt)."""
    from ..generate.local import shared_prefix_len
    from .examples import IGNORE

    if not teacher or len(teacher) < 2:
        return []
    n = shared_prefix_len([e.input_ids for e in teacher])
    first_read = min(next(i for i, y in enumerate(e.labels) if y != IGNORE) - 1 for e in teacher)
    n = min(n, first_read)
    return list(teacher[0].input_ids[:n]) if n >= 16 else []


def use_bf16(precision: str, device) -> bool:
    """Whether to train in bf16: asked for, or (auto) where the device computes it fast."""
    import torch

    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    else:
        fast = False
    if precision == "bf16" and not fast and device.type != "cpu":
        raise GenpiError(f"--precision bf16: this {device.type} device has no bf16 support; use --precision fp32")
    return precision == "bf16" or (precision == "auto" and fast)


def last_complete_checkpoint(ckpt: Path, clean: bool = True) -> str | None:
    """The newest checkpoint whose save finished (Trainer writes trainer_state.json last); with `clean`, a
    save cut short by a kill is removed so that the run resumes from the one before it."""
    done = []
    for d in ckpt.glob("checkpoint-*"):
        if not d.name.split("-")[-1].isdigit():
            continue
        if (d / "trainer_state.json").is_file():
            done.append(d)
        elif clean:
            shutil.rmtree(d, ignore_errors=True)
    return str(max(done, key=lambda d: int(d.name.split("-")[-1]))) if done else None


def _versions() -> dict:
    import peft
    import torch
    import transformers

    return {"genpi": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def _differences(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(keys) or "unknown"
