"""`run_bench` end to end on the tiny model: the four variants, what must agree, bench.json's schema."""

from __future__ import annotations

import json
import math

import pytest

from genpi.artifacts import BenchDir
from genpi.bench import BenchConfig, run_bench
from genpi.bench.flops import LLAMA_PROJECTIONS, Shape, lora_params
from genpi.bench.pipeline import _lora_params
from genpi.bench.random_adapter import make_random_adapter
from genpi.errors import GenpiError
from genpi.scenario import load_scenario

SCENARIO = """\
name: tiny-agent
prompt:
  - role: system
    content: You are a shell agent. Think first, then act with one bash command in a fenced block.
  - role: user
    content: How many files are in /etc?
  - role: assistant
    content: "Think: count them.\\n\\nAct: bash\\n```bash\\nls /etc | wc -l\\n```"
  - role: user
    content: "Next problem:"
student_template: "New problem: {input}"
environment: {role: an Ubuntu shell, instructions: Print only the command output.}
eval:
  inputs: ["How big is /usr?", "Who am I?", "What is the kernel version?"]
"""
TURNS, REPLY = 2, 5


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    p = tmp_path_factory.mktemp("sc") / "s.yaml"
    p.write_text(SCENARIO)
    return load_scenario(p)


@pytest.fixture(scope="module")
def adapter(tiny_ref, tmp_path_factory):
    return make_random_adapter(tiny_ref, tmp_path_factory.mktemp("adapter"), rank=16, alpha=32, std=0.05)


@pytest.fixture(scope="module")
def bench(scenario, tiny_ref, adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = run_bench(scenario, tiny_ref, adapter, out, BenchConfig(turns=TURNS, reply_tokens=REPLY, env_tokens=6,
                       conversations=2, repeats=2, threads=1), progress=False)
    return out, result


def test_writes_the_three_reports(bench):
    out, result = bench
    assert json.loads((out / "bench.json").read_text()) == json.loads(json.dumps(result))
    md = (out / "bench.md").read_text()
    for name in ("with_prompt", "with_prompt_prefix_cache", "internalized", "internalized_merged"):
        assert f"| {name} |" in md
    assert "Decode-time attention" in md and "KV memory per concurrent user" in md and "Context window" in md
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_json_schema(bench):
    _, r = bench
    assert set(r["variants"]) == {"with_prompt", "with_prompt_prefix_cache", "internalized", "internalized_merged"}
    for v in r["variants"].values():
        assert v["tokens"]["decoded_per_conversation"] == TURNS * REPLY
        assert len(v["latency"]["ttft_s_per_turn"]) == TURNS
        assert len(v["flops"]["cumulative_per_turn"]) == TURNS
        st = v["latency"]["total_s"]
        assert len(st["per_repeat"]) == 2 and st["min"] <= st["median"] <= st["max"]
        assert v["kv_bytes"] > 0 and v["peak_mem_bytes"] >= v["weights_bytes"] > 0
    for key in ("flops", "latency", "kv_bytes", "ttft"):
        assert r["ratios"]["with_prompt"][key] == pytest.approx(1.0)
    # analytic counts: dropping the prompt strictly lowers them
    for key in ("flops", "kv_bytes"):
        assert 0 < r["ratios"]["internalized"][key] < 1, key
    # measured times: no direction is guaranteed on a busy machine, but each ratio is a positive finite
    # number and is exactly the ratio of the medians the report gives for the two variants
    wp, it = r["variants"]["with_prompt"]["latency"], r["variants"]["internalized"]["latency"]
    for lat in (wp, it):
        assert all(0 < t < math.inf for t in lat["ttft_s_per_turn"])
        assert lat["ttft_s_mean"] == pytest.approx(sum(lat["ttft_s_per_turn"]) / TURNS)
        # the first token of the last turn comes before the conversation's total time is up
        assert lat["ttft_s_per_turn"][-1] < lat["cumulative_s_per_turn"][-1] <= lat["total_s"]["max"]
    ra = r["ratios"]["internalized"]
    assert 0 < ra["latency"] < math.inf and 0 < ra["ttft"] < math.inf
    assert ra["latency"] == pytest.approx(it["total_s"]["median"] / wp["total_s"]["median"])
    assert ra["ttft"] == pytest.approx(it["ttft_s_mean"] / wp["ttft_s_mean"])
    lo, hi = ra["latency_per_repeat_range"]
    assert 0 < lo <= hi < math.inf
    assert set(r["ratios_to_prefix_cache"]) == {"internalized", "internalized_merged"}
    m = r["machine"]
    assert m["torch_threads"] == 1 and m["cores"] >= 1 and m["torch"] and len(m["loadavg_before"]) == 3
    assert r["settings"]["turns"] == TURNS and r["settings"]["repeats"] == 2


def test_prefix_cache_gives_the_same_greedy_text_as_resending_the_prompt(bench):
    _, r = bench
    ag = r["agreement"]["with_prompt_vs_prefix_cache"]
    assert ag["replies"] == 2 * TURNS and ag["identical_replies"] == ag["replies"]
    assert ag["max_abs_logit_diff"] < 1e-3
    for c in r["conversations"]:
        assert c["replies"]["with_prompt"] == c["replies"]["with_prompt_prefix_cache"]


def test_merged_adapter_matches_the_unmerged_one(bench):
    _, r = bench
    ag = r["agreement"]["internalized_vs_merged"]
    assert ag["max_abs_logit_diff"] < 1e-3
    assert ag["identical_replies"] == ag["replies"] == 2 * TURNS


def test_the_frozen_history_is_the_prompted_models_own_replies(bench):
    out, r = bench
    saved = json.loads(BenchDir(out).conversations_path.read_text())["conversations"]
    for c, rc in zip(saved, r["conversations"]):
        assert c["replies"] == rc["replies"]["with_prompt"]  # what with_prompt decodes, turn by turn
        assert [t["role"] for t in c["turns"]] == ["assistant", "user"] * (TURNS - 1)
        assert c["turns"][0]["content"] == c["replies"][0]


def test_tokens_and_flops_add_up(bench):
    _, r = bench
    v, p = r["variants"], r["prompt_cache"]["tokens"]
    wp, pc = v["with_prompt"], v["with_prompt_prefix_cache"]
    assert pc["tokens"]["prefilled_per_conversation"] == wp["tokens"]["prefilled_per_conversation"] - TURNS * p
    assert v["internalized"]["tokens"] == v["internalized_merged"]["tokens"]
    # the unmerged adapter costs exactly its LoRA matmuls more than the merged one
    extra = v["internalized"]["flops"]["per_conversation"] - v["internalized_merged"]["flops"]["per_conversation"]
    tokens = v["internalized"]["tokens"]["prefilled_per_conversation"] + TURNS * (REPLY - 1)
    assert extra == pytest.approx(2 * tokens * v["internalized"]["lora_params"])
    for name, x in v.items():  # measured cache size = analytic 2 * layers * kv_heads * head_dim * tokens * 4
        assert x["kv_bytes"] == x["kv_bytes_analytic"], name
    # tiny model: the LM head (64 x 49,152) dominates every call, so the saving is small but real
    assert r["ratios"]["internalized_merged"]["flops"] < r["ratios"]["internalized"]["flops"] < 1
    assert r["ratios"]["with_prompt_prefix_cache"]["flops"] < 1


def test_adapter_lora_params_match_the_formula(adapter, tiny_model):
    shape = Shape.from_config(tiny_model.config)
    assert _lora_params(adapter) == lora_params(shape, 16, LLAMA_PROJECTIONS)


def test_a_rerun_resumes_the_timed_passes(bench, scenario, tiny_ref, adapter):
    out, first = bench
    lines = BenchDir(out).measurements_path.read_text().splitlines()
    again = run_bench(scenario, tiny_ref, adapter, out, BenchConfig(turns=TURNS, reply_tokens=REPLY, env_tokens=6,
                      conversations=2, repeats=2, threads=1), progress=False)
    assert BenchDir(out).measurements_path.read_text().splitlines() == lines  # nothing re-timed
    assert again["variants"]["with_prompt"]["latency"] == first["variants"]["with_prompt"]["latency"]


def test_without_an_adapter_no_prompt_stands_in(scenario, tiny_ref, tmp_path):
    r = run_bench(scenario, tiny_ref, None, tmp_path, BenchConfig(turns=1, reply_tokens=2, env_tokens=2,
                  conversations=1, repeats=1, threads=1), progress=False)
    assert set(r["variants"]) == {"with_prompt", "with_prompt_prefix_cache", "no_prompt"}
    assert r["internalized_variant"] == "no_prompt" and "no_prompt" in r["ratios"]
    assert "No adapter was given" in (tmp_path / "bench.md").read_text()


def test_bad_numbers_are_one_line_errors(scenario, tiny_ref, tmp_path):
    with pytest.raises(GenpiError, match="--turns must be at least 1"):
        BenchConfig.from_preset("smoke", turns=0)
    with pytest.raises(GenpiError, match="adapter folder"):
        run_bench(scenario, tiny_ref, tmp_path / "missing", tmp_path, BenchConfig.from_preset("smoke", turns=1))


def test_peak_memory_counts_new_tensors_until_they_are_freed(tiny_model):
    import torch

    from genpi.bench.memory import PeakMemory

    with PeakMemory(tiny_model) as pm:
        a = torch.ones(1000)  # 4,000 bytes
        b = a * 2             # 4,000 more
        w = tiny_model.lm_head.weight.t()  # a view of a weight: not new memory
        del a, b, w
        c = torch.ones(500)   # 2,000, after the others were freed
    assert pm.peak_new == 8000 and pm.live == 2000 and c.numel() == 500
    assert pm.weights == sum(p.numel() * 4 for p in tiny_model.parameters())
    assert pm.peak == pm.weights + 8000


def test_findings_say_adds_when_a_variant_is_slower():
    from genpi.bench.report import _change

    assert _change(0.82, "FLOPs") == "removes 82% of the FLOPs"
    assert _change(-0.07, "latency") == "adds 7% to the latency"
