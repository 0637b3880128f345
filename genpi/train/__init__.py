"""Step 2 of the method: train a LoRA adapter so the model behaves as if the prompt were there.

    from genpi.train import TrainConfig, train_adapter
    summary = train_adapter(scenario, model_ref, "data/", "adapter/", TrainConfig.from_preset("quick"))

Modules: config (TrainConfig), masking (supervised spans from the chat template), examples (SFT and PG
examples from records), batches (length-grouped steps, collator), losses (pure loss terms), trainer (the
HF Trainer subclass), recipe (setup / fit / save: train_adapter), plot (loss curve).
"""

from .config import METHODS, TrainConfig, parse_methods
from .recipe import train_adapter

__all__ = ["METHODS", "TrainConfig", "parse_methods", "train_adapter"]
