"""The teacher's top-K log-probabilities stored beside the records (`genpi synth --teacher-logprobs K`) and the
KL term that reads them (`genpi train --kl-teacher`): the top-K KL itself, the two answer shapes servers give
(llama.cpp's echo + logprobs, vLLM's prompt_logprobs) aligned to the local tokens, refusals in one line, and
the whole path on the tiny model."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from conftest import one_line_error

from genpi.artifacts import DataDir
from genpi.errors import GenpiError
from genpi.generate import ApiSpec
from genpi.generate.openai_api import OpenAIBackend
from genpi.generate.prompt_logprobs import TopK, Vocab, distributions, local_topk
from genpi.kl import token_kl, topk_kl
from genpi.models import encode_text, render_chat

pytestmark = pytest.mark.usefixtures("materialized_models")

SCENARIO = """\
name: shop
prompt: "You are the bike shop's assistant. We open at 9 and close at 5. Greet with Howdy."
seed_inputs: ["When do you open?", "Do you fix tyres?"]
"""


# -- the top-K KL ------------------------------------------------------------------------------
def test_topk_kl_is_the_full_kl_when_every_token_is_listed_and_a_lower_bound_otherwise():
    torch.manual_seed(0)
    t, s = torch.randn(6, 40) * 2, torch.randn(6, 40)
    full = token_kl(t, s)
    lp = torch.log_softmax(t, -1)
    last = torch.zeros(6)
    for k in (1, 4, 16, 40):
        v, i = lp.topk(k, -1)
        approx = topk_kl(i, v, s)
        assert (approx <= full + 1e-5).all() and (approx >= last - 1e-5).all()  # grows with K, never above
        last = approx
    assert torch.allclose(last, full, atol=1e-5)


def test_topk_kl_pads_and_gradients():
    torch.manual_seed(1)
    t, s = torch.randn(3, 20), torch.randn(3, 20, requires_grad=True)
    v, i = torch.log_softmax(t, -1).topk(5, -1)
    i[0, 2:] = -1                      # a row that lists fewer tokens
    i[2, :] = -1                       # a row that lists none: no information, no loss
    out = topk_kl(i, v, s)
    assert out[2] == 0 and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(s.grad).all() and s.grad[0].abs().sum() > 0


# -- answers of servers, aligned to the local tokens --------------------------------------------
@pytest.fixture(scope="module")
def convo(tiny_tok):
    text = render_chat(tiny_tok, [{"role": "system", "content": "Open 9 to 5."},
                                  {"role": "user", "content": "When do you open?"},
                                  {"role": "assistant", "content": "We open at 9."}], "complete")
    return text, encode_text(tiny_tok, text), Vocab(tiny_tok)


def test_llama_cpp_shaped_answer(convo, tiny_tok):
    """llama.cpp names tokens by their text, drops the BOS-like <|im_start|>, writes other special tokens
    as '' and gives no distribution for its first token."""
    text, ids, vocab = convo
    bos = tiny_tok.bos_token_id
    kept = [t for t in ids if t != bos]
    tokens = ["" if t in vocab.special else tiny_tok.decode([t]) for t in kept]
    tops = [None] + [{name: -0.25, " zebra": -3.0} for name in tokens[1:]]
    choice = {"text": text, "logprobs": {"tokens": tokens, "top_logprobs": tops, "token_logprobs": [None] * len(kept)}}
    d = distributions(choice, vocab, ids)
    zebra = vocab.id_of(" zebra")
    for j, t in enumerate(ids):
        if t == bos or j == 1:         # left out by the server / its first token
            assert d[j] is None
        elif t in vocab.special:       # '' names no token: only the other entry is known
            assert d[j] == {zebra: -3.0}
        else:
            assert d[j] == {t: -0.25, zebra: -3.0}, (j, tiny_tok.decode([t]))


def test_vllm_prompt_logprobs_answer(convo):
    """vLLM's prompt_logprobs: ids as JSON keys, one entry per prompt token (here with a BOS put before)."""
    text, ids, vocab = convo
    entries = [None, None] + [{str(t): {"logprob": -0.5, "rank": 1, "decoded_token": "x"},
                               "7": {"logprob": -4.0, "rank": 2}} for t in ids[1:]]
    d = distributions({"text": "", "prompt_logprobs": entries}, vocab, ids)
    assert d[0] is None and all(d[j] == {ids[j]: -0.5, 7: -4.0} or ids[j] == 7 for j in range(1, len(ids)))
    with pytest.raises(GenpiError, match="tokenized the conversation into"):
        distributions({"prompt_logprobs": entries[3:]}, vocab, ids)


def test_an_answer_without_log_probabilities_is_refused(convo):
    _, ids, vocab = convo
    with pytest.raises(GenpiError, match="holds no prompt log-probabilities: serve the base model with"):
        distributions({"text": "ok", "logprobs": None}, vocab, ids)


def test_a_strict_server_is_asked_again_without_prompt_logprobs_then_refused_in_one_line():
    asked = []

    def handler(request):
        body = json.loads(request.content)
        asked.append(sorted(body))
        if "prompt_logprobs" in body:
            return httpx.Response(422, json={"detail": "Unexpected fields in the request: {'prompt_logprobs'}"})
        if body.get("echo"):
            return httpx.Response(422, json={"detail": "echo is not supported"})
        return httpx.Response(200, json={"choices": [{"text": "x"}]})

    b = OpenAIBackend(ApiSpec("http://srv.test/v1", "m", role="base", retries=0),
                      http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(GenpiError) as e:
        b.prompt_logprobs("hello", 5)
    msg = str(e.value)
    assert "\n" not in msg and "refused to give prompt log-probabilities (HTTP 422" in msg
    assert "leave out --teacher-logprobs" in msg
    assert len(asked) == 2 and "prompt_logprobs" in asked[0] and "prompt_logprobs" not in asked[1]


def test_topk_rows_keep_the_highest_entries_and_pad():
    top = TopK.from_dicts([{5: -1.0, 3: -0.1, 9: -2.0}, None, {4: -0.5}], k=2)
    assert top.top_ids.tolist() == [[3, 5, 9], [-1, -1, -1], [4, -1, -1]]  # K + 1: a server may add its own token
    assert top.matched == 2 and top.top_logprobs[1].isinf().all()


def test_local_topk_predicts_the_token_at_each_position(tiny_model, convo):
    _, ids, _ = convo
    pos = [len(ids) - 3, len(ids) - 1]
    top = local_topk(tiny_model, ids, pos, 4)
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([ids])).logits[0]
    want = torch.log_softmax(logits[[p - 1 for p in pos]].float(), -1).topk(4, -1)
    assert top.top_ids.tolist() == want.indices.tolist()
    assert torch.allclose(top.top_logprobs, want.values, atol=1e-5)


# -- synth stores them, train reads them -----------------------------------------------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("topk")
    (root / "s.yaml").write_text(SCENARIO)
    res = run_cli("synth", str(root / "s.yaml"), "--out", str(root / "D"), "--model", "tiny", "--preset", "smoke",
                  "--num-inputs", "3", "--max-turns", "2", "--teacher-logprobs", "6", "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    return root


@pytest.mark.slow
def test_synth_stores_every_records_top_k(stored, tiny_tok, tiny_model):
    from genpi.scenario import load_scenario
    from genpi.train.examples import IGNORE, sft_example, stored_rows

    data = DataDir(stored / "D")
    meta = json.loads(data.meta_path.read_text())
    recs = data.read_records()
    assert meta["teacher_logprobs"]["records"] == len(recs) == 3
    assert meta["teacher_logprobs"]["k"] == 6 and meta["teacher_logprobs"]["matched_share"] == 1.0
    sc = load_scenario(stored / "s.yaml")
    for rec in recs:
        tensors, info = data.read_teacher_logprobs(rec.id)
        assert info["record"] == rec.id and tensors["top_ids"].shape == (len(tensors["positions"]), 6)
        # the rows a teacher twin reads are the teacher's own top-K at its supervised targets
        twin = sft_example(tiny_tok, sc, rec, 512, 512, want_teacher=True).teacher
        ids, _ = stored_rows(twin, data.read_teacher_logprobs(rec.id))
        targets = [p for p, y in enumerate(twin.labels) if y != IGNORE]
        with torch.no_grad():
            logits = tiny_model(input_ids=torch.tensor([list(twin.input_ids)])).logits[0]
        assert ids[:, 0].tolist() == logits[[p - 1 for p in targets]].argmax(-1).tolist()


@pytest.mark.slow
def test_train_reads_them_instead_of_running_the_teacher(stored, cli):
    s, d = stored / "s.yaml", stored / "D"
    common = ("train", str(s), "--data", str(d), "--model", "tiny", "--preset", "smoke", "--method", "sft-kl")
    res = cli(*common, "--out", str(stored / "A"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "reads the teacher's stored top-6 log-probabilities" in res.stderr
    meta = json.loads((stored / "A" / "genpi.json").read_text())
    assert meta["kl_teacher"] == "stored top-K log-probabilities" and meta["train"]["teacher_tokens"] == 0
    assert meta["run"]["teacher_logprobs"]["k"] == 6 and "kl" in meta["loss_history"][-1]
    res = cli(*common, "--out", str(stored / "B"), "--kl-teacher", "model")
    assert res.returncode == 0, res.stderr[-3000:]
    meta_b = json.loads((stored / "B" / "genpi.json").read_text())
    assert meta_b["train"]["teacher_tokens"] > 0 and "teacher_logprobs" not in meta_b["run"]
    assert meta_b["signature"] != meta["signature"]


@pytest.mark.slow
def test_stale_or_missing_log_probabilities_are_one_line_errors(stored, cli, tmp_path):
    import shutil

    d = tmp_path / "D"
    shutil.copytree(stored / "D", d)
    data = DataDir(d)
    rec = data.read_records()[0]
    tensors, info = data.read_teacher_logprobs(rec.id)
    tensors["input_ids"][5] += 1  # another rendering of the conversation
    data.write_teacher_logprobs(rec.id, tensors, {k: v for k, v in info.items() if k != "record"})
    common = ("train", str(stored / "s.yaml"), "--data", str(d), "--model", "tiny", "--preset", "smoke",
              "--method", "sft-kl", "--quiet")
    one_line_error(cli(*common, "--out", str(tmp_path / "A")), "another rendering", "--kl-teacher model")
    shutil.rmtree(data.teacher_logprobs_dir)
    one_line_error(cli(*common, "--out", str(tmp_path / "B"), "--kl-teacher", "stored"),
                   "no stored teacher log-probabilities", "--teacher-logprobs K")


@pytest.mark.slow
def test_a_rerun_scores_only_what_is_missing_or_asked_anew(stored, cli, tmp_path):
    import shutil

    d = tmp_path / "D"
    shutil.copytree(stored / "D", d)
    data = DataDir(d)
    recs = data.read_records()
    data._teacher_file(recs[0].id).unlink()
    before = {r.id: data._teacher_file(r.id).stat().st_mtime_ns for r in recs[1:]}
    args = ("synth", str(stored / "s.yaml"), "--out", str(d), "--model", "tiny", "--preset", "smoke",
            "--num-inputs", "3", "--max-turns", "2", "--quiet")
    assert cli(*args, "--teacher-logprobs", "6").returncode == 0
    assert data.has_teacher_logprobs(recs[0].id)
    assert {r.id: data._teacher_file(r.id).stat().st_mtime_ns for r in recs[1:]} == before  # kept as they were
    assert cli(*args, "--teacher-logprobs", "3").returncode == 0  # another K: every record scored again
    assert all(data.read_teacher_logprobs(r.id)[0]["top_ids"].shape[1] == 3 for r in recs)
    assert json.loads(data.meta_path.read_text())["teacher_logprobs"]["k"] == 3
