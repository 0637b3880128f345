"""Loss terms (hand-computed values), step planning and collation."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from genpi.errors import GenpiError
from genpi.kl import token_kl
from genpi.presets import stage_values
from genpi.train import losses
from genpi.train.batches import StepCollator, StepDataset, build_plan
from genpi.train.config import TrainConfig
from genpi.train.examples import IGNORE, Example


def test_token_nll_matches_hand_computation():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])  # [1, 2, 3]
    targets = torch.tensor([[1, 0]])
    total, n = losses.token_nll(logits, targets)
    want = math.log(3) + -math.log(math.e ** 2 / (math.e ** 2 + 2))
    assert n == 2 and total.item() == pytest.approx(want, rel=1e-6)
    total, n = losses.token_nll(logits, torch.tensor([[1, IGNORE]]))
    assert n == 1 and total.item() == pytest.approx(math.log(3), rel=1e-6)
    total, n = losses.token_nll(logits, torch.tensor([[IGNORE, IGNORE]]))
    assert n == 0 and total.item() == 0.0


def test_per_kind_token_means_do_not_mix_counts():
    # a PG batch with many tokens and an SFT batch with few: each term is a mean over its own tokens
    pg = losses.token_mean(torch.tensor(30.0), 10)
    sft = losses.token_mean(torch.tensor(2.0), 1)
    assert pg.item() == 3.0 and sft.item() == 2.0
    assert losses.joint_loss(pg, sft, 0.7).item() == pytest.approx(0.3 * 3.0 + 0.7 * 2.0)
    assert losses.token_mean(torch.tensor(0.0), 0).item() == 0.0


def test_joint_loss_endpoints():
    pg, sft = torch.tensor(5.0), torch.tensor(1.0)
    assert losses.joint_loss(pg, sft, 0.0).item() == 5.0
    assert losses.joint_loss(pg, sft, 1.0).item() == 1.0
    assert losses.joint_loss(None, sft, 1.0).item() == 1.0  # PG absent is fine when its weight is 0
    assert losses.joint_loss(pg, None, 0.0).item() == 5.0
    with pytest.raises(ValueError):
        losses.joint_loss(None, sft, 0.5)
    assert losses.sft_kl_loss(sft, torch.tensor(0.5), 2.0).item() == 2.0
    # genpi with a KL term: the joint loss plus the weighted KL; a missing KL with a weight is an error
    assert losses.joint_loss(pg, sft, 0.5, torch.tensor(0.25), 2.0).item() == pytest.approx(3.0 + 0.5)
    assert losses.joint_loss(pg, sft, 0.5, torch.tensor(0.25), 0.0).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        losses.joint_loss(pg, sft, 0.5, None, 1.0)


def test_token_kl_matches_hand_computation():
    t = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    s = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # second row: identical, 0
    assert token_kl(t, s).sum().item() == pytest.approx(want, rel=1e-5)
    assert token_kl(t, s)[1].item() == pytest.approx(0.0, abs=1e-7)
    assert token_kl(s, t).sum().item() != pytest.approx(want, rel=1e-3)  # teacher first: the order matters
    assert token_kl(t, t).sum().item() == pytest.approx(0.0, abs=1e-7)


def test_positions_and_targets_are_shifted_by_one():
    labels = torch.tensor([[IGNORE, IGNORE, 7, 8, IGNORE], [IGNORE, 5, IGNORE, IGNORE, IGNORE]])
    pos = losses.predict_positions(labels)
    assert pos.tolist() == [0, 1, 2]
    t = losses.targets_at(labels, pos)
    assert t.tolist() == [[IGNORE, 7, 8], [5, IGNORE, IGNORE]]
    logits = torch.arange(2 * 3 * 4, dtype=torch.float).reshape(2, 3, 4)
    rows = losses.supervised_rows(logits, t)
    assert torch.equal(rows, torch.stack([logits[0, 1], logits[0, 2], logits[1, 0]]))


def test_plan_covers_every_sft_example_once_per_epoch_and_pairs_pg():
    sft_len = [10 + i for i in range(10)]
    pg_pool = [[2 * r, 2 * r + 1] for r in range(10)]  # two prompt sections per record
    pg_len = [100 + i for i in range(20)]
    plan = build_plan(sft_len, pg_pool, pg_len, batch_size=3, epochs=2, pg_fraction=1.0, seed=0)
    assert plan.steps_per_epoch == 4 and len(plan.steps) == 8
    for e in range(2):
        epoch = plan.steps[e * 4:(e + 1) * 4]
        assert sorted(i for s in epoch for i in s["sft"]) == list(range(10))
        assert all(s["pg"] for s in epoch)  # every step carries both kinds
        pg = [i for s in epoch for i in s["pg"]]
        assert sorted(i // 2 for i in pg) == list(range(10))  # each record once per epoch
        assert {i % 2 for i in pg} == {0, 1}
        # record r gives section (r + e) mod 2: across the two epochs every record meets both sections
        assert all(i % 2 == (i // 2 + e) % 2 for i in pg)
    fewer = build_plan(sft_len, pg_pool, pg_len, batch_size=3, epochs=1, pg_fraction=0.2, seed=0)
    counts = [len(s["pg"]) for s in fewer.steps]
    assert counts == [1, 1, 1, 1]  # 20% of 10 is 2, but every step gets at least one PG example
    frac = build_plan(sft_len, pg_pool, pg_len, batch_size=3, epochs=2.5, pg_fraction=1.0, seed=0)
    assert len(frac.steps) == 10  # fractional epochs round up to whole steps
    named = build_plan(sft_len, pg_pool, pg_len + [5, 6, 7, 8, 9], batch_size=3, epochs=2, pg_fraction=0.2,
                       seed=0, units=[20, 21, 22, 23, 24])
    plain = build_plan(sft_len, pg_pool, pg_len, batch_size=3, epochs=2, pg_fraction=0.2, seed=0)
    assert [(s["sft"], s["pg"]) for s in named.steps] == [(s["sft"], s["pg"]) for s in plain.steps]  # as before
    for e in range(2):  # every epoch: all five named units, spread over its steps as a kind of their own
        epoch = named.steps[e * 4:(e + 1) * 4]
        assert sorted(i for s in epoch for i in s["units"]) == [20, 21, 22, 23, 24]
        assert sorted(len(s["units"]) for s in epoch) == [1, 1, 1, 2]
        assert all(i < 20 for s in epoch for i in s["pg"])
    assert all(s["units"] == [] for s in plan.steps)


def test_plan_groups_by_length_and_is_seeded():
    lens = [5, 500, 6, 480, 7, 490, 8, 470]
    plan = build_plan(lens, [], [], batch_size=2, epochs=1, pg_fraction=1.0, seed=3)
    for s in plan.steps:
        a, b = (lens[i] for i in s["sft"])
        assert (a > 100) == (b > 100)  # short with short, long with long
    assert build_plan(lens, [], [], 2, 1, 1.0, 3).steps == plan.steps
    assert build_plan(lens, [], [], 2, 3, 1.0, 3).steps[4:] != plan.steps  # a new shuffle each epoch


def test_collator_pads_each_kind_to_its_own_length_and_never_supervises_padding():
    pad = 2
    sft = [Example("sft", "a", (1, 5, 2), (IGNORE, 5, 2)), Example("sft", "b", (1, 2), (IGNORE, 2))]
    pg = [Example("pg", "a", tuple(range(3, 10)), (IGNORE,) * 3 + (6, 7, 8, 9))]
    ds = StepDataset(build_plan([3, 2], [[0]], [7], 2, 1, 1.0, 0), sft, pg)
    batch = StepCollator(pad)([ds[0]])
    assert batch["sft_input_ids"].shape == (2, 3) and batch["pg_input_ids"].shape == (1, 7)
    assert batch["sft_input_ids"][1].tolist() == [1, 2, 2]
    assert batch["sft_attention_mask"][1].tolist() == [1, 1, 0]
    assert batch["sft_labels"][1].tolist() == [IGNORE, 2, IGNORE]  # the real end token, not the pad after it
    assert "teacher_input_ids" not in batch


def test_config_validation_and_presets():
    cfg = TrainConfig.from_preset("quick", method="sft", lam=0.5, epochs=None)
    assert cfg.epochs == 4 == stage_values("quick", "train")["epochs"] and cfg.learning_rate == 5e-4
    assert cfg.lora_r == 16 and cfg.lora_alpha == 32 and cfg.lora_dropout == 0.0  # quick: no dropout (CPU cost)
    assert cfg.kl == 0.0  # the preset's KL term is genpi's: another method leaves it out
    assert TrainConfig.from_preset("quick").kl == 1.0 and TrainConfig.from_preset("paper").kl == 0.0
    assert TrainConfig.from_preset("paper").lora_dropout == 0.05  # the paper's recipe
    assert not cfg.uses_pg and cfg.uses_sft
    assert TrainConfig(method="genpi", lam=0.0).uses_sft is False
    for bad in (dict(lam=1.5), dict(lora_r=12), dict(method="dpo"), dict(epochs=0), dict(pg_fraction=0)):
        with pytest.raises(GenpiError):
            TrainConfig(**bad)
    assert Counter(TrainConfig.help_of(n) != "" for n in ("lam", "kl_weight", "pg_fraction"))[True] == 3


def test_on_policy_contexts_and_scored_batches():
    from genpi.train.on_policy import contexts, scored_batch

    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    labels = torch.tensor([[-100, -100, 7, 8, 9], [-100, -100, -100, -100, -100]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert contexts(ids, labels, mask) == [[5, 6], [5, 6, 7]]  # a row with nothing supervised: all of it
    b = scored_batch([[1, 2], [3]], [[7, 8, 2], [9]], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 7, 8, 2], [3, 9, 0, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert b["labels"].tolist() == [[-100, -100, 7, 8, 2], [-100, 9, -100, -100, -100]]


def test_reverse_kl_is_token_kl_with_the_student_first():
    from genpi.kl import token_kl

    s = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 0.0]])
    p, q = s.softmax(-1), t.softmax(-1)
    want = (p * (p.log() - q.log())).sum()
    got = token_kl(s, t).sum()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert s.grad.abs().sum() > 0  # the gradient reaches the adapter's logits
    assert losses.with_on_policy(torch.tensor(1.0), torch.tensor(0.5), 0.4).item() == pytest.approx(1.2)


def test_the_kl_mask_follows_the_supervised_tokens_of_each_row_in_order():
    """kl_skip of each SFT example becomes one flat keep-mask in the row-major order of the supervised targets
    (the order of the KL term's rows); kept_mean averages over the kept tokens only."""
    sft = [Example("sft", "a", (1, 5, 6, 2), (IGNORE, 5, 6, 2), kl_skip=(1,)),
           Example("sft", "b", (1, 7, 2), (IGNORE, 7, 2))]
    ds = StepDataset(build_plan([4, 3], [[], []], [], 2, 1, 0.0, 0), sft, [])
    batch = StepCollator(0)([ds[0]])
    order = [e.record for e in ds[0]["sft"]]
    want = {"a": [True, False, True], "b": [True, True]}
    assert batch["sft_kl_keep"].tolist() == want[order[0]] + want[order[1]]
    per_token = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    keep = torch.tensor([True, False, True, True, True])
    assert losses.kept_mean(per_token, keep).item() == pytest.approx((1 + 3 + 4 + 5) / 4)
    assert losses.kept_mean(per_token).item() == pytest.approx(3.0)
    with pytest.raises(RuntimeError, match="misaligned"):
        losses.kept_mean(per_token, keep[:3])
    plain = StepCollator(0)([StepDataset(build_plan([3], [[]], [], 1, 1, 0.0, 0), sft[1:], [])[0]])
    assert "sft_kl_keep" not in plain


def test_weighted_token_nll_counts_each_token_its_weight_times():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, IGNORE, 4], [IGNORE, 0, 2]])
    base, n = losses.token_nll(logits, targets)
    same, m = losses.token_nll(logits, targets, torch.ones(4))
    assert (m, same.item()) == (n, pytest.approx(base.item(), rel=1e-6))
    one = torch.nn.functional.cross_entropy(logits[0, 2][None], targets[0, 2][None])  # the 2nd supervised target
    more, _ = losses.token_nll(logits, targets, torch.tensor([1.0, 3.0, 1.0, 1.0]))
    assert more.item() == pytest.approx(base.item() + 2 * one.item(), rel=1e-5)
    with pytest.raises(RuntimeError, match="misaligned"):
        losses.token_nll(logits, targets, torch.ones(3))
