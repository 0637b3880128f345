"""An adapter folder (ADAPTER_DIR), written by `genpi train`, read by eval, bench, chat and any PEFT loader.

  adapter_config.json + adapter_model.safetensors   the PEFT contract (written by PEFT's save_pretrained)
  genpi.json       `AdapterMeta`: method, base model, scenario, data, hyperparameters, losses, timings
  loss.png         the loss curve
  merged/          with --merge: base + adapter as one plain model folder
  checkpoints/     while training: resumable checkpoints and run.json (the run's signature)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..errors import GenpiError
from .data import DataDir
from .io import file_sha256, read_json, write_json_atomic

META, CONFIG, WEIGHTS = "genpi.json", "adapter_config.json", "adapter_model.safetensors"
CHECKPOINTS, CHECKPOINT_RUN, LOSS_PNG, MERGED = "checkpoints", "run.json", "loss.png", "merged"


class BaseModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    spec: str = ""
    kind: str | None = None
    name: str | None = None
    path: str | None = None
    gguf_file: str | None = None
    fingerprint: str | None = None


class DataInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    dir: str | None = None
    sha256: str | None = None


class AdapterMeta(BaseModel):
    """ADAPTER_DIR/genpi.json. Older files that held `base_model` or `data` as a plain string still load."""

    model_config = ConfigDict(extra="allow")

    method: str | None = None
    signature: str | None = None
    base_model: BaseModelInfo | None = None
    data: DataInfo | None = None
    merged: str | None = None

    @field_validator("base_model", mode="before")
    @classmethod
    def _spec_string(cls, v: Any) -> Any:
        return {"spec": v} if isinstance(v, str) else v

    @field_validator("data", mode="before")
    @classmethod
    def _dir_string(cls, v: Any) -> Any:
        return {"dir": v} if isinstance(v, str) else v

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)


class AdapterDir:
    """The files of one adapter folder; the only code that opens genpi.json and the checkpoint run file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta_path = self.path / META
        self.weights_path = self.path / WEIGHTS
        self.checkpoints = self.path / CHECKPOINTS
        self.loss_png = self.path / LOSS_PNG
        self.merged = self.path / MERGED

    def __repr__(self) -> str:
        return f"AdapterDir({str(self.path)!r})"

    def require(self) -> "AdapterDir":
        """Raise a one-line error unless this is a PEFT adapter folder (config + safetensors)."""
        if not self.path.is_dir():
            raise GenpiError(f"adapter folder '{self.path}' not found: pass a folder written by 'genpi train'")
        missing = [f for f in (CONFIG, WEIGHTS) if not (self.path / f).is_file()]
        if missing:
            raise GenpiError(f"'{self.path}' is not an adapter folder (missing {', '.join(missing)}): "
                             "pass a folder written by 'genpi train'")
        return self

    def is_complete(self) -> bool:
        return self.meta_path.is_file() and self.weights_path.is_file()

    def read_meta(self) -> AdapterMeta:
        """genpi.json, or an empty AdapterMeta for a plain PEFT folder (no genpi.json) or an unreadable one."""
        try:
            raw = read_json(self.meta_path)
        except GenpiError:
            raw = None
        return AdapterMeta.model_validate(raw) if isinstance(raw, dict) else AdapterMeta()

    def write_meta(self, meta: AdapterMeta | dict) -> None:
        data = meta.to_json() if isinstance(meta, AdapterMeta) else AdapterMeta.model_validate(meta).to_json()
        write_json_atomic(self.meta_path, data)

    def weights_sha256(self) -> str:
        return file_sha256(self.weights_path)

    def base_model_spec(self) -> str | None:
        """The --model the adapter was trained on, as genpi.json records it."""
        b = self.read_meta().base_model
        return b.spec.strip() if b is not None and b.spec and b.spec.strip() else None

    def training_inputs(self) -> list[str]:
        """Inputs of the records the adapter was trained on, when genpi.json points at a data folder that is there."""
        info = self.read_meta().data
        if info is None or not info.dir:
            return []
        d = Path(info.dir) if Path(info.dir).is_absolute() else self.path / info.dir
        if not d.is_dir():
            return []
        try:
            return [r.input for r in DataDir(d).read_records()]
        except GenpiError:
            return []

    # -- training checkpoints ------------------------------------------------------------------
    def read_checkpoint_run(self) -> dict | None:
        raw = read_json(self.checkpoints / CHECKPOINT_RUN, fix=f"delete '{self.checkpoints}' to start over")
        return raw if isinstance(raw, dict) else None

    def write_checkpoint_run(self, run: dict) -> None:
        write_json_atomic(self.checkpoints / CHECKPOINT_RUN, run)
