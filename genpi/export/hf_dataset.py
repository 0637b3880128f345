"""Synthesized records as a Hugging Face `datasets` folder, for training with another stack.

Each row's `messages` is the conversation with no prompt in it (the scenario's student template around
the pseudo input, then the prompted teacher's turns and the environment's answers): the chat format
TRL's SFTTrainer reads, and what genpi's SFT term learns. `prompt_messages` is the same conversation
with the prompt, for distilling from the prompted model; `input`, `teacher_output`, `student_output`
and `reason` are the record's other fields (genpi's PG term regenerates the prompt and the reason).
Load it with `datasets.load_from_disk(DIR)["train"]`.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import DataDir
from ..errors import GenpiError
from ..scenario import Scenario, student_messages, teacher_messages


def export_hf_dataset(scenario: Scenario, data_dir: str | Path, out_dir: str | Path) -> dict:
    try:
        import datasets
    except ImportError:
        raise GenpiError("writing a Hugging Face dataset needs the datasets package: pip install datasets") from None
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise GenpiError(f"--export-hf '{out}' is not empty: pass a new folder")
    rows = []
    for r in DataDir(data_dir).read_records():
        turns = [{"role": t.role, "content": t.content} for t in r.conversation]
        rows.append({"id": r.id, "messages": student_messages(scenario, r.input, turns),
                     "prompt_messages": teacher_messages(scenario, r.input, turns), "input": r.input,
                     "teacher_output": r.teacher_output, "student_output": r.student_output, "reason": r.reason})
    if not rows:
        raise GenpiError(f"'{data_dir}' holds no records to export: run genpi synth first")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(out))
    return {"dir": str(out), "rows": len(rows)}
