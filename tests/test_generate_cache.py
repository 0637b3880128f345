"""CachedBackend: stored replies come back without a call, only the missing ones are generated."""

from __future__ import annotations

import json

import pytest

from genpi.errors import GenpiError
from genpi.generate import CachedBackend, FakeBackend


def _conv(text):
    return [{"role": "user", "content": text}]


def _echo(name="fake", **kw):
    n = {"calls": 0}

    def reply(conv):
        n["calls"] += 1
        return f"{conv[-1]['content'].upper()}#{n['calls']}"

    return FakeBackend(reply, name=name, **kw)


def test_a_hit_makes_no_call_and_survives_a_restart(tmp_path):
    path = tmp_path / "calls.jsonl"
    fake = _echo()
    cached = CachedBackend(fake, path, "model-a")
    first = cached.chat([_conv("a"), _conv("b")], max_new_tokens=8)
    assert first == ["A#1", "B#2"] and len(fake.calls) == 1
    assert cached.chat([_conv("a"), _conv("b")], max_new_tokens=8) == first and len(fake.calls) == 1
    cached.close()
    assert [json.loads(x)["reply"] for x in path.read_text().splitlines()] == ["A#1", "B#2"]
    again = _echo()
    assert CachedBackend(again, path, "model-a").chat([_conv("b"), _conv("a")], max_new_tokens=8) == ["B#2", "A#1"]
    assert again.calls == []


def test_a_partial_batch_sends_only_the_missing_in_one_call_in_order(tmp_path):
    fake = _echo()
    cached = CachedBackend(fake, tmp_path / "calls.jsonl", "m")
    cached.chat([_conv("a"), _conv("c")], max_new_tokens=8, temperature=0.7, top_p=0.9, seed=3)
    out = cached.chat([_conv("a"), _conv("b"), _conv("c"), _conv("d")], max_new_tokens=8, temperature=0.7,
                      top_p=0.9, seed=3)
    assert out == ["A#1", "B#3", "C#2", "D#4"]
    assert len(fake.calls) == 2 and fake.calls[1]["conversations"] == [_conv("b"), _conv("d")]
    assert fake.calls[1] | {"conversations": None} == {"conversations": None, "max_new_tokens": 8,
                                                        "temperature": 0.7, "top_p": 0.9, "seed": 3}
    assert (cached.hits, cached.misses) == (2, 4)


@pytest.mark.parametrize("change", [{"temperature": 0.7}, {"seed": 1}, {"top_p": 0.5}, {"max_new_tokens": 9},
                                    {"identity": "model-b"}, {"messages": _conv("other")}])
def test_the_key_changes_with_every_part(tmp_path, change):
    req = {"identity": "model-a", "messages": _conv("a"), "max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0,
           "seed": None}
    changed = {**req, **change}

    def key(r):
        return CachedBackend(FakeBackend(), tmp_path / "c.jsonl", r["identity"]).key(
            r["messages"], **{k: r[k] for k in ("max_new_tokens", "temperature", "top_p", "seed")})

    assert key(req) != key(changed)
    assert key(req) == key({**req, "temperature": 0})  # 0 and 0.0 are one setting


def test_a_different_identity_or_setting_misses(tmp_path):
    path = tmp_path / "calls.jsonl"
    a, b = _echo("a"), _echo("b")
    ca, cb = CachedBackend(a, path), CachedBackend(b, path)  # identity: the fakes' names; one shared file
    assert ca.identity == "a" and cb.identity == "b"
    assert ca.chat([_conv("x")], max_new_tokens=4) == ["X#1"]
    assert cb.chat([_conv("x")], max_new_tokens=4) == ["X#1"] and len(b.calls) == 1
    ca.chat([_conv("x")], max_new_tokens=4, temperature=0.7, seed=1)
    ca.chat([_conv("x")], max_new_tokens=4, temperature=0.7, seed=2)
    assert len(a.calls) == 3
    ca.close(), cb.close()
    assert len(CachedBackend(FakeBackend(), path).replies) == 4


def test_repeats_in_one_call_keep_their_own_replies(tmp_path):
    path = tmp_path / "calls.jsonl"
    fake = _echo()
    out = CachedBackend(fake, path, "m").chat([_conv("a"), _conv("a"), _conv("b")], max_new_tokens=4,
                                              temperature=1.0, seed=5)
    assert out == ["A#1", "A#2", "B#3"]
    later = _echo()
    assert CachedBackend(later, path, "m").chat([_conv("a"), _conv("a")], max_new_tokens=4, temperature=1.0,
                                                seed=5) == ["A#1", "A#2"]
    assert later.calls == []


def test_a_torn_last_line_is_cut_off(tmp_path):
    path = tmp_path / "calls.jsonl"
    cached = CachedBackend(_echo(), path, "m")
    cached.chat([_conv("a")], max_new_tokens=4)
    cached.close()
    with path.open("a") as f:
        f.write('{"key": "abc", "rep')  # a run killed mid-write
    fake = _echo()
    cached = CachedBackend(fake, path, "m")
    assert cached.chat([_conv("a"), _conv("b")], max_new_tokens=4) == ["A#1", "B#1"]
    cached.close()
    assert [json.loads(x)["reply"] for x in path.read_text().splitlines()] == ["A#1", "B#1"]


def test_a_broken_line_inside_the_file_is_one_line_error(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text('not json\n{"key": "k", "reply": "r"}\n')
    with pytest.raises(GenpiError, match=r"line 1 is not valid .*: delete calls.jsonl"):
        CachedBackend(FakeBackend(), path, "m")


def test_name_and_continues_pass_through(tmp_path):
    cached = CachedBackend(FakeBackend(name="gen", continues=True), tmp_path / "c.jsonl")
    assert (cached.name, cached.continues, cached.identity) == ("gen", True, "gen")
    assert CachedBackend(FakeBackend(), tmp_path / "c.jsonl").continues is False
    assert not (tmp_path / "c.jsonl").exists()  # nothing generated, nothing written
