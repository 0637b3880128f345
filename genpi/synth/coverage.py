"""What the prompt is made of, and which of its parts the synthetic data touches.

A prompt is split into units, the parts a user's request can need: list items (facts, rules, tool
descriptions), paragraphs, fenced blocks, and each demonstration (a user turn with the agent's
answer). Headings are not units; they are kept as each unit's `section`. A paragraph of many
sentences, or a prompt with no visible structure, is split into sentences.

Pseudo inputs are then asked for unit by unit (and for pairs of units), least covered first
(synth/pipeline.py), and `coverage()` reports what the data holds: how many inputs each unit got,
and which units each teacher reply drew on, by word overlap with the unit's text (`drawn_on`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^\s*(#{1,6}\s+.+|[A-Z][^.!?\n]{0,60}:|[A-Z][A-Z0-9 &/()-]{2,60})\s*$")
_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|[a-z][.)])\s+")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z '&/-]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+(?:[.,:]\d+)*")
# common words that say nothing about which part of a prompt a reply used
STOP = frozenset("""a an the and or but if then else of to in on at by for with from as is are was were be been
being it its this that these those there here you your we our us i me my he she they them their his her not no
do does did done can could will would should may might must shall have has had having what which who whom when
where why how all any each every some such only own same so than too very just also about into over under
again further once more most other up down out off per one two new use used using get got make made please
reply replies answer user agent assistant""".split())


@dataclass(frozen=True)
class Unit:
    id: str          # "u1", "u2", ... in prompt order
    kind: str        # item | paragraph | sentence | block | example
    text: str
    section: str = ""  # the heading it sits under, if any

    def describe(self) -> str:
        """The unit as shown to the generator (with its heading, which often names what it is)."""
        return f"{self.section.rstrip(':')}: {self.text}" if self.section else self.text

def split_units(prompt: str | list[dict], max_sentences: int = 3) -> list[Unit]:
    """The units of a prompt: a text, or chat messages (system text split; user/assistant pairs as examples)."""
    raw: list[tuple[str, str, str]] = []  # (kind, text, section)
    if isinstance(prompt, str):
        raw = _split_text(prompt, max_sentences)
    else:
        msgs = [m if isinstance(m, dict) else m.model_dump() for m in prompt]
        i = 0
        while i < len(msgs):
            m = msgs[i]
            short = len(m["content"].split()) <= 60  # a long user turn holds instructions, not a request
            if m["role"] == "user" and short and i + 1 < len(msgs) and msgs[i + 1]["role"] == "assistant":
                raw.append(("example", f"User: {m['content'].strip()}\nAgent: {msgs[i + 1]['content'].strip()}", ""))
                i += 2
                continue
            if m["role"] == "assistant":  # a demonstrated reply whose request is part of the instructions
                raw.append(("example", f"Agent: {m['content'].strip()}", ""))
            else:
                raw += _split_text(m["content"], max_sentences)
            i += 1
    if len(raw) == 1 and raw[0][0] in ("paragraph", "item"):  # no visible structure: its sentences
        sentences = _sentences(raw[0][1])
        if len(sentences) > 1:
            raw = [("sentence", s, raw[0][2]) for s in sentences]
    raw = [r for r in raw if len(_WORD.findall(r[1])) >= 2]
    return [Unit(f"u{i}", kind, text, section) for i, (kind, text, section) in enumerate(raw, 1)]


def _split_text(text: str, max_sentences: int) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    section = ""
    block: list[str] = []      # the paragraph or list item being read
    kind = "paragraph"
    fence: list[str] | None = None

    def flush() -> None:
        nonlocal block
        body = " ".join(line.strip() for line in block).strip()
        block = []
        if not body:
            return
        sentences = _sentences(body)
        if kind == "paragraph" and len(sentences) > max_sentences:
            out.extend(("sentence", s, section) for s in sentences)
        else:
            out.append((kind, body, section))

    lines = text.splitlines()
    for at, line in enumerate(lines):
        if fence is not None:
            fence.append(line)
            if _FENCE.match(line):
                out.append(("block", "\n".join(fence).strip(), section))
                fence = None
            continue
        if _FENCE.match(line):
            flush()
            fence = [line]
            continue
        if not line.strip():
            flush()
            continue
        if _ITEM.match(line):
            flush()
            kind, block = "item", [_ITEM.sub("", line, count=1)]
            continue
        if not block and len(_WORD.findall(line)) <= 8 and (_HEADING.match(line) or _titles_list(line, lines[at + 1:])):
            section = line.strip().lstrip("#").strip()
            continue
        if kind == "item" and block and (line.startswith((" ", "\t"))):
            block.append(line)  # an item's continuation line
            continue
        if kind == "item" and block:
            flush()
        if not block:
            kind = "paragraph"
        block.append(line)
    if fence is not None:
        out.append(("block", "\n".join(fence).strip(), section))
    flush()
    return out


def _titles_list(line: str, rest: list[str]) -> bool:
    """A short line without closing punctuation directly above a list ("IT-1 Accounts", "Pricing") is a heading."""
    if line.rstrip().endswith((".", "!", "?", ",", ";")):
        return False
    following = next((r for r in rest if r.strip()), "")
    return bool(_ITEM.match(following))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def content_sequence(text: str) -> list[str]:
    """The words that tell texts apart, in order: lower-cased, without common words; numbers kept as they are."""
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in STOP and (len(w) > 2 or w.isdigit())]


def content_words(text: str) -> set[str]:
    return set(content_sequence(text))


def distinctive_words(units: list[Unit]) -> dict[str, tuple[set[str], set[str]]]:
    """Each unit's (distinctive, own) words: its content words less those that many units share
    ("euros" and "day" in a price list say nothing about which price was used; a unit left with
    none keeps all), and those no other unit has."""
    words = {u.id: content_words(u.text) for u in units}
    df: dict[str, int] = {}
    for ws in words.values():
        for w in ws:
            df[w] = df.get(w, 0) + 1
    common = max(2, len(units) // 4)
    return {uid: ({w for w in ws if df[w] <= common} or ws, {w for w in ws if df[w] == 1})
            for uid, ws in words.items()}


def topics(units: list[Unit]) -> dict[str, str]:
    """What a request about each unit would name, without giving its content away, for the units that
    have one: a list item's own label ("Tandem" of "Tandem: 28 euros a day"). A heading is not one: it
    names several units, and asked about a heading ("What about the devices?") the embedded model said
    the policy did not cover it."""
    out = {}
    for u in units:
        head, sep, _ = u.text.partition(":")
        if u.kind == "item" and sep and _LABEL.match(head.strip()) and len(head.split()) <= 5:
            out[u.id] = head.strip()
    return out


def on_target(request: str, words: set[str]) -> bool:
    """Whether a request aimed at a unit names any of `words`, the unit's distinctive words and its
    topic's: a small generator asked for requests about one fact mostly writes about something else."""
    return bool(content_words(request) & words)


def drawn_on(reply: str, units: list[Unit], threshold: float = 0.3, min_shared: int = 2,
             distinctive: dict[str, set[str]] | None = None) -> list[str]:
    """Ids of the units a reply draws on: at least `threshold` of the unit's distinctive words (or
    three of them), at least `min_shared` (or all when it has fewer), and one of its own words when
    it has any, appear in the reply. Demonstrations are left out (a reply in the demonstrated form
    is not a use of that example's content)."""
    said = content_words(reply)
    distinctive = distinctive or distinctive_words(units)
    used = []
    for u in units:
        if u.kind == "example":
            continue
        words, own = distinctive[u.id]
        shared = len(words & said)
        if (words and (shared / len(words) >= threshold or shared >= 3) and shared >= min(min_shared, len(words))
                and (not own or own & said)):
            used.append(u.id)
    return used


def named_in(request: str, units: list[Unit], most: int = 1) -> list[str]:
    """Ids of the units a request names, best named first, at most `most`: a word of the unit's that no other
    unit has ("tandem", "cheques", "helmets"), or two words that at most two other units share; a plural
    matches its singular. Demonstrations are neither named nor counted (they repeat the facts' words)."""
    def base(words: set[str]) -> set[str]:
        return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words}

    asked = base(content_words(request))
    words = {u.id: base(content_words(u.text)) for u in units if u.kind != "example"}
    df: dict[str, int] = {}
    for ws in words.values():
        for w in ws:
            df[w] = df.get(w, 0) + 1
    scored = []
    for uid, ws in words.items():
        own, rare = {w for w in ws if df[w] == 1} & asked, {w for w in ws if df[w] <= 3} & asked
        if own or len(rare) >= 2:
            scored.append((-len(own), -len(rare), list(words).index(uid), uid))
    return [uid for *_, uid in sorted(scored)[:most]]


def asked_unit(request: str, units: list[Unit], aimed: tuple[str, ...] = (),
               distinctive: dict[str, tuple[set[str], set[str]]] | None = None) -> Unit | None:
    """The fact or rule a request asks about, if it says: the first unit it was aimed at whose distinctive
    words it uses, else the unit it names (named_in); never a demonstration."""
    distinctive = distinctive or distinctive_words(units)
    by_id = {u.id: u for u in units}
    said = content_words(request)
    ids = [u for u in aimed if u in by_id and by_id[u].kind != "example" and said & distinctive[u][0]]
    ids = ids or named_in(request, units)
    return by_id[ids[0]] if ids else None


def question_pairs(units: list[Unit], requests: list[str]) -> list[tuple[str, str]]:
    """(unit id, request) pairs that show which request a fact or rule answers: each demonstration's
    request with the unit its demonstrated answer draws on most, and each request in `requests` (the
    scenario's seed inputs) with the unit it names. `--unit-questions` shows a few of them to the
    generator before the unit it should ask about."""
    distinctive = distinctive_words(units)
    pairs = []
    for u in units:
        request, sep, answer = u.text.partition("\nAgent: ")
        if u.kind == "example" and sep and request.startswith("User: "):
            said = content_words(answer)
            used = drawn_on(answer, units, distinctive=distinctive)
            used.sort(key=lambda uid: -len(distinctive[uid][0] & said))
            pairs += [(uid, request.removeprefix("User: ").strip()) for uid in used[:1]]
    for x in requests:
        pairs += [(uid, " ".join(x.split())) for uid in named_in(x, units)]
    return list(dict.fromkeys(pairs))


_FIRST_SENTENCE = re.compile(r"[.!?](?=\s|$)")


def citing(reply: str, text: str) -> list[str]:
    """`reply` with the unit's `text` put in, in the order to try: after the reply's first sentence (where a
    fixed opening such as a greeting ends), at its start, at its end."""
    text = " ".join(text.split())
    m = _FIRST_SENTENCE.search(reply)
    out = []
    if m and reply[m.end():].strip():
        out.append(f"{reply[:m.end()].rstrip()} {text} {reply[m.end():].lstrip()}")
    out += [f"{text} {reply.lstrip()}", f"{reply.rstrip()} {text}"]
    return out


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    seq = content_sequence(text)
    return {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}


class DemoCopies:
    """Whether a reply repeats a demonstrated reply's wording (a run of `n` content words in a row) to
    another request: a small prompted model often answers "What is a tandem?" with the demonstration's
    "12 euros a day, so a week of 7 days costs 84 euros" made over, and an adapter trained on such
    replies learns the template, not the facts. A run counts when at least two of its words are the
    demonstration's own, in no fact or rule of the prompt (quoting the prompt is using it; a fixed
    greeting is in a rule), and not in a reply to the demonstration's own request."""

    def __init__(self, units: list[Unit], n: int = 6):
        said = set().union(*(content_words(u.text) for u in units if u.kind != "example"))
        self.n, self.demos = n, []
        for u in units:
            if u.kind == "example":
                request, _, reply = u.text.rpartition("Agent: ")
                grams = {g for g in _ngrams(reply, n) if len(set(g) - said) >= 2}
                if grams:
                    self.demos.append((" ".join(request.removeprefix("User: ").split()).lower(), grams))

    def __call__(self, reply: str, request: str = "") -> bool:
        asked = " ".join(request.split()).lower()
        said = _ngrams(reply, self.n)
        return any(said & grams for req, grams in self.demos if not (req and req in asked))


def coverage(units: list[Unit], inputs_per_unit: dict[str, int], teacher_units: dict[str, list[str]],
             k: int = 2, demo_copies: int | None = None) -> dict:
    """meta.json's coverage object: units, inputs aimed at each, teacher replies drawing on each, and
    (demo_copies) how many teacher replies repeat a demonstration's wording (DemoCopies)."""
    drawn: dict[str, int] = {u.id: 0 for u in units}
    for ids in teacher_units.values():
        for uid in ids:
            if uid in drawn:
                drawn[uid] += 1
    return {"units": len(units), "k": k,
            "units_with_k_inputs": sum(inputs_per_unit.get(u.id, 0) >= k for u in units),
            "units_drawn_on": sum(n > 0 for n in drawn.values()),
            **({} if demo_copies is None else {"teacher_demo_copies": demo_copies}),
            "per_unit": {u.id: {"kind": u.kind, "text": u.text[:120], "inputs": inputs_per_unit.get(u.id, 0),
                                "teacher_replies": drawn[u.id]} for u in units},
            "teacher_units": teacher_units}
