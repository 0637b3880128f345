"""`genpi chat`: scripted (stdin) on the tiny model with a plain-PEFT adapter; history and /reset."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_error

from genpi.commands.chat import Chat, base_model_spec


class Recorder:
    """A backend that answers with the number of messages it was shown, and keeps every call."""

    name = "recorder"

    def __init__(self):
        self.calls = []

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        self.calls.append(conversations)
        return [f"reply to {len(c)} messages" for c in conversations]


def test_history_is_kept_and_reset_clears_it():
    rec = Recorder()
    chat = Chat(rec, max_new_tokens=8)
    assert chat.reply("hi") == "reply to 1 messages"
    chat.reply("again")
    assert rec.calls[-1][0] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "reply to 1 messages"},
                                {"role": "user", "content": "again"}]
    assert not any(m["role"] == "system" for m in rec.calls[-1][0])  # no prompt is ever sent
    chat.reset()
    chat.reply("fresh")
    assert rec.calls[-1][0] == [{"role": "user", "content": "fresh"}]


def test_base_model_comes_from_flag_then_genpi_json_then_default(tmp_path):
    assert base_model_spec(tmp_path, None) == "default"
    (tmp_path / "genpi.json").write_text(json.dumps({"base_model": {"spec": "tiny"}}))
    assert base_model_spec(tmp_path, None) == "tiny"
    assert base_model_spec(tmp_path, "other") == "other"


@pytest.fixture(scope="module")
def adapter(tiny_ref, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model

    from genpi.models import load_model

    out = tmp_path_factory.mktemp("chat") / "adapter"
    torch.manual_seed(0)
    get_peft_model(load_model(tiny_ref), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)) \
        .save_pretrained(str(out), safe_serialization=True)
    (out / "genpi.json").write_text(json.dumps({"method": "sft", "base_model": {"spec": "tiny"}}))
    return out


def test_scripted_chat_prints_the_adapters_reply(cli, adapter, tiny_ref):
    res = cli("chat", "--adapter", str(adapter), "--max-new-tokens", "5", input="How many files are in /etc?\n")
    assert res.returncode == 0, res.stderr
    # the same reply, computed directly: base model (from genpi.json) + adapter, no prompt, greedy
    from genpi.generate import LocalBackend
    from genpi.models import load_adapter, load_model, load_tokenizer

    tok = load_tokenizer(tiny_ref)
    model = load_adapter(load_model(tiny_ref), adapter)
    want = LocalBackend(model, tok).chat([[{"role": "user", "content": "How many files are in /etc?"}]],
                                         max_new_tokens=5)[0]
    assert res.stdout.strip() == want


def test_bad_input_is_one_line(cli, adapter, tmp_path):
    missing = cli("chat", "--adapter", str(tmp_path / "none"), input="hi")
    one_line_error(missing, f"adapter folder '{tmp_path / 'none'}' not found")
    empty = cli("chat", "--adapter", str(adapter), input="  \n")
    one_line_error(empty, "no message on stdin")
