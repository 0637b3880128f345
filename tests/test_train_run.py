"""Training on the tiny model: every method trains, adapters are standard PEFT, runs resume and stop safely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error
from templates import TEMPLATES, model_dir_with_template
from safetensors.torch import load_file

from genpi.errors import GenpiError
from genpi.scenario import load_scenario
from genpi.train import TrainConfig, losses, train_adapter
from genpi.train.trainer import GenpiTrainer

SCENARIO = """\
name: tiny-shell
prompt:
  - role: system
    content: |-
      You are a shell agent. Reply with a Think: line, then Act: bash and one fenced bash block,
      or Act: answer(X) when you know the answer.

      Never write Python, and keep every reply short.
  - role: user
    content: How many files are in /etc?
  - role: assistant
    content: "Think: count them.\\n\\nAct: bash"
student_template: "New problem: {input}"
"""

FAST = dict(max_source_tokens=256, max_target_tokens=48, batch_size=2, save_steps=1)


def train(sc, ref, data, out, progress=False, preset="smoke", **kw):
    """train_adapter with a TrainConfig built from the preset and `kw`."""
    return train_adapter(sc, ref, data, out, TrainConfig.from_preset(preset, **kw), progress=progress)


def write_data(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "records.jsonl", "w") as f:
        for i in range(n):
            t = f"Think: list it.\n\nAct: bash\n\n```bash\nls /srv/{i}\n```"
            conv = [{"role": "assistant", "content": t}, {"role": "user", "content": f"a b c {i}"},
                    {"role": "assistant", "content": f"Think: done.\n\nAct: answer({i})"}]
            f.write(json.dumps({"id": f"r{i}", "input": f"What is in /srv/{i}?", "teacher_output": t,
                                "student_output": "Use Python.", "reason": "The rules demand bash.",
                                "conversation": conv}) + "\n")
    return folder


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """The tiny model's matrices are too small for threads; on a busy 2-core machine two threads cost 100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the CLI subprocesses
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    (root / "s.yaml").write_text(SCENARIO)
    return load_scenario(root / "s.yaml"), write_data(root / "data"), root


def lora_b(adapter: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(adapter / "adapter_model.safetensors").items() if "lora_B" in k}


@pytest.mark.parametrize("method", ["genpi", "sft", "sft-kl", "prompt-mix", "genpi+kl", "genpi+on_policy"])
def test_each_method_trains_a_standard_adapter(setup, tiny_ref, method):
    sc, data, root = setup
    out = root / f"a-{method}"
    extra = {"genpi+kl": {"kl": 0.5}, "genpi+on_policy": {"on_policy": 0.5, "on_policy_every": 1,
                                                            "on_policy_tokens": 8}}.get(method, {})
    method = method.split("+")[0]
    s = train(sc, tiny_ref, data, out, method=method, preset="smoke", epochs=2, progress=False,
                      learning_rate=1e-2, **FAST, **extra)
    for f in ("adapter_config.json", "adapter_model.safetensors", "genpi.json", "loss.png"):
        assert (out / f).is_file(), f
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert not cfg.get("modules_to_save") and not cfg.get("use_dora") and cfg["r"] in (8, 16, 32, 64, 128, 256)
    assert Path(cfg["base_model_name_or_path"]) == Path(tiny_ref.path)
    b = lora_b(out)
    assert b and all(v.abs().sum() > 0 for v in b.values())  # LoRA B starts at zero: training moved every one
    meta = json.loads((out / "genpi.json").read_text())
    assert meta["method"] == method and meta["scenario"]["prompt_sha256"] == sc.prompt_sha256
    assert meta["base_model"]["fingerprint"] == tiny_ref.fingerprint()
    assert meta["data"]["records"] == 4 and len(meta["data"]["sha256"]) == 64
    card = (out / "README.md").read_text()  # genpi's model card, not PEFT's boilerplate
    assert card.startswith("---\nbase_model: ") and f"prompt SHA-256 `{sc.prompt_sha256}`" in card
    assert f"method `{method}`" in card and "No evaluation yet" in card
    terms = set(meta["final_loss"])
    want = {"genpi": {"loss", "sft", "pg"}, "sft": {"loss", "sft"}, "sft-kl": {"loss", "sft", "kl"},
            "prompt-mix": {"loss", "sft"}}[method] | set(extra) - {"on_policy_every", "on_policy_tokens"}
    assert terms == want
    for k in ("kl", "on_policy"):  # an option signs a run only when it is on
        assert (k in meta["run"]) == (k in extra)
    if "on_policy" in extra:  # the adapter's own replies were sampled and scored by the teacher
        f = meta["final_loss"]
        assert f["on_policy"] > 0 and f["loss"] == pytest.approx(0.3 * f["pg"] + 0.7 * f["sft"] + 0.5 * f["on_policy"],
                                                                   rel=1e-3)
        assert meta["train"]["teacher_tokens"] > 0
    if "kl" in extra:  # the logged terms add up: loss = 0.3 PG + 0.7 SFT + 0.5 KL
        f = meta["final_loss"]
        assert f["kl"] > 0 and f["loss"] == pytest.approx(0.3 * f["pg"] + 0.7 * f["sft"] + 0.5 * f["kl"], rel=1e-3)
    assert meta["train"]["tokens_per_s"] > 0 and meta["versions"]["peft"]
    if method == "genpi":
        assert meta["data"]["pg_sections"] >= 2  # the prompt is longer than a 48-token target
    if method == "sft-kl":
        assert meta["train"]["teacher_tokens"] > 0 and meta["final_loss"]["kl"] > 0
    if method == "prompt-mix":
        assert meta["data"]["sft_prompt_in_input"] == 2
    assert not (out / "checkpoints").exists()
    assert s["signature"] == meta["signature"]


def test_loss_decreases_on_a_repeated_small_batch(setup, tiny_ref):
    sc, _, root = setup
    data = write_data(root / "data2", n=2)
    s = train(sc, tiny_ref, data, root / "overfit", method="genpi", preset="smoke", epochs=12,
                      progress=False, learning_rate=1e-1, logging_steps=1,
                      **{**FAST, "save_steps": 100, "max_target_tokens": 200})  # one PG section: same batch each step
    meta = json.loads((root / "overfit" / "genpi.json").read_text())
    assert meta["train"]["optimizer_steps"] == 12 and meta["data"]["pg_sections"] == 1
    import matplotlib.image

    assert matplotlib.image.imread(root / "overfit" / "loss.png").shape[0] > 100
    hist = meta["loss_history"]
    assert [h["step"] for h in hist] == list(range(1, 13))
    for term in ("loss", "sft", "pg"):
        first, last = hist[0][term], hist[-1][term]
        # the tiny model's logits are bounded (random tied embeddings, frozen norms): ln(V) = 10.8 falls
        # by a few tenths at most; an adapter that did not learn would stay within noise (~0.01)
        assert last < first - 0.1, (term, first, last)
    assert s["final_loss"]["loss"] == hist[-1]["loss"]

def test_rerun_is_a_no_op_and_other_settings_are_refused(setup, tiny_ref):
    sc, data, root = setup
    out = root / "a-genpi"  # trained above with these settings
    if not (out / "genpi.json").exists():
        train(sc, tiny_ref, data, out, method="genpi", preset="smoke", epochs=2, progress=False,
                      learning_rate=1e-2, **FAST)
    before = (out / "adapter_model.safetensors").stat().st_mtime_ns
    train(sc, tiny_ref, data, out, method="genpi", preset="smoke", epochs=2, progress=False,
                  learning_rate=1e-2, **FAST)
    assert (out / "adapter_model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(GenpiError, match="learning_rate"):
        train(sc, tiny_ref, data, out, method="genpi", preset="smoke", epochs=2, progress=False,
                      learning_rate=2e-2, **FAST)


def test_interrupted_run_resumes_to_the_same_adapter(setup, tiny_ref, monkeypatch):
    sc, data, root = setup
    kw = dict(method="genpi", preset="smoke", epochs=2, progress=False, learning_rate=1e-2, **FAST)
    train(sc, tiny_ref, data, root / "whole", **kw)
    real = GenpiTrainer.compute_loss

    def interrupt_at_3(self, *a, **k):
        if self.state.global_step == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(GenpiTrainer, "compute_loss", interrupt_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(sc, tiny_ref, data, root / "cut", **kw)
    assert (root / "cut" / "checkpoints" / "checkpoint-3").is_dir()
    assert not (root / "cut" / "genpi.json").exists()
    torn = root / "cut" / "checkpoints" / "checkpoint-4"  # a save cut short by a kill: no trainer_state.json
    torn.mkdir()
    (torn / "adapter_model.safetensors").write_bytes(b"partial")
    monkeypatch.setattr(GenpiTrainer, "compute_loss", real)
    s = train(sc, tiny_ref, data, root / "cut", **kw)
    assert s["train"]["resumed_from"] == "checkpoint-3"
    a, b = lora_b(root / "whole"), lora_b(root / "cut")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(setup, tiny_ref, monkeypatch):
    sc, data, root = setup
    real = losses.token_nll
    calls = {"n": 0}

    def nan_later(logits, targets, weights=None):
        calls["n"] += 1
        total, n = real(logits, targets, weights)
        return (total * float("nan"), n) if calls["n"] > 4 else (total, n)  # 2 terms a step: NaN in step 3

    monkeypatch.setattr(losses, "token_nll", nan_later)
    out = root / "nan"
    with pytest.raises(GenpiError, match=r"non-finite loss at step 2.*checkpoint-2.*--lr"):
        train(sc, tiny_ref, data, out, method="genpi", preset="smoke", epochs=2, progress=False, **FAST)
    kept = out / "checkpoints" / "checkpoint-2"
    assert kept.is_dir()
    assert all(torch.isfinite(v).all() for v in load_file(kept / "adapter_model.safetensors").values())
    assert not (out / "adapter_model.safetensors").exists()


ROUND_TRIP = """
import json, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
for job in json.load(open(sys.argv[1])):
    base = AutoModelForCausalLM.from_pretrained(job["base"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, job["adapter"]).eval()
    with torch.no_grad():
        torch.save(model(input_ids=torch.tensor([job["ids"]])).logits, job["out"])
"""
MARKER = {"chatml": "<|im_start|>assistant\n", "llama3": "<|end_header_id|>\n\n", "mistral": " [/INST]"}


@pytest.fixture(scope="module")
def round_trips(setup, tiny_ref, tmp_path_factory):
    """An adapter trained on the tiny model under each chat template, and its logits on a chat rendered with
    that template, computed by plain transformers + PEFT in one fresh process."""
    from genpi.models import load_tokenizer, resolve_model

    sc, data, root = setup
    work = tmp_path_factory.mktemp("round-trip")
    cases = {}
    for name in TEMPLATES:
        if TEMPLATES[name] is None:  # the tiny model's own template: the sft adapter the merge test uses too
            ref, out, kw = tiny_ref, root / "a-sft", dict(method="sft", epochs=2)
        else:  # SFT and PG masks under this template
            ref = resolve_model(str(model_dir_with_template(tiny_ref.path, name, work / f"model-{name}")))
            out, kw = work / f"adapter-{name}", dict(method="genpi", epochs=1)
        if not (out / "genpi.json").exists():
            train(sc, ref, data, out, learning_rate=1e-2, **kw, **FAST)
        tok = load_tokenizer(ref)
        text = tok.apply_chat_template([{"role": "user", "content": "New problem: What is in /srv/1?"}],
                                       tokenize=False, add_generation_prompt=True)
        assert MARKER[name] in text  # the model folder renders chats with this template
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cases[name] = {"base": ref.path, "adapter": str(out), "ids": ids, "out": str(work / f"{name}.pt")}
    (work / "jobs.json").write_text(json.dumps(list(cases.values())))
    (work / "plain_peft.py").write_text(ROUND_TRIP)
    subprocess.run([sys.executable, str(work / "plain_peft.py"), str(work / "jobs.json")], check=True, timeout=300)
    return cases


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_adapter_round_trip_in_a_fresh_process_with_plain_peft(round_trips, template):
    from genpi.models import load_adapter, load_model, resolve_model

    case = round_trips[template]
    theirs = torch.load(case["out"])
    ids = torch.tensor([case["ids"]])
    ref = resolve_model(case["base"])
    with torch.no_grad():
        ours = load_adapter(load_model(ref), case["adapter"])(input_ids=ids).logits
        plain = load_model(ref)(input_ids=ids).logits
    assert torch.equal(ours, theirs)
    assert not torch.allclose(ours, plain)  # the adapter does change the model


def test_an_adapter_signed_with_the_older_model_fingerprint_is_already_trained(setup, tiny_ref, tmp_path, capsys):
    from genpi.artifacts import text_sha256

    sc, data, _ = setup
    out = tmp_path / "a"
    train(sc, tiny_ref, data, out, method="sft", epochs=1, **FAST)
    meta = json.loads((out / "genpi.json").read_text())
    weights = (out / "adapter_model.safetensors").read_bytes()
    # genpi.json as the genpi before 2026-12-06 signed it: its run key held the model's legacy fingerprint
    run = {**meta["run"], "model": tiny_ref.legacy_fingerprint()}
    (out / "genpi.json").write_text(json.dumps({**meta, "run": run, "signature": text_sha256(run)[:16]}))
    capsys.readouterr()
    train(sc, tiny_ref, data, out, method="sft", epochs=1, progress=True, **FAST)
    assert "already trained with these settings; nothing to do" in capsys.readouterr().err
    assert (out / "adapter_model.safetensors").read_bytes() == weights
    run["model"] = "0123456789abcdef"  # another model's adapter is still refused
    (out / "genpi.json").write_text(json.dumps({**meta, "run": run, "signature": text_sha256(run)[:16]}))
    with pytest.raises(GenpiError, match="trained differently.*model"):
        train(sc, tiny_ref, data, out, method="sft", epochs=1, **FAST)


def test_pg_units_trains_the_named_unit_as_a_term_of_its_own(setup, tiny_ref, tmp_path):
    sc, _, _ = setup
    data = write_data(tmp_path / "data")
    rows = [json.loads(x) for x in (data / "records.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):  # each names the rule "Never write Python, ..."
        r["input"] = f"May I write Python to list /srv/{i}?"
    (data / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = train(sc, tiny_ref, data, tmp_path / "a", method="genpi", kl=0.5, pg_units=True, epochs=2,
              learning_rate=1e-2, **FAST)
    meta = json.loads((tmp_path / "a" / "genpi.json").read_text())
    assert meta["data"]["pg_needed_examples"] == 4 and meta["run"]["pg_units"] is True
    f = meta["final_loss"]  # the named unit's PG is logged on its own and weighed as PG: 0.3 (PG + units)
    assert f["units"] > 0 and f["loss"] == pytest.approx(0.3 * (f["pg"] + f["units"]) + 0.7 * f["sft"] + 0.5 * f["kl"],
                                                         rel=1e-3)
    assert s["method"] == "genpi"


def test_merge_writes_a_plain_model_with_the_adapters_logits(setup, tiny_ref):
    from transformers import AutoModelForCausalLM

    from genpi.models import load_adapter, load_model

    sc, data, root = setup
    out = root / "a-sft"
    if not (out / "genpi.json").exists():
        train(sc, tiny_ref, data, out, method="sft", preset="smoke", epochs=2, progress=False,
                      learning_rate=1e-2, **FAST)
    s = train(sc, tiny_ref, data, out, method="sft", preset="smoke", epochs=2, progress=False,
                      learning_rate=1e-2, merge=True, **FAST)  # already trained: only merges
    merged = Path(s["merged"])
    assert (merged / "config.json").is_file() and (merged / "tokenizer.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    ids = torch.tensor([[1, 4093, 198, 2696, 28, 339, 523, 2, 198]])
    with torch.no_grad():
        m = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()(input_ids=ids).logits
        a = load_adapter(load_model(tiny_ref), out)(input_ids=ids).logits
    torch.testing.assert_close(m, a, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("materialized_models")
def test_cli_trains_and_rejects_bad_input(setup, cli, tmp_path):
    sc, data, root = setup
    scen = root / "s.yaml"
    res = cli("train", str(scen), "--data", str(data), "--out", str(tmp_path / "cli"), "--model", "tiny",
              "--preset", "smoke", "--epochs", "1", "--max-target-tokens", "48", "--max-source-tokens", "256",
              "--method", "sft", "--quiet")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["method"] == "sft"
    assert (tmp_path / "cli" / "adapter_model.safetensors").is_file()
    res = cli("train", str(scen), "--data", str(data), "--out", str(tmp_path / "x"), "--model", "tiny",
              "--lambda", "1.5")
    one_line_error(res, "--lambda 1.5 is out of range")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "records.jsonl").write_text('{"id": 1}\n')
    res = cli("train", str(scen), "--data", str(tmp_path / "bad"), "--out", str(tmp_path / "x"), "--model", "tiny")
    one_line_error(res, "records.jsonl: line 1 is not valid (input: Field required)")


def test_data_from_another_scenario_is_refused(setup, tiny_ref, tmp_path):
    sc, data, _ = setup
    other = write_data(tmp_path / "d")
    (other / "meta.json").write_text(json.dumps({"identity": {"scenario_sha256": "0" * 64}}))
    with pytest.raises(GenpiError, match="another scenario"):
        train(sc, tiny_ref, other, tmp_path / "a", preset="smoke", progress=False, **FAST)
    (other / "meta.json").write_text(json.dumps({"identity": {"scenario_sha256": sc.sha256()}}))
    s = train(sc, tiny_ref, other, tmp_path / "a", method="sft", preset="smoke", progress=False, **FAST)
    assert s["data"]["synth_meta"]["identity"]["scenario_sha256"] == sc.sha256()


def test_precision_sets_the_arithmetic_not_the_signature(setup, tiny_ref):
    from genpi.train.recipe import use_bf16

    sc, data, root = setup
    with pytest.raises(GenpiError, match="unknown precision 'fp16'"):
        TrainConfig.from_preset("smoke", precision="fp16")
    assert "precision" not in TrainConfig.from_preset("smoke").signed()
    cpu = torch.device("cpu")
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu)
    metas = {}
    for p in ("fp32", "bf16"):
        out = root / f"prec-{p}"
        train(sc, tiny_ref, data, out, precision=p, epochs=1, learning_rate=1e-2, **FAST)
        metas[p] = json.loads((out / "genpi.json").read_text())
        assert metas[p]["train"]["bf16"] == (p == "bf16")
        weights = load_file(out / "adapter_model.safetensors")
        assert weights and all(w.dtype == torch.float32 for w in weights.values())  # LoRA stays fp32 either way
        assert all(torch.isfinite(w).all() for w in weights.values())
    assert metas["fp32"]["signature"] == metas["bf16"]["signature"]
    # the same steps on the same data: the two arithmetics give close, not equal, losses
    f32, b16 = metas["fp32"]["final_loss"]["loss"], metas["bf16"]["final_loss"]["loss"]
    assert f32 != b16 and b16 == pytest.approx(f32, rel=0.1)


def test_teacher_passes_reuse_the_prompts_kv_and_give_the_same_logits(tiny_ref):
    """The KL term's teacher pass on top of the shared prompt's KV equals a full pass, for any batch size,
    again and again (the prefix cache is cut back after each use); rows without the prefix fall back."""
    from types import SimpleNamespace

    from peft import LoraConfig, get_peft_model

    from genpi.models import load_model
    from genpi.train.trainer import GenpiTrainer

    torch.manual_seed(0)
    model = get_peft_model(load_model(tiny_ref), LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False))
    prefix = torch.randint(5, 900, (40,)).tolist()
    host = SimpleNamespace(teacher_prefix=prefix, _prefix_caches={}, tokens={"teacher": 0})
    run = GenpiTrainer._teacher_logits.__get__(host)
    for rows, width in ((2, 12), (3, 20), (2, 7), (1, 9)):
        suffix = torch.randint(5, 900, (rows, width))
        ids = torch.cat([torch.tensor(prefix).expand(rows, -1), suffix], dim=1)
        mask = torch.ones_like(ids)
        mask[0, -3:] = 0  # a right-padded row
        ids[0, -3:] = 0
        pos = torch.arange(len(prefix) + 1, ids.shape[1] - 1)
        with torch.no_grad(), model.disable_adapter():
            want = model(input_ids=ids, attention_mask=mask, logits_to_keep=pos, use_cache=False).logits
            got = run(model, ids, mask, pos)
        assert torch.allclose(got[1:], want[1:], atol=1e-4) and torch.allclose(got[0, :-3], want[0, :-3], atol=1e-4)
    assert set(host._prefix_caches) == {1, 2, 3} and host._prefix_caches[2].get_seq_length() == len(prefix)
    counted = host.tokens["teacher"]
    other = torch.randint(5, 900, (2, 50))  # does not start with the prefix: a plain full pass
    with torch.no_grad(), model.disable_adapter():
        full = model(input_ids=other, attention_mask=torch.ones_like(other), logits_to_keep=torch.arange(45, 49)).logits
        assert torch.allclose(run(model, other, torch.ones_like(other), torch.arange(45, 49)), full, atol=1e-5)
    assert host.tokens["teacher"] == counted + 100


def test_teacher_prefix_stops_before_the_first_read_position():
    from genpi.train.examples import IGNORE, Example
    from genpi.train.recipe import teacher_prefix

    shared = list(range(100, 130))
    a = Example(kind="teacher", record="a", input_ids=tuple(shared + [1, 2, 3, 4]), labels=[IGNORE] * 32 + [3, 4])
    b = Example(kind="teacher", record="b", input_ids=tuple(shared + [1, 2, 9, 9]), labels=[IGNORE] * 31 + [2, 9, 9])
    assert teacher_prefix([a, b]) == shared  # 32 tokens are shared, but b's first label (31) is read from position 30
    assert teacher_prefix([a]) == [] and teacher_prefix(None) == []
    c = Example(kind="teacher", record="c", input_ids=tuple([7] + shared), labels=[IGNORE] * 30 + [shared[-1]])
    assert teacher_prefix([a, c]) == []  # no shared start


def test_a_cited_weight_counts_the_cited_tokens_more_in_sft(setup, tiny_ref, tmp_path, monkeypatch):
    """--cited-weight C: the SFT term weighs each cited token C and every other token 1 (here each turn's end
    token, the one token synthesis did not write); at 1 the plain token mean runs; it signs the adapter."""
    from genpi.errors import GenpiError
    from genpi.train import TrainConfig, trainer

    sc, _, _ = setup
    weights = []
    real = trainer.losses.token_nll

    def recording(logits, targets, w=None):
        if w is not None:
            weights.append(w.tolist())
        return real(logits, targets, w)

    monkeypatch.setattr(trainer.losses, "token_nll", recording)
    data = write_data(tmp_path / "data")
    rows = [json.loads(x) for x in (data / "records.jsonl").read_text().splitlines()]
    for r in rows:
        r["conversation"] = r["conversation"][:1]
        r["cited"] = [r["teacher_output"]]
    (data / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train(sc, tiny_ref, data, tmp_path / "w1", method="genpi", kl=1.0, epochs=1, **FAST)
    assert weights == []
    train(sc, tiny_ref, data, tmp_path / "w4", method="genpi", kl=1.0, epochs=1, cited_weight=4.0, **FAST)
    assert weights and all(set(w) == {1.0, 4.0} and w.count(1.0) == 2 for w in weights)  # two rows a step
    metas = [json.loads((tmp_path / a / "genpi.json").read_text()) for a in ("w1", "w4")]
    assert metas[1]["hyperparameters"]["cited_weight"] == 4.0 and metas[0]["signature"] != metas[1]["signature"]
    with pytest.raises(GenpiError, match="--cited-weight 0.0 must be a finite number above 0"):
        TrainConfig(cited_weight=0.0)


def test_cited_text_is_trained_by_sft_but_left_out_of_the_kl_term(setup, tiny_ref, tmp_path, monkeypatch):
    """Records whose whole reply was cited by synthesis: the KL term compares only each turn's end token (the
    one token synthesis did not write), SFT still trains every token; without `cited` it compares them all."""
    from genpi.train import trainer

    sc, _, _ = setup
    seen = []
    real = trainer.losses.kept_mean

    def counting(per_token, keep=None):
        seen[-1].append((per_token.shape[0], per_token.shape[0] if keep is None else int(keep.sum())))
        return real(per_token, keep)

    monkeypatch.setattr(trainer.losses, "kept_mean", counting)
    for cite in (True, False):
        data = write_data(tmp_path / str(cite) / "data")
        rows = [json.loads(x) for x in (data / "records.jsonl").read_text().splitlines()]
        for r in rows:
            r["conversation"] = r["conversation"][:1]
            if cite:
                r["cited"] = [r["teacher_output"]]
        (data / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        seen.append([])
        train(sc, tiny_ref, data, tmp_path / str(cite) / "a", method="genpi", kl=1.0, epochs=1, **FAST)
        meta = json.loads((tmp_path / str(cite) / "a" / "genpi.json").read_text())
        assert all(h["sft"] > 0 and h["kl"] > 0 for h in meta["loss_history"])
    cited, plain = seen
    assert cited and all(n > 2 and kept == 2 for n, kept in cited)  # two rows a step, one end token each
    assert plain and all(n > 2 and kept == n for n, kept in plain)
