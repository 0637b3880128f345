"""genpi: internalize a fixed LLM prompt into a LoRA adapter (Generative Prompt Internalization)."""

import os as _os

# genpi never downloads: every model comes from a local file, folder or the local cache.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
