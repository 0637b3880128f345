"""The analytic FLOPs formula of genpi.bench.flops, against hand counts on the tiny model."""

from __future__ import annotations

import pytest
import torch

from genpi.bench.decode import cache_bytes, greedy
from genpi.bench.flops import Shape, attention_flops, forward_flops, lora_params, turn_flops

# The tiny test model: hidden 64, intermediate 128, 2 layers, 4 heads / 2 KV heads of 16, vocab 49,152.
TINY = Shape(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=49152)


def test_shape_from_the_tiny_config(tiny_model):
    assert Shape.from_config(tiny_model.config) == TINY


def test_linear_params_by_hand():
    # one layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 + gate/up/down 3 x 64x128
    per_layer = 4096 + 2048 + 2048 + 4096 + 3 * 8192
    assert per_layer == 36864
    assert TINY.body_params == 2 * 36864
    assert TINY.head_params == 64 * 49152


def test_linear_params_match_the_loaded_model(tiny_model):
    linear = {n: m.weight.numel() for n, m in tiny_model.named_modules() if isinstance(m, torch.nn.Linear)}
    head = linear.pop("lm_head")
    assert sum(linear.values()) == TINY.body_params
    assert head == TINY.head_params


def test_prefill_of_ten_tokens_by_hand():
    f = forward_flops(TINY, n_new=10, n_past=0)
    assert f["linear"] == 2 * 10 * 73728 == 1_474_560
    assert f["head"] == 2 * 3_145_728  # last position only
    # token i attends over i keys: 1 + 2 + ... + 10 = 55; 4 FLOPs per key per head dim per head per layer
    assert f["attention"] == 4 * 2 * 4 * 16 * 55 == 28_160
    assert sum(f.values()) == 7_794_176


def test_one_decode_step_after_twenty_cached_tokens():
    f = forward_flops(TINY, n_new=1, n_past=20)
    assert f == {"linear": 147_456, "head": 6_291_456, "attention": 4 * 2 * 4 * 16 * 21}


@pytest.mark.parametrize("n_new,n_past", [(1, 0), (7, 0), (5, 11), (33, 100)])
def test_attention_closed_form_equals_the_per_token_sum(n_new, n_past):
    per_token = sum(4 * TINY.layers * TINY.heads * TINY.head_dim * (n_past + i + 1) for i in range(n_new))
    assert attention_flops(TINY, n_new, n_past) == per_token


def test_a_turn_is_one_prefill_and_reply_minus_one_decode_steps():
    t = turn_flops(TINY, n_past=3, n_prefill=10, reply=4)
    pre = forward_flops(TINY, 10, 3)
    steps = [forward_flops(TINY, 1, 13 + j) for j in range(3)]
    assert t["prefill"] == sum(pre.values())
    assert t["decode"] == sum(sum(s.values()) for s in steps)
    assert t["decode_attention"] == sum(s["attention"] for s in steps)
    assert turn_flops(TINY, 0, 10, 1)["decode"] == 0


def test_lora_params_and_their_flops_by_hand():
    # r * (in + out): q 16*128, k 16*96, v 16*96, o 16*128, gate/up 16*192, down 16*192
    per_layer = 2048 + 1536 + 1536 + 2048 + 3 * 3072
    assert lora_params(TINY, 16) == 2 * per_layer == 32768
    with_lora = forward_flops(TINY, 10, 0, lora=32768)
    assert with_lora["linear"] - forward_flops(TINY, 10, 0)["linear"] == 2 * 10 * 32768
    with pytest.raises(ValueError, match="unknown projection"):
        lora_params(TINY, 16, ["c_attn"])


def test_kv_bytes_match_the_real_cache(tiny_model):
    d = greedy(tiny_model, list(range(100, 130)), 5)
    # 30 prompt tokens + 4 fed decode tokens (the 5th is not fed back)
    assert cache_bytes(d.cache) == TINY.kv_bytes(34) == 2 * 2 * 2 * 16 * 34 * 4
    assert len(d.ids) == 5


def test_fixed_length_decode_masks_the_end_token(tiny_model):
    free = greedy(tiny_model, [1, 2, 3], 6)
    eos = free.ids[0]  # pretend the first greedy token is the end-of-turn token
    forced = greedy(tiny_model, [1, 2, 3], 6, eos_ids=[eos])
    assert len(forced.ids) == 6 and eos not in forced.ids
    stopped = greedy(tiny_model, [1, 2, 3], 6, eos_ids=[eos], stop_at_eos=True)
    assert stopped.ids == [eos]
