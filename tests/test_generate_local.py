"""LocalBackend: the shared-prefix KV cache gives the same greedy tokens as plain left-padded batching."""

from __future__ import annotations

import pytest
import torch

from genpi.generate import LocalBackend
from genpi.generate.local import shared_prefix_len

PROMPT = [{"role": "system", "content": "You are a careful shell agent. " * 12}]
QUESTIONS = ["How many users?", "Show the disk usage of /var/log please.", "Which kernel is this?",
             "List the five biggest files in /opt, largest first.", "What time is it?"]


@pytest.fixture(scope="module")
def model(tiny_ref):
    """The tiny Llama with other random weights: its greedy replies are not all newlines."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(tiny_ref.path)
    cfg.initializer_range = 0.5  # peaked logits, so greedy replies vary from token to token
    torch.manual_seed(7)
    m = AutoModelForCausalLM.from_config(cfg)
    return m.eval()


def _convs(extra_turns=False):
    out = []
    for q in QUESTIONS:
        conv = PROMPT + [{"role": "user", "content": q}]
        if extra_turns:
            conv += [{"role": "assistant", "content": "Think: run it."}, {"role": "user", "content": "output: 3"}]
        out.append(conv)
    return out


def test_shared_prefix_len():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # leaves one token to feed generate
    assert shared_prefix_len([[1, 2], [3, 4]]) == 0
    assert shared_prefix_len([]) == 0


def test_prefix_cache_matches_plain_batches(model, tiny_tok):
    plain = LocalBackend(model, tiny_tok, batch_size=3, prefix_cache=False)
    cached = LocalBackend(model, tiny_tok, batch_size=3)
    prompts = [plain.encode(c) for c in _convs()]
    want = plain.generate_ids(prompts, max_new_tokens=12)
    got = cached.generate_ids(prompts, max_new_tokens=12)
    assert got == want
    assert sum(len(set(x)) > 2 for x in want) >= 3  # a real comparison, not all-newline replies
    assert cached.stats["prefix_builds"] >= 1 and cached.stats["prefill_tokens_saved"] > 0
    assert plain.stats["prefix_builds"] == 0


def test_prefix_cache_is_reused_across_calls_and_turns(model, tiny_tok):
    cached = LocalBackend(model, tiny_tok, batch_size=8)
    plain = LocalBackend(model, tiny_tok, batch_size=8, prefix_cache=False)
    cached.chat(_convs(), max_new_tokens=4)
    builds = cached.stats["prefix_builds"]
    # the next role-play turn starts with the same prompt: the kept prefix is reused, outputs unchanged
    turn2 = _convs(extra_turns=True)
    assert cached.chat(turn2, max_new_tokens=8) == plain.chat(turn2, max_new_tokens=8)
    assert cached.stats["prefix_hits"] >= 1 and cached.stats["prefix_builds"] == builds


def test_sampling_is_seeded(model, tiny_tok):
    b = LocalBackend(model, tiny_tok)
    a1 = b.chat(_convs()[:2], max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
    a2 = b.chat(_convs()[:2], max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
    assert a1 == a2 and all(isinstance(x, str) for x in a1)


def test_short_batches_skip_the_cache(model, tiny_tok):
    b = LocalBackend(model, tiny_tok, min_prefix=10_000)
    b.chat(_convs()[:2], max_new_tokens=2)
    assert b.stats["prefix_builds"] == 0


def test_a_started_assistant_turn_is_continued_not_answered(model, tiny_tok):
    be = LocalBackend(model, tiny_tok, batch_size=2)
    assert be.continues
    user = [{"role": "user", "content": "List three shell tasks."}]
    started = user + [{"role": "assistant", "content": "1. Count users\n2."}]
    ids = be.encode(started)
    text = tiny_tok.decode(ids)
    assert text.endswith("1. Count users\n2.")  # no end-of-turn marker, no new assistant header after it
    assert ids[:len(be.encode(user))] == be.encode(user)  # the same opening as answering the user turn
    out = be.chat([started], max_new_tokens=4)
    assert isinstance(out[0], str)


def test_conversation_cache_continues_each_episode_from_its_own_last_prompt(model, tiny_tok):
    """Round after round, each conversation prefills only its new turns; the tokens are those of a plain run."""
    plain = LocalBackend(model, tiny_tok, batch_size=5, prefix_cache=False)
    episodes = LocalBackend(model, tiny_tok, batch_size=5, conversation_cache=True, keep_prefixes=10)
    convs = [PROMPT + [{"role": "user", "content": q}] for q in QUESTIONS]
    for round_ in range(3):
        want = plain.chat(convs, max_new_tokens=10)
        got = episodes.chat(convs, max_new_tokens=10)
        assert got == want, round_
        convs = [c + [{"role": "assistant", "content": r}, {"role": "user", "content": f"output: {round_}"}]
                 for c, r in zip(convs, want)]
    assert sum(len(set(r)) > 3 for r in want) >= 3  # a real comparison
    assert episodes.stats["prefix_hits"] == 2 * len(QUESTIONS)  # rounds 2 and 3 continued every episode
    assert episodes.stats["prefix_builds"] == 1  # the prompt they share, prefilled once in round 1
    assert len(episodes._prefixes) == len(QUESTIONS) + 1  # one kept cache per open conversation + the prompt


def test_conversation_cache_batches_rows_that_come_and_go(model, tiny_tok):
    """Episodes end and new ones join between rounds (slot refill); rows of very different lengths
    share a batch; a lone newcomer starts from the kept prompt. Tokens equal a plain run's."""
    plain = LocalBackend(model, tiny_tok, batch_size=3, prefix_cache=False)
    episodes = LocalBackend(model, tiny_tok, batch_size=3, conversation_cache=True, keep_prefixes=8)
    open_ = {i: PROMPT + [{"role": "user", "content": QUESTIONS[i]}] for i in range(3)}
    waiting = [3, 4]
    seen = 0
    for round_ in range(4):
        order = sorted(open_)
        convs = [open_[i] for i in order]
        want = plain.chat(convs, max_new_tokens=8)
        got = episodes.chat(convs, max_new_tokens=8)
        assert got == want, round_
        seen += sum(len(set(r)) > 3 for r in want)
        for i, r in zip(order, want):
            open_[i] = open_[i] + [{"role": "assistant", "content": r},
                                   {"role": "user", "content": f"output of round {round_}: " + "x" * (9 * i)}]
        if waiting:  # one episode ends, the next problem takes its slot
            open_.pop(order[0])
            j = waiting.pop(0)
            open_[j] = PROMPT + [{"role": "user", "content": QUESTIONS[j]}]
    assert seen >= 4  # a real comparison
    assert episodes.stats["prefix_builds"] == 1  # later newcomers reuse the kept prompt
    assert len(episodes._prefixes) <= 8


@pytest.mark.parametrize("conversation_cache", [False, True])
def test_stop_when_ends_each_row_at_its_own_line_break(model, tiny_tok, conversation_cache):
    """A row stops at the first line break after which stop_when says so; the other rows go on."""
    plain = LocalBackend(model, tiny_tok, batch_size=5, prefix_cache=False)
    stopping = LocalBackend(model, tiny_tok, batch_size=5, conversation_cache=conversation_cache)
    seen: list[str] = []
    stopping.stop_when = lambda text: seen.append(text) or "\n" in text  # at the first line break
    prompts = [plain.encode(c) for c in _convs()]
    want = plain.generate_ids(prompts, max_new_tokens=40)
    got = stopping.generate_ids(prompts, max_new_tokens=40)
    breaks = [i for i in range(len(tiny_tok)) if "\n" in tiny_tok.decode([i])]
    cut = 0
    for w, g in zip(want, got):
        at = [j for j, t in enumerate(w) if t in breaks and "\n" in tiny_tok.decode(w[:j + 1])]
        expected = w[:at[0] + 1] if at else w
        # a stopped row is padded after its stop, and the pad token here is the end-of-turn token
        assert g in (expected, expected + [tiny_tok.pad_token_id])
        cut += len(expected) < len(w)
    assert cut >= 1 and seen  # some row really stopped early
