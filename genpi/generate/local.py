"""Local generation with transformers: batched, left-padded, greedy or sampled, with a shared-prefix KV cache.

Every teacher call starts with the same long prompt, and every role-play turn re-sends it. With
`prefix_cache=True` the backend finds the longest token prefix that all conversations of a batch
share, runs the model over it once (or reuses a cache it kept from an earlier call), repeats that
cache for each row and lays each row out as [prefix][padding][suffix] with attention-mask zeros on
the padding. Position ids come from the mask, so every row sees exactly the positions it would see
unpadded, and greedy outputs match the plain batched path (see tests/test_generate_local.py and
benchmarks/bench_teacher_cache.py).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch

from ..models import cache_kwargs, output_cache


class LocalBackend:
    """Generate with a loaded model + tokenizer (the base model, an adapter-wrapped model, or a generator).

    batch_size: conversations per `generate` call.
    prefix_cache: reuse the KV cache of the prefix that a batch's conversations share.
    min_prefix: shortest shared prefix (tokens) worth caching.
    keep_prefixes: how many prefix caches to keep between calls (least recently used is dropped).
    conversation_cache: continue each conversation from the kept KV cache of its own previous prompt
        (multi-turn episodes: each round prefills only the new turns, not the whole conversation again),
        rows of different lengths batched together; greedy decoding then drops each row from the batch
        the moment it is done, so the others run on a smaller batch. keep_prefixes should be at least
        the number of open conversations (plus one for the prompt they share).
    identity: a string that changes when the model changes (keys of the call cache; default: name).

    stop_when (attribute, default None): a function of a row's reply so far; when set, a row whose
    latest token holds a line break stops as soon as it returns True (e.g. the reply holds a whole
    action). Rows stop on their own; the others go on.
    """

    stop_when = None

    def __init__(self, model, tokenizer, name: str = "local", batch_size: int = 8, *,
                 prefix_cache: bool = True, min_prefix: int = 16, keep_prefixes: int = 8,
                 conversation_cache: bool = False, identity: str | None = None):
        self.model = model
        self.tok = tokenizer
        self.name = name
        self.identity = identity or name
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.min_prefix = min_prefix
        # every row of a batch keeps its cache (+ the prompt they share) while the batch runs
        self.keep_prefixes = max(keep_prefixes, batch_size + 1) if conversation_cache else keep_prefixes
        self.conversation_cache = conversation_cache
        self._prefixes: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._shared: set[tuple[int, ...]] = set()  # kept prefixes shared by many conversations
        self.stats = {"prefix_hits": 0, "prefix_builds": 0, "prefill_tokens_saved": 0}

    continues = True  # a conversation ending with an assistant turn is continued, not answered

    def encode(self, conv: list[dict]) -> list[int]:
        from ..models import encode_chat

        return encode_chat(self.tok, conv, "continue" if conv and conv[-1]["role"] == "assistant" else "generate")

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        ids = self.generate_ids([self.encode(c) for c in conversations], max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p, seed=seed)
        return [self.tok.decode(x, skip_special_tokens=True).strip() for x in ids]

    @torch.no_grad()
    def generate_ids(self, prompts: list[list[int]], *, max_new_tokens, temperature=0.0, top_p=1.0,
                     seed=None) -> list[list[int]]:
        """New token ids per prompt (up to and including the end-of-turn token, padding removed)."""
        out: list[list[int]] = []
        step = self._continue if self.conversation_cache else self._generate
        for i in range(0, len(prompts), self.batch_size):
            out += step(prompts[i:i + self.batch_size], max_new_tokens, temperature, top_p, seed)
        return out

    # -- one batch -----------------------------------------------------------------------
    def _generate(self, batch: list[list[int]], max_new_tokens, temperature, top_p, seed) -> list[list[int]]:
        n = shared_prefix_len(batch) if self.prefix_cache else 0
        if n >= self.min_prefix:
            ids, mask, cache = self._with_prefix(batch, n)
        else:
            ids, mask, cache = self._left_padded(batch)
        width = ids.shape[1]
        ids, mask = ids.to(self.model.device), mask.to(self.model.device)
        if seed is not None:
            torch.manual_seed(seed)
        sample = temperature > 0
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, **cache_kwargs(self.model, cache), max_new_tokens=max_new_tokens,
            do_sample=sample, temperature=temperature if sample else None, top_p=top_p if sample else None,
            top_k=None, pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
            **self._stopping(width))
        return [_until_eos(row[width:].tolist(), self.tok.eos_token_id) for row in out]

    def _continue(self, batch: list[list[int]], max_new_tokens, temperature, top_p, seed) -> list[list[int]]:
        """Conversations that go on from where they were: each row starts from the kept cache of the
        longest earlier prompt it extends (else from a prefix the new rows share), the rows are laid
        out as [padding][cached part][padding][new part] and generated as one batch; then each row's
        own prompt's cache is cut out of the batch's and kept for its next turn."""
        keys = [self._longest_kept(row, False) or self._longest_kept(row, True) for row in batch]
        for k in keys:
            if k is not None:
                self.stats["prefix_hits"] += 1
                self.stats["prefill_tokens_saved"] += len(k)
        fresh = [i for i, k in enumerate(keys) if k is None]
        if len(fresh) > 1 and self.prefix_cache:  # new conversations that share a prompt: prefill it once
            n = shared_prefix_len([batch[i] for i in fresh])
            if n >= self.min_prefix:
                key, _ = self._prefix_cache([batch[i] for i in fresh], n)
                self._shared.add(key)
                for i in fresh:
                    keys[i] = key
        lens = [len(k) if k is not None else 0 for k in keys]
        n_cached = max(lens)
        n_new = max(len(r) - n for r, n in zip(batch, lens))
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (n_cached - n) + r[:n] + [pad] * (n_new - len(r) + n) + r[n:]
                            for r, n in zip(batch, lens)], device=self.model.device)
        mask = torch.tensor([[0] * (n_cached - n) + [1] * n + [0] * (n_new - len(r) + n) + [1] * (len(r) - n)
                             for r, n in zip(batch, lens)], device=self.model.device)
        cache = self._stack([self._prefixes[k] if k is not None else None for k in keys], lens) if n_cached else None
        # where each row's own prompt lies in the batch layout: the part of the cache to keep for it
        wheres = [torch.tensor(list(range(n_cached - n, n_cached)) + list(range(n_cached + n_new - len(r) + n,
                                                                                   n_cached + n_new)), device=ids.device)
                  for r, n in zip(batch, lens)]
        for k in set(keys) - self._shared - {None}:
            self._prefixes.pop(k, None)  # each conversation's old cache gives way to its new one
        if temperature > 0:
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, **cache_kwargs(self.model, cache),
                max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p, top_k=None,
                pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id, return_dict_in_generate=True,
                **self._stopping(ids.shape[1]))
            kept = output_cache(out)
            for i, r in enumerate(batch):
                self._prefixes[tuple(r)] = _select(kept, i, wheres[i])
            width = ids.shape[1]
            new = [_until_eos(row[width:].tolist(), self.tok.eos_token_id) for row in out.sequences]
        else:
            new = self._greedy(batch, ids, mask, cache, n_cached, wheres, max_new_tokens)
        while len(self._prefixes) > self.keep_prefixes:
            self._shared.discard(self._prefixes.popitem(last=False)[0])
        return new

    def _greedy(self, batch, ids, mask, cache, n_cached, wheres, max_new_tokens) -> list[list[int]]:
        """Greedy decoding that drops a row from the batch as soon as it is done (end of turn, the
        token limit, or stop_when), keeping its prompt's cache; the rows left run on a smaller batch."""
        eos = self.tok.eos_token_id
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        if cache is None:
            from transformers import DynamicCache
            cache = DynamicCache()
        out = self.model(input_ids=ids[:, n_cached:], attention_mask=mask, position_ids=positions[:, n_cached:],
                         use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, cache))
        cache = output_cache(out)
        logits, nxt = out.logits[:, -1], positions[:, -1] + 1
        alive = list(range(len(batch)))
        gen: list[list[int]] = [[] for _ in batch]
        breaks = self._line_break_ids() if self.stop_when is not None else None
        while True:
            tokens = logits.argmax(-1)
            keep = []
            for j, (row, t) in enumerate(zip(alive, tokens.tolist())):  # one copy of the step's tokens
                gen[row].append(t)
                done = t == eos or len(gen[row]) >= max_new_tokens or (
                    breaks is not None and t in breaks
                    and bool(self.stop_when(self.tok.decode(gen[row], skip_special_tokens=True))))
                if done:
                    self._prefixes[tuple(batch[row])] = _select(cache, j, wheres[row])
                else:
                    keep.append(j)
            if not keep:
                return gen
            if len(keep) < len(alive):
                at = torch.tensor(keep, device=ids.device)
                cache.batch_select_indices(at)
                mask, tokens, nxt = mask[at], tokens[at], nxt[at]
                alive = [alive[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
            out = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=nxt[:, None],
                             use_cache=True, **cache_kwargs(self.model, cache))
            logits, nxt = out.logits[:, -1], nxt + 1

    def _line_break_ids(self) -> set[int]:
        """The vocabulary's tokens that hold a line break (where stop_when is asked), found once."""
        if getattr(self, "_line_breaks", None) is None:
            texts = self.tok.batch_decode([[i] for i in range(len(self.tok))])
            self._line_break_set = {i for i, t in enumerate(texts) if "\n" in t}
            self._line_breaks = torch.tensor(sorted(self._line_break_set))
        return self._line_break_set

    def _longest_kept(self, row: list[int], shared: bool) -> tuple[int, ...] | None:
        """The longest kept cache that `row` extends: an earlier prompt of its own conversation, or
        (shared=True) a prefix that many conversations share."""
        best = max((k for k in self._prefixes if (k in self._shared) == shared and self.min_prefix <= len(k) < len(row)
                    and tuple(row[:len(k)]) == k), key=len, default=None)
        if best is not None:
            self._prefixes.move_to_end(best)
        return best

    @staticmethod
    def _stack(caches: list, lens: list[int]):
        """One batch cache from per-row caches of different lengths (zeros on the left, masked)."""
        from transformers import DynamicCache

        first = next(c for c in caches if c is not None)
        width = max(lens)
        layers = []
        for j, layer in enumerate(first.layers):
            ks, vs = [], []
            for c, n in zip(caches, lens):
                k = c.layers[j].keys[:1, :, :n] if c is not None else layer.keys[:1, :, :0]
                v = c.layers[j].values[:1, :, :n] if c is not None else layer.values[:1, :, :0]
                ks.append(torch.nn.functional.pad(k, (0, 0, width - n, 0)))
                vs.append(torch.nn.functional.pad(v, (0, 0, width - n, 0)))
            layers.append((torch.cat(ks), torch.cat(vs)))
        return DynamicCache(layers)

    def _stopping(self, width: int) -> dict:
        if self.stop_when is None:
            return {}
        from transformers import StoppingCriteria, StoppingCriteriaList

        self._line_break_ids()
        tok, when, breaks = self.tok, self.stop_when, self._line_breaks.to(self.model.device)

        class _When(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                for i in torch.isin(input_ids[:, -1], breaks).nonzero().flatten().tolist():
                    done[i] = bool(when(tok.decode(input_ids[i, width:], skip_special_tokens=True)))
                return done

        return {"stopping_criteria": StoppingCriteriaList([_When()])}

    def _left_padded(self, batch):
        pad = self.tok.pad_token_id
        width = max(len(x) for x in batch)
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch])
        return ids, mask, None

    def _with_prefix(self, batch, n):
        """Rows laid out as [prefix][padding][suffix]; the prefix's KV cache computed once, repeated per row."""
        prefix, cache_n = self._prefix_cache(batch, n)
        pad = self.tok.pad_token_id
        tails = [x[cache_n:] for x in batch]
        width = max(len(t) for t in tails)
        head = list(prefix)
        ids = torch.tensor([head + [pad] * (width - len(t)) + t for t in tails])
        mask = torch.tensor([[1] * cache_n + [0] * (width - len(t)) + [1] * len(t) for t in tails])
        cache = copy.deepcopy(self._prefixes[prefix])
        cache.batch_repeat_interleave(len(batch))
        self.stats["prefill_tokens_saved"] += cache_n * (len(batch) - 1)
        return ids, mask, cache

    def _prefix_cache(self, batch, n):
        """The longest kept prefix that every row starts with (if it covers most of `n`), else a new one."""
        best = None
        for key in self._prefixes:
            k = len(key)
            if k <= n and (best is None or k > len(best)) and tuple(batch[0][:k]) == key:
                best = key
        if best is not None and n - len(best) <= max(32, n // 8):
            self._prefixes.move_to_end(best)
            self.stats["prefix_hits"] += 1
            self.stats["prefill_tokens_saved"] += len(best)
            return best, len(best)
        key = tuple(batch[0][:n])
        out = self.model(input_ids=torch.tensor([list(key)], device=self.model.device), use_cache=True,
                         logits_to_keep=1)
        self._prefixes[key] = output_cache(out)
        self.stats["prefix_builds"] += 1
        while len(self._prefixes) > self.keep_prefixes:
            self._prefixes.popitem(last=False)
        return key, n


def local_backend(ref, batch_size: int = 8, prefix_cache: bool = True) -> LocalBackend:
    """A LocalBackend over a resolved model (genpi.models.ModelRef), identified by its files' fingerprint."""
    from ..models import load_model, load_tokenizer

    return LocalBackend(load_model(ref), load_tokenizer(ref), name=ref.name, batch_size=batch_size,
                        prefix_cache=prefix_cache, identity=ref.fingerprint())


def shared_prefix_len(batch: list[list[int]]) -> int:
    """Length of the longest common token prefix, leaving every row at least one token after it."""
    if not batch:
        return 0
    shortest = min(len(x) for x in batch)
    first = batch[0]
    n = 0
    while n < shortest - 1 and all(x[n] == first[n] for x in batch):
        n += 1
    return n


def _select(cache, row: int, positions):
    """Row `row` of a batch cache, only the given positions, as a cache of its own."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys[row:row + 1].index_select(2, positions),
                          layer.values[row:row + 1].index_select(2, positions)) for layer in cache.layers])


def _until_eos(ids: list[int], eos: int | None) -> list[int]:
    """Cut the padding after the end-of-turn token (kept) of a finished row."""
    return ids[:ids.index(eos) + 1] if eos is not None and eos in ids else ids
