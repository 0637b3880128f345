"""Steps of training: each step is one SFT micro-batch and (for genpi) one PG micro-batch, length-grouped,
padded only to the longest sequence of its own micro-batch.

The whole schedule (all epochs) is drawn up front from the seed, so a resumed run replays the same steps;
Trainer walks it in order (train_sampling_strategy="sequential") with one step per dataloader item. Under
N processes the Trainer (accelerate) deals the items out in turn, so the plan is the same for any N; its
length is a multiple of the micro-steps per optimizer step, so no process pads its last step with a repeat.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .examples import IGNORE, Example

MEGA = 50  # length-sort within windows of MEGA batches, as HF's LengthGroupedSampler does


def length_grouped(indices: list[int], lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside large windows, cut into batches, shuffle the batches."""
    idx = list(indices)
    rng.shuffle(idx)
    batches = []
    for w in range(0, len(idx), MEGA * batch_size):
        window = sorted(idx[w:w + MEGA * batch_size], key=lambda i: -lengths[i])
        batches += [window[i:i + batch_size] for i in range(0, len(window), batch_size)]
    rng.shuffle(batches)
    return batches


def split_even(indices: list[int], lengths: list[int], n_groups: int, rng: random.Random) -> list[list[int]]:
    """`n_groups` length-sorted groups of near-equal size (sizes differ by at most one), in random order."""
    idx = sorted(indices, key=lambda i: -lengths[i])
    size, extra = divmod(len(idx), n_groups)
    groups, at = [], 0
    for g in range(n_groups):
        n = size + (1 if g < extra else 0)
        groups.append(idx[at:at + n])
        at += n
    rng.shuffle(groups)
    return groups


@dataclass(frozen=True)
class Plan:
    steps: list[dict[str, list[int]]]  # per micro-step: {"sft": [...], "pg": [...], "units": [...]} indices
    #                                     into the example lists (units: into the PG list)
    steps_per_epoch: int


def build_plan(sft_lengths: list[int], pg_pool: list[list[int]], pg_lengths: dict[int, int] | list[int],
               batch_size: int, epochs: float, pg_fraction: float, seed: int, multiple: int = 1,
               units: list[int] = ()) -> Plan:
    """Draw every micro-step of the run.

    sft_lengths: length of each SFT example (empty when the method has no SFT term).
    pg_pool: per record, its PG example indices by prompt section ([] when no PG); in epoch e record r
        gives section (r + e) mod k, so across epochs every record meets every section.
    A `pg_fraction` share of the PG records is drawn anew each epoch and spread evenly over the epoch's steps.
    units: PG examples (indices into the PG list) of the units the requests name (`--pg-units`); every epoch
        spreads all of them evenly over its steps, as each step's "units" (a term of its own).
    The step count is rounded up to a `multiple` (micro-steps per optimizer step, in all processes) with
    steps of the next epoch, so the last optimizer step is whole.
    """
    n_sft = len(sft_lengths)
    pg_records = [r for r, opts in enumerate(pg_pool) if opts]
    if n_sft:
        per_epoch = math.ceil(n_sft / batch_size)
    else:
        per_epoch = math.ceil(max(1, math.ceil(len(pg_records) * pg_fraction)) / batch_size)
    total = max(1, math.ceil(epochs * per_epoch))
    total = -(-total // multiple) * multiple
    steps: list[dict[str, list[int]]] = []
    e = 0
    while len(steps) < total:
        rng = random.Random(f"{seed}:{e}")
        sft_batches = length_grouped(list(range(n_sft)), sft_lengths, batch_size, rng) if n_sft else [[]] * per_epoch
        pg_groups = [[] for _ in sft_batches]
        if pg_records:
            m = max(math.ceil(len(pg_records) * pg_fraction), len(sft_batches) if n_sft else 0)
            chosen = rng.sample(pg_records, min(m, len(pg_records)))
            while len(chosen) < m:  # fewer PG records than steps: reuse some so every step has both terms
                chosen.append(rng.choice(pg_records))
            picks = [pg_pool[r][(r + e) % len(pg_pool[r])] for r in chosen]
            if n_sft:
                pg_groups = split_even(picks, pg_lengths, len(sft_batches), rng)
            else:
                pg_groups = length_grouped(picks, pg_lengths, batch_size, rng)
                sft_batches = [[] for _ in pg_groups]
        unit_groups = (split_even(list(units), pg_lengths, len(sft_batches), rng) if units
                       else [[] for _ in sft_batches])
        steps += [{"sft": s, "pg": p, "units": u} for s, p, u in zip(sft_batches, pg_groups, unit_groups)]
        e += 1
    return Plan(steps[:total], per_epoch)


class StepDataset(Dataset):
    """Item i = the examples of micro-step i, by kind ("sft", "pg", "units" (PG of a named unit), and "teacher"
    twins for a KL term), and the teacher twins' stored top-K rows ("teacher_topk") when the KL term reads
    them."""

    def __init__(self, plan: Plan, sft: list[Example], pg: list[Example], teacher: list[Example] | None = None,
                 teacher_topk: list[tuple] | None = None):
        self.plan, self.sft, self.pg, self.teacher, self.teacher_topk = plan, sft, pg, teacher, teacher_topk

    def __len__(self) -> int:
        return len(self.plan.steps)

    def __getitem__(self, i: int) -> dict[str, list[Example]]:
        step = self.plan.steps[i]
        item = {"sft": [self.sft[j] for j in step["sft"]], "pg": [self.pg[j] for j in step["pg"]],
                "units": [self.pg[j] for j in step.get("units", ())]}
        if self.teacher is not None:
            item["teacher"] = [self.teacher[j] for j in step["sft"]]
        if self.teacher_topk is not None:
            item["teacher_topk"] = [self.teacher_topk[j] for j in step["sft"]]
        return item


class StepCollator:
    """One dataloader item (a micro-step) -> flat tensors `{kind}_input_ids / _attention_mask / _labels`,
    each kind right-padded to its own longest sequence. Padding is never supervised."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, list[Example]]]) -> dict[str, torch.Tensor]:
        if len(items) != 1:
            raise ValueError("each dataloader item is already a whole micro-step: use per_device_train_batch_size=1")
        out = {}
        for kind, exs in items[0].items():
            if not exs:
                continue
            if kind == "teacher_topk":  # rows of every twin in turn: the order of the supervised targets
                width = max(ids.shape[1] for ids, _ in exs)
                out["teacher_topk_ids"] = torch.cat([F.pad(ids.long(), (0, width - ids.shape[1]), value=-1)
                                                     for ids, _ in exs])
                out["teacher_topk_logprobs"] = torch.cat([F.pad(lp.float(), (0, width - lp.shape[1]),
                                                                value=float("-inf")) for _, lp in exs])
                continue
            width = max(len(e) for e in exs)
            ids = torch.full((len(exs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(exs), width), dtype=torch.long)
            labels = torch.full((len(exs), width), IGNORE, dtype=torch.long)
            for r, e in enumerate(exs):
                n = len(e)
                ids[r, :n] = torch.tensor(e.input_ids)
                mask[r, :n] = 1
                labels[r, :n] = torch.tensor(e.labels)
            out[f"{kind}_input_ids"], out[f"{kind}_attention_mask"], out[f"{kind}_labels"] = ids, mask, labels
            if any(e.kl_skip for e in exs):  # which supervised tokens, in order, the KL term compares
                keep = []
                for e in exs:
                    row = torch.ones(e.n_supervised, dtype=torch.bool)
                    row[list(e.kl_skip)] = False
                    keep.append(row)
                out[f"{kind}_kl_keep"] = torch.cat(keep)
        return out
