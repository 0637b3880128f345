"""Analytic inference FLOPs of a Llama-family decoder, from its config alone.

One multiply-add counts as 2 FLOPs. For one forward call that feeds `n` new tokens on top of
`p` tokens already in the KV cache:

    linear    = 2 * n * (W_body + W_lora)            every new token goes through every projection
    head      = 2 * hidden * vocab                   the LM head runs on the last position only
                                                     (prefill asks for one row of logits, as serving
                                                     engines and `generate` do)
    attention = 4 * layers * heads * head_dim * sum_{i=p+1}^{p+n} i
              = 4 * layers * heads * head_dim * (n * p + n * (n + 1) / 2)
                                                     QK^T and AV (2 FLOPs each per query, key and
                                                     head dimension); token i attends over i keys

    W_body = layers * (hidden * heads * head_dim          q_proj
                       + 2 * hidden * kv_heads * head_dim  k_proj, v_proj
                       + heads * head_dim * hidden          o_proj
                       + 3 * hidden * intermediate)         gate_proj, up_proj, down_proj
    W_lora = sum over adapted projections of rank * (in + out)   (0 for the base or a merged model;
                                                     an unmerged LoRA runs A then B beside W)

A turn of a conversation is one prefill of the new tokens followed by `reply - 1` one-token decode
calls (the prefill's logits give the first reply token). Not counted: embedding lookups, norms,
activations, rotary embeddings, softmax, residual and bias adds (all O(hidden) per token, under 1%
here). Attention counts the causal half only, the work a causal kernel must do.

KV-cache bytes for `s` cached tokens: 2 (K and V) * layers * kv_heads * head_dim * s * bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GenpiError

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    """The numbers of a decoder's config that decide its inference cost."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, cfg) -> Shape:
        cfg = getattr(cfg, "get_text_config", lambda: cfg)()
        try:
            heads = cfg.num_attention_heads
            return cls(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, intermediate=cfg.intermediate_size,
                       heads=heads, kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
                       head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads, vocab=cfg.vocab_size)
        except AttributeError as e:
            raise GenpiError(f"cannot count FLOPs for model type '{getattr(cfg, 'model_type', '?')}' "
                             f"(its config lacks {e.name}): bench supports Llama-family decoders")

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear projection in one decoder layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def body_params(self) -> int:
        """Weights of all linear projections in the decoder layers (LM head excluded)."""
        return self.layers * sum(a * b for a, b in self.projections().values())

    @property
    def head_params(self) -> int:
        return self.hidden * self.vocab

    def kv_bytes(self, tokens: int, bytes_per_value: int = 4) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * tokens * bytes_per_value


def lora_params(shape: Shape, rank: int, targets: tuple[str, ...] | list[str] = LLAMA_PROJECTIONS) -> int:
    """Parameters of a LoRA adapter of `rank` on the named projections of every layer."""
    proj = shape.projections()
    unknown = set(targets) - set(proj)
    if unknown:
        raise ValueError(f"unknown projection(s) {sorted(unknown)}; expected some of {LLAMA_PROJECTIONS}")
    return shape.layers * sum(rank * (proj[t][0] + proj[t][1]) for t in targets)


def attention_flops(shape: Shape, n_new: int, n_past: int) -> int:
    """QK^T and AV for `n_new` queries after `n_past` cached tokens (causal)."""
    keys = n_new * n_past + n_new * (n_new + 1) // 2
    return 4 * shape.layers * shape.heads * shape.head_dim * keys


def forward_flops(shape: Shape, n_new: int, n_past: int = 0, lora: int = 0) -> dict[str, int]:
    """FLOPs of one forward call, split into linear (incl. LoRA), head and attention."""
    if n_new < 1 or n_past < 0:
        raise ValueError(f"need n_new >= 1 and n_past >= 0 (got {n_new}, {n_past})")
    return {"linear": 2 * n_new * (shape.body_params + lora), "head": 2 * shape.head_params,
            "attention": attention_flops(shape, n_new, n_past)}


def turn_flops(shape: Shape, n_past: int, n_prefill: int, reply: int, lora: int = 0) -> dict[str, int]:
    """One agent turn: prefill `n_prefill` tokens after `n_past` cached ones, then decode `reply` tokens.

    Returns prefill and decode totals and the attention share of each, in FLOPs.
    """
    pre = forward_flops(shape, n_prefill, n_past, lora)
    dec = {"linear": 0, "head": 0, "attention": 0}
    for j in range(reply - 1):  # the first reply token comes from the prefill's logits
        for k, v in forward_flops(shape, 1, n_past + n_prefill + j, lora).items():
            dec[k] += v
    return {"prefill": sum(pre.values()), "decode": sum(dec.values()),
            "prefill_attention": pre["attention"], "decode_attention": dec["attention"]}
