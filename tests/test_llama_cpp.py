"""llama.cpp (llama-cpp-python, built from the registry's source package) with genpi's files: the embedded
GGUF served for synthesis, and an exported LoRA GGUF that changes llama.cpp's output as PEFT does.

Slow: each test trains or loads the embedded 135M model. Skipped where llama-cpp-python is not installed
(`make install-test` installs it, building llama.cpp once into ~/.cache/genpi/wheels).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from genpi.export import export_gguf_lora  # noqa: E402
from genpi.generate.llama_server import LlamaServer, gguf_file  # noqa: E402
from genpi.models import encode_chat, load_adapter, load_model, load_tokenizer, resolve_model  # noqa: E402
from genpi.scenario import load_scenario  # noqa: E402
from genpi.train import TrainConfig, train_adapter  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("materialized_models")]

WORD = "PINEAPPLE"
SCENARIO = f"""\
name: pineapple
prompt: "Begin every reply with the word {WORD} in capitals, then answer in one short sentence."
seed_inputs: ["Where is Paris?", "What is rain?"]
eval:
  checks:
    - {{name: word, regex: '\\\\A{WORD}'}}
  inputs: ["Where do penguins live?"]
"""
QUESTIONS = ["Where is Paris?", "What is rain?", "Why is the sky blue?", "What do cats eat?",
             "How tall is a giraffe?", "What is a river?", "Who builds houses?", "When does winter start?"]
ANSWERS = ["Paris is in France.", "Rain is water falling from clouds.", "Air scatters blue light the most.",
           "Cats eat meat and fish.", "A giraffe is about five metres tall.", "A river is flowing fresh water.",
           "Builders build houses.", "Winter starts in December in the north."]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An adapter of the embedded model that starts every reply with the word, its GGUF export, the scenario."""
    root = tmp_path_factory.mktemp("llama")
    (root / "s.yaml").write_text(SCENARIO)
    sc = load_scenario(root / "s.yaml")
    data = root / "data"
    data.mkdir()
    with open(data / "records.jsonl", "w") as f:
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS)):
            t = f"{WORD}. {a}"
            f.write(json.dumps({"id": f"r{i}", "input": q, "teacher_output": t, "student_output": a,
                                "reason": f"The prompt asks for the word {WORD} first.",
                                "conversation": [{"role": "assistant", "content": t}]}) + "\n")
    ref = resolve_model("default")
    cfg = TrainConfig.from_preset("quick", method="sft", epochs=6, learning_rate=1e-3, batch_size=4, kl=0.0,
                                  max_source_tokens=128, max_target_tokens=64, save_steps=1000)
    train_adapter(sc, ref, data, root / "adapter", cfg, progress=False)
    info = export_gguf_lora(root / "adapter", gguf_file(ref), root / "adapter.gguf")
    return sc, ref, root / "adapter", root / "adapter.gguf", info


def _llama(ref, lora=None):
    return llama_cpp.Llama(model_path=str(gguf_file(ref)), lora_path=str(lora) if lora else None, n_ctx=512,
                           n_threads=2, logits_all=True, verbose=False, seed=0)


def _greedy_llama(llm, prompt_ids: list[int], n: int) -> list[int]:
    out = []
    for tok in llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
        if tok == llm.token_eos() or len(out) >= n:
            break
        out.append(tok)
    return out


def test_exported_lora_changes_llama_cpp_as_peft_changes_transformers(trained):
    import torch

    sc, ref, adapter, lora_gguf, info = trained
    assert info["weights"] == 210  # 30 layers x 7 linear modules
    tok = load_tokenizer(ref)
    conv = [{"role": "user", "content": "Where do penguins live?"}]
    prompt = encode_chat(tok, conv, "generate")
    base = load_model(ref).eval()
    with torch.no_grad():
        bare = base.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)[0, len(prompt):].tolist()
    peft = load_adapter(load_model(ref), adapter).eval()
    with torch.no_grad():
        mine = peft.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)[0, len(prompt):].tolist()
    text = tok.decode(mine, skip_special_tokens=True)
    assert text.startswith(WORD) and not tok.decode(bare, skip_special_tokens=True).startswith(WORD)

    plain, with_lora = _llama(ref), _llama(ref, lora_gguf)
    assert tok.decode(_greedy_llama(with_lora, prompt, 24), skip_special_tokens=True).startswith(WORD)
    assert not tok.decode(_greedy_llama(plain, prompt, 24), skip_special_tokens=True).startswith(WORD)

    # teacher-forced on the adapter's own replies to held-out inputs: llama.cpp's top-1 (Q4_1 weights + LoRA)
    # against PEFT's (fp32 weights dequantized from the same file)
    def top1(llm, ids, start):
        llm.reset()
        llm.eval(ids)
        return np.asarray(llm.scores[start - 1:len(ids) - 1]).argmax(-1)

    same, same_plain, n = 0, 0, 0
    for q in ("Where do penguins live?", "What is the moon made of?", "How do birds fly?"):
        p = encode_chat(tok, [{"role": "user", "content": q}], "generate")
        with torch.no_grad():
            reply = peft.generate(torch.tensor([p]), max_new_tokens=48, do_sample=False)[0, len(p):].tolist()
            want = peft(torch.tensor([p + reply])).logits[0, len(p) - 1:len(p) + len(reply) - 1].argmax(-1).numpy()
        same += int((top1(with_lora, p + reply, len(p)) == want).sum())
        same_plain += int((top1(plain, p + reply, len(p)) == want).sum())
        n += len(reply)
    agree, agree_plain = same / n, same_plain / n
    print(f"teacher-forced top-1 agreement with PEFT over {n} reply tokens: llama.cpp + LoRA {agree:.3f}, "
          f"llama.cpp without it {agree_plain:.3f}")
    assert agree >= 0.95 and agree_plain < agree


def test_synthesis_through_llama_cpps_server_over_the_embedded_gguf(trained, cli, tmp_path):
    """The embedded GGUF served by llama.cpp passes the same-model check, synthesis runs through it, and the
    teacher's log-probabilities come from it for training's KL term."""
    sc, ref, *_ = trained
    with LlamaServer(gguf_file(ref)) as server:
        res = cli("synth", sc.source, "--out", str(tmp_path / "D"), "--preset", "smoke", "--model", "default",
                  "--num-inputs", "3", "--max-turns", "1", "--model-api-base", server.url, "--model-api-name",
                  server.name, "--teacher-logprobs", "5", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["endpoints"]["teacher"] == {"kind": "api", "api_base": server.url, "api_model": server.name}
    assert meta["counts"]["records"] == 3
    # the teacher's top-5 at its turns' tokens, from the server's echo + logprobs, matched to the local tokens
    top = meta["teacher_logprobs"]
    assert top["records"] == 3 and top["sources"] == [f"{server.name} @ {server.url}"]
    assert top["matched_share"] >= 0.9, top
    # and training's KL term reads them: no pass of the prompted teacher
    res = cli("train", sc.source, "--data", str(tmp_path / "D"), "--out", str(tmp_path / "A"), "--model", "default",
              "--preset", "smoke", "--method", "sft-kl", "--quiet", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    trained = json.loads((tmp_path / "A" / "genpi.json").read_text())
    assert trained["kl_teacher"] == "stored top-K log-probabilities" and trained["train"]["teacher_tokens"] == 0


def test_chat_through_llama_cpp_replies_as_transformers_does(trained, cli):
    sc, ref, adapter, *_ = trained
    replies = {}
    for engine in ("transformers", "llama.cpp"):
        res = cli("chat", "--adapter", str(adapter), "--engine", engine, "--max-new-tokens", "24",
                  input="Where do penguins live?\n", timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        replies[engine] = res.stdout.strip()
    assert replies["llama.cpp"].startswith(WORD) and replies["llama.cpp"] == replies["transformers"]
