"""`train_adapter`: records -> examples -> LoRA training with the joint loss -> ADAPTER_DIR.

ADAPTER_DIR gets adapter_config.json + adapter_model.safetensors (standard PEFT), genpi.json (metadata)
and loss.png; with merge, merged/ (a full model folder). While training, checkpoints/ holds resumable
checkpoints; rerunning the same call resumes from the last one, and returns at once when done.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from ..errors import GenpiError
from ..files import write_dir_atomically
from ..models import ModelRef, load_adapter, load_model, load_tokenizer
from ..presets import Preset, get_preset
from ..scenario import Scenario
from .config import TrainConfig
from .examples import Example, pg_example, prompt_sections, section_budget, sft_example
from .records import RECORDS_FILE, Record, file_sha256, load_meta, load_records

META_NAME = "genpi.json"
CKPT_DIR = "checkpoints"
RUN_FILE = "run.json"


@dataclass
class Built:
    sft: list[Example] = field(default_factory=list)
    teacher: list[Example] | None = None
    pg: list[Example] = field(default_factory=list)
    pg_pool: list[list[int]] = field(default_factory=list)  # per record: PG example indices by section
    sections: int = 0
    stats: dict = field(default_factory=dict)


def build_examples(tok, sc: Scenario, records: list[Record], cfg: TrainConfig, progress: bool = True) -> Built:
    """Every example the run can use: SFT (and teacher twins for sft-kl) and PG for each prompt section."""
    b = Built(teacher=[] if cfg.method == "sft-kl" else None)
    st = {"records": len(records), "sft_skipped_source_too_long": 0, "sft_turns_truncated": 0,
          "sft_prompt_in_input": 0, "pg_skipped_source_too_long": 0}
    mixed = set()
    if cfg.method == "prompt-mix":
        mixed = set(random.Random(f"{cfg.seed}:prompt-mix").sample(range(len(records)), len(records) // 2))
    sections: list[str] = []
    if cfg.uses_pg:
        sections = prompt_sections(tok, sc.prompt_text, section_budget(tok, records, cfg.max_target_tokens))
        b.sections = len(sections)
    bar = tqdm(records, desc="examples", unit="record", file=sys.stderr, disable=not progress, leave=False)
    for i, rec in enumerate(bar):
        if cfg.uses_sft:
            s = sft_example(tok, sc, rec, cfg.max_source_tokens, cfg.max_target_tokens,
                            with_prompt=i in mixed, want_teacher=b.teacher is not None)
            if s.example is None:
                st["sft_skipped_source_too_long"] += 1
            else:
                b.sft.append(s.example)
                st["sft_turns_truncated"] += int(s.truncated)
                st["sft_prompt_in_input"] += int(i in mixed)
                if b.teacher is not None:
                    b.teacher.append(s.teacher)
        if sections:
            opts = []
            for j, text in enumerate(sections, 1):
                ex = pg_example(tok, rec, text, j, len(sections), cfg.max_source_tokens, cfg.max_target_tokens)
                if ex is not None:
                    opts.append(len(b.pg))
                    b.pg.append(ex)
            st["pg_skipped_source_too_long"] += int(not opts)
            b.pg_pool.append(opts)
    st.update(sft_examples=len(b.sft), pg_examples=len(b.pg), pg_sections=b.sections,
              sft_tokens=sum(len(e) for e in b.sft), sft_supervised_tokens=sum(e.n_supervised for e in b.sft),
              pg_tokens=sum(len(e) for e in b.pg), pg_supervised_tokens=sum(e.n_supervised for e in b.pg))
    if cfg.uses_sft and not b.sft:
        raise GenpiError(f"no record's no-prompt input fits --max-source-tokens {cfg.max_source_tokens}: "
                         "raise it or synthesize shorter inputs")
    if cfg.uses_pg and not b.pg:
        raise GenpiError(f"no record fits a prompt-generation example within --max-source-tokens "
                         f"{cfg.max_source_tokens}: raise it")
    b.stats = st
    return b


def _versions() -> dict:
    import peft
    import torch
    import transformers

    return {"genpi": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _differences(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(keys) or "unknown"


def train_adapter(scenario: Scenario, model_ref: ModelRef, data_dir: str | Path, out_dir: str | Path,
                  method: str = "genpi", preset: str | Preset = "quick", lam: float = 0.7, kl_weight: float = 1.0,
                  merge: bool = False, progress: bool = True, **overrides) -> dict:
    """Train (or resume, or find finished) the adapter for `scenario` on DATA_DIR's records; return genpi.json.

    `overrides` are TrainConfig fields (epochs, batch_size, learning_rate, ...); None means "preset's value".
    """
    preset_obj = preset if isinstance(preset, Preset) else get_preset(preset)
    cfg = TrainConfig.from_preset(preset_obj, method=method, lam=lam, kl_weight=kl_weight, merge=merge, **overrides)
    data_dir, out = Path(data_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_records(data_dir)
    data_meta = load_meta(data_dir)
    ident = data_meta.get("identity") if isinstance(data_meta.get("identity"), dict) else {}
    want = ident.get("scenario_sha256") or data_meta.get("scenario_sha256")
    if want and want != scenario.sha256():
        raise GenpiError(f"'{data_dir}' was synthesized for another scenario (or another version of it): "
                         "rerun 'genpi synth' for this scenario or pass the matching --data folder")
    data_sha = file_sha256(data_dir / RECORDS_FILE)
    run_key = {**{k: v for k, v in cfg.to_dict().items() if k != "merge"}, "data_sha256": data_sha,
               "scenario_sha256": scenario.sha256(), "prompt_sha256": scenario.prompt_sha256,
               "model": model_ref.fingerprint()}
    signature = hashlib.sha256(json.dumps(run_key, sort_keys=True).encode()).hexdigest()[:16]

    meta_path, ckpt = out / META_NAME, out / CKPT_DIR
    tok = load_tokenizer(model_ref)
    if meta_path.is_file():
        done = json.loads(meta_path.read_text())
        if done.get("signature") != signature:
            raise GenpiError(f"'{out}' already holds an adapter trained differently (differs in: "
                             f"{_differences(done.get('run', {}), run_key)}): pass a new --out or delete that folder")
        if all((out / f).is_file() for f in ("adapter_config.json", "adapter_model.safetensors")):
            if merge and not (out / "merged" / "config.json").is_file():
                done["merged"] = str(_write_merged(model_ref, out, tok))
                _atomic_json(meta_path, done)
            print(f"genpi train: '{out}' is already trained with these settings; nothing to do", file=sys.stderr)
            return done
    if (ckpt / RUN_FILE).is_file():
        old = json.loads((ckpt / RUN_FILE).read_text())
        if old.get("signature") != signature:
            raise GenpiError(f"'{ckpt}' holds checkpoints of a different run (differs in: "
                             f"{_differences(old.get('run', {}), run_key)}): pass a new --out or delete '{ckpt}'")

    built = build_examples(tok, scenario, records, cfg, progress)
    summary = _fit(cfg, model_ref, tok, built, out, ckpt, signature, run_key, progress)
    summary.update({
        "signature": signature, "run": run_key,
        "base_model": {"spec": model_ref.spec, "kind": model_ref.kind, "name": model_ref.name,
                       "path": model_ref.path, "gguf_file": model_ref.gguf_file,
                       "fingerprint": model_ref.fingerprint()},
        "scenario": {"name": scenario.name, "sha256": scenario.sha256(), "prompt_sha256": scenario.prompt_sha256,
                     "source": scenario.source},
        "method": cfg.method, "lambda": cfg.lam, "kl_weight": cfg.kl_weight,
        "data": {"dir": str(data_dir), "file": RECORDS_FILE, "sha256": data_sha, **built.stats,
                 "synth_meta": {k: data_meta[k] for k in data_meta if k in
                                ("genpi_version", "identity", "models", "counts", "sampling")}},
        "preset": preset_obj.name, "hyperparameters": cfg.to_dict(), "versions": _versions(),
    })
    if merge:
        summary["merged"] = str(_write_merged(model_ref, out, tok))
    from .plot import plot_loss_curve

    history = summary.pop("log_history")
    summary["loss_history"] = [{"step": r["step"], **{k[5:] if k.startswith("loss_") else k: r[k] for k in r
                                                      if k == "loss" or k.startswith("loss_")}}
                               for r in history if "loss" in r and "step" in r]
    png = plot_loss_curve(history, out / "loss.png", f"{scenario.name}: {cfg.method} ({model_ref.name})")
    summary["loss_curve"] = png.name if png else None
    _atomic_json(meta_path, summary)
    shutil.rmtree(ckpt, ignore_errors=True)
    return summary


def _fit(cfg: TrainConfig, ref: ModelRef, tok, built: Built, out: Path, ckpt: Path, signature: str,
         run_key: dict, progress: bool) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    from .batches import StepCollator, StepDataset, build_plan
    from .trainer import GenpiTrainer, LogLineCallback, NonFiniteLoss

    hf_logging.set_verbosity_error()
    plan = build_plan([len(e) for e in built.sft], built.pg_pool, [len(e) for e in built.pg], cfg.batch_size,
                      cfg.epochs, cfg.pg_fraction, cfg.seed)
    opt_steps = -(-len(plan.steps) // cfg.grad_accum)
    save_steps = cfg.save_steps or max(1, -(-opt_steps // 10))
    logging_steps = cfg.logging_steps or max(1, opt_steps // 20)

    torch.manual_seed(cfg.seed)
    model = load_model(ref)
    model.config.use_cache = False
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    cuda = model.device.type == "cuda"
    args = TrainingArguments(
        output_dir=str(ckpt), per_device_train_batch_size=1, gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=1, learning_rate=cfg.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm, weight_decay=cfg.weight_decay,
        logging_steps=logging_steps, save_strategy="steps", save_steps=save_steps, save_total_limit=2,
        report_to="none", dataloader_num_workers=0, remove_unused_columns=False,
        train_sampling_strategy="sequential", seed=cfg.seed, logging_nan_inf_filter=False,
        bf16=cuda and torch.cuda.is_bf16_supported(), dataloader_pin_memory=cuda, disable_tqdm=not progress,
        use_cpu=model.device.type == "cpu",
    )
    trainer = GenpiTrainer(model=peft_model, args=args,
                           train_dataset=StepDataset(plan, built.sft, built.pg, built.teacher),
                           data_collator=StepCollator(tok.pad_token_id),
                           method=cfg.method, lam=cfg.lam, kl_weight=cfg.kl_weight)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.add_callback(LogLineCallback())
    ckpt.mkdir(parents=True, exist_ok=True)
    _atomic_json(ckpt / RUN_FILE, {"signature": signature, "run": run_key})
    last = last_complete_checkpoint(ckpt)
    if progress:
        what = f"resuming from {Path(last).name}" if last else "training"
        print(f"genpi train: {what}: {cfg.method}, {len(plan.steps)} micro-steps ({opt_steps} optimizer steps), "
              f"{len(built.sft)} SFT / {len(built.pg)} PG examples"
              + (f" ({built.sections} prompt sections)" if built.sections else ""), file=sys.stderr)
    t0 = time.time()
    try:
        trainer.train(resume_from_checkpoint=last)
    except NonFiniteLoss as e:
        kept = last_complete_checkpoint(ckpt)
        where = f"the last good checkpoint is kept in '{kept}' and a rerun resumes from it" if kept else \
            "no checkpoint had been saved yet"
        raise GenpiError(f"training stopped: {e}; {where}; lower the learning rate (--lr) or check the data")
    wall = time.time() - t0
    # what a user (or vLLM's --lora-modules) loads the base from: the hub id, else the local folder / file
    peft_model.peft_config["default"].base_model_name_or_path = (
        ref.spec if ref.kind == "hub" else str(Path(ref.path) / ref.gguf_file) if ref.gguf_file else ref.path)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    history = trainer.state.log_history
    logged = [r for r in history if "loss" in r]
    final = {k[5:] if k.startswith("loss_") else k: v for k, v in (logged[-1] if logged else {}).items()
             if k == "loss" or k.startswith("loss_")}
    trained = trainer.tokens["trained"]
    return {
        "adapter": {"dir": str(out), "r": cfg.lora_r, "alpha": cfg.lora_alpha, "target_modules": "all-linear",
                    "trainable_parameters": sum(p.numel() for p in peft_model.parameters() if p.requires_grad)},
        "final_loss": final,
        "train": {"micro_steps": len(plan.steps), "optimizer_steps": trainer.state.global_step,
                  "steps_per_epoch": plan.steps_per_epoch, "epochs": cfg.epochs,
                  "resumed_from": Path(last).name if last else None, "wall_s": round(wall, 2),
                  "tokens": trained, "teacher_tokens": trainer.tokens["teacher"],
                  "tokens_per_s": round(trained / wall, 1) if wall > 0 else None,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "device": str(model.device), "bf16": bool(args.bf16), "threads": torch.get_num_threads()},
        "log_history": history,
    }


def last_complete_checkpoint(ckpt: Path) -> str | None:
    """The newest checkpoint whose save finished (Trainer writes trainer_state.json last); a save cut short
    by a kill is removed so that the run resumes from the one before it."""
    done = []
    for d in ckpt.glob("checkpoint-*"):
        if not d.name.split("-")[-1].isdigit():
            continue
        if (d / "trainer_state.json").is_file():
            done.append(d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return str(max(done, key=lambda d: int(d.name.split("-")[-1]))) if done else None


def _write_merged(ref: ModelRef, out: Path, tok) -> Path:
    """ADAPTER_DIR/merged: base + adapter merged into plain weights, with the tokenizer (servable as is)."""

    def build(tmp: Path):
        merged = load_adapter(load_model(ref), out, merge=True)
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))

    return write_dir_atomically(out / "merged", build)
