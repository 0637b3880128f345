"""Step 2 of the method: train a LoRA adapter so the model behaves as if the prompt were there.

    from genpi.train import train_adapter
    summary = train_adapter(scenario, model_ref, "data/", "adapter/", method="genpi", preset="quick")

Modules: records (read records.jsonl), masking (supervised spans from the chat template), examples (SFT and
PG examples), batches (length-grouped steps, collator), losses (pure loss terms), trainer (the HF Trainer
subclass), config (TrainConfig), plot (loss curve), run (train_adapter).
"""

from .config import METHODS, TrainConfig
from .run import train_adapter

__all__ = ["METHODS", "TrainConfig", "train_adapter"]
