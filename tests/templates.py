"""Chat templates of three families, to run genpi's masking and adapters on more than SmolLM2's ChatML.

The tiny model keeps its tokenizer (SmolLM2's vocabulary), so the other families' markers are plain text
here, except the end of a turn: `{{ eos_token }}`, which is `<|im_end|>`. The templates are written for
these tests, in the style of each family:

  chatml   the tiny model's own template (SmolLM2): <|im_start|>role\\n...<|im_end|>\\n
  llama3   <|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>; the generation prompt ends in
           "\\n\\n", which SmolLM2's tokenizer splits differently when a reply follows
  mistral  [INST] ... [/INST] reply</s>; no system role (a system message is folded into the first user
           turn), no generation prompt, and the space before a reply belongs to the reply
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

LLAMA3 = (
    "<|begin_of_text|>"
    "{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + (m['content'] | trim) }}{{ eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

MISTRAL = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "<s>"
    "{% for m in turns %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + (system if loop.first else '') + m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + (m['content'] | trim) }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

TEMPLATES = {"chatml": None, "llama3": LLAMA3, "mistral": MISTRAL}  # None: keep the tokenizer's own

# How each template renders one assistant turn with content `{}` (what the model must learn to write)
TURN = {"chatml": "{}<|im_end|>", "llama3": "{}<|im_end|>", "mistral": " {}<|im_end|>"}


def with_template(tok, name: str):
    """A copy of `tok` that renders chats with template `name`."""
    if TEMPLATES[name] is None:
        return tok
    tok = copy.deepcopy(tok)
    tok.chat_template = TEMPLATES[name]
    return tok


def model_dir_with_template(model_dir: str | Path, name: str, dest: Path) -> Path:
    """A copy of the model folder `model_dir` whose tokenizer renders chats with template `name`."""
    from transformers import AutoTokenizer

    dest.mkdir(parents=True, exist_ok=True)
    for f in Path(model_dir).iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    tok = with_template(AutoTokenizer.from_pretrained(dest), name)
    tok.save_pretrained(dest)
    return dest
