"""Plain-text helpers for reading generator replies: cleaning, list parsing, normalising, similarity.

Nothing here knows one model family's chat markers: any `<|...|>`, `</s>`, `<end_of_turn>`-like
tag that leaks into a reply ends it, and lists are read from ordinary numbering and bullets.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

from ..generate.base import clean_reply

__all__ = ["clean_reply", "parse_list", "tidy_item", "normalize", "tokens", "similarity", "sentences"]

_ITEM = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):\]]|[-*\u2022\u2023\u25e6]|#{1,3}\s*\d{1,3}[.):]?)\s+(.*)$")
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:new\s+)?(?:problem|question|task|request|input|example|query|user)"
                    r"(?:\s*#?\s*\d{1,3})?\s*(?:\*\*)?\s*[:.\-\u2013]\s*(?:\*\*)?\s*", re.I)
_QUOTES = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00ab": '"', "\u00bb": '"', "`": "'"}
_WORD = re.compile(r"[/~.]?[a-z0-9]+(?:[./_-][a-z0-9]+)*")


def parse_list(reply: str) -> list[str]:
    """Items of a numbered or bulleted list; a reply without list markers gives its non-empty lines.

    A line that continues an item (no marker, after an item) is joined to it; a heading line that
    ends with ':' before the first item is dropped. Labels such as 'Problem 3:' and wrapping quotes
    or bold markers are removed from each item.
    """
    lead: list[str] = []   # lines before the first list marker (a lead-in, or the items of an unmarked list)
    items: list[str] = []
    for line in clean_reply(reply).splitlines():
        if not line.strip():
            continue
        m = _ITEM.match(line)
        if m:
            items.append(m.group(1))
        elif items:
            items[-1] = f"{items[-1]} {line.strip()}"
        else:
            lead.append(line)
    if not items:
        items = lead
    out = [tidy_item(x) for x in items]
    return [x for x in out if x and not x.endswith(":")]


def tidy_item(text: str) -> str:
    """Trim labels, bold markers and wrapping quotes from one list item."""
    t = " ".join(text.split())
    for _ in range(2):
        t = _LABEL.sub("", t, count=1).strip()
        t = t.strip("*_ ").strip()
        if len(t) >= 2 and t[0] in "\"'\u201c\u2018" and t[-1] in "\"'\u201d\u2019":
            t = t[1:-1].strip()
        elif len(t) >= 2 and t[0] in "\"\u201c" and t.count(t[0]) == 1 and '"' not in t[1:]:
            t = t[1:].strip()
    return t


def normalize(text: str) -> str:
    """Lower case, plain quotes, no punctuation but path-like characters, single spaces."""
    t = unicodedata.normalize("NFKC", text)
    t = "".join(_QUOTES.get(c, c) for c in t).lower()
    return " ".join(_WORD.findall(t))


def tokens(text: str) -> set[str]:
    return set(normalize(text).split())


def similarity(a: str, b: str) -> float:
    """Closeness of two texts in [0, 1]: the larger of character-level (difflib) and token-level (Jaccard) overlap.

    Both are computed on normalised text, so case, quotes and punctuation do not matter. A text that
    holds the other word for word (3 words or more) scores at least 0.9.
    """
    na, nb = normalize(a), normalize(b)
    if not na or not nb:
        return 1.0 if na == nb else 0.0
    if na == nb:
        return 1.0
    wa, wb = na.split(), nb.split()
    ta, tb = set(wa), set(wb)
    jac = len(ta & tb) / len(ta | tb)
    short, long_ = sorted((wa, wb), key=len)
    if len(short) >= 3 and f" {' '.join(short)} " in f" {' '.join(long_)} ":
        return max(jac, 0.9)  # one contains the other word for word: a cut-down or padded variant
    return max(jac, SequenceMatcher(None, na, nb, autojunk=False).ratio())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
