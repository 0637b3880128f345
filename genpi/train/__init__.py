"""Step 2 of the method: train a LoRA adapter so the model behaves as if the prompt were there.

    from genpi.train import TrainConfig, train_adapter
    summary = train_adapter(scenario, model_ref, "data/", "adapter/", TrainConfig.from_preset("quick"))

Modules: config (TrainConfig), masking (supervised spans from the chat template), examples (SFT and PG
examples from records), batches (length-grouped steps, collator), losses (pure loss terms), trainer (the
HF Trainer subclass), recipe (setup / fit / save: train_adapter), base (the frozen base model: bf16, 4-bit,
checkpointing), parallel (several processes, one adapter), plot (loss curve).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'METHODS': '.config',
    'TrainConfig': '.config',
    'parse_methods': '.config',
    'train_adapter': '.recipe',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
