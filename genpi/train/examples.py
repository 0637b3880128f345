"""Training examples from records: SFT (conversation without the prompt), PG (prompt generation), and the
teacher-side twins used by the KL term. Masks come from `masking.assistant_spans`; prompts and inputs are
joined only by `scenario.student_messages` / `teacher_messages`.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import sys
from dataclasses import dataclass, field, replace

from ..errors import GenpiError
from ..artifacts import Record
from ..scenario import Scenario, student_messages, teacher_messages
from .config import TrainConfig
from .masking import assistant_spans, tokens_of

IGNORE = -100

# The prompt-generation instruction, in our own words. {ask} says what to write (the whole hidden
# context or one part of it); the three texts follow under plain headings.
PG_TASK = (
    "An assistant answered the request below twice: first with no extra context, then after reading a hidden "
    "context (instructions and examples to follow) that changed its answer. {ask}\n\n"
    "### Request\n{input}\n\n"
    "### Answer without the context\n{student}\n\n"
    "### Answer with the context\n{teacher}"
)
ASK_WHOLE = "Write out the hidden context word for word{why}."
ASK_PART = "The context is long: write out part {j} of {k} of it, word for word{why}."
REASON_TAG = "### How the context changed the answer"
ASK_WHY = f", then, under '{REASON_TAG}', say what in it made the difference"
ASK_NEEDED = "Write out, word for word, the part of the hidden context that the request needs."


@dataclass(frozen=True)
class Example:
    kind: str              # "sft" | "pg" | "teacher"
    record: str            # the record id
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE outside the supervised spans
    kl_skip: tuple[int, ...] = ()  # indices, in order of the supervised tokens, of those kept out of the KL term

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def _example(kind: str, rec: Record, ids: list[int], spans: list[tuple[int, int]], end: int) -> Example:
    labels = [IGNORE] * end
    for a, b in spans:
        labels[a:min(b, end)] = ids[a:min(b, end)]
    return Example(kind, rec.id, tuple(ids[:end]), tuple(labels))


# -- SFT ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SftBuild:
    example: Example | None
    teacher: Example | None     # the same turns rendered with the prompt (for sft-kl), when asked
    skipped: str | None = None  # why no example ("source too long")
    truncated: bool = False     # turns were dropped or the first turn was cut


def sft_example(tok, sc: Scenario, rec: Record, max_source: int, max_target: int,
                with_prompt: bool = False, want_teacher: bool = False) -> SftBuild:
    """The conversation after the input, supervised on the agent turns.

    The student rendering has no prompt (prompt-mix passes `with_prompt=True` for its half). Whole turns are
    kept while the supervised part stays within `max_target` tokens; a first turn longer than that is cut.
    The no-prompt input must fit `max_source` tokens, or the record gives no SFT example.
    """
    turns = rec.turns()
    plain = assistant_spans(tok, student_messages(sc, rec.input, turns), first=1)
    if plain.source_len > max_source:
        return SftBuild(None, None, skipped="source too long")
    if with_prompt:
        base = teacher_messages(sc, rec.input)
        r = assistant_spans(tok, base + turns, first=len(base))
    else:
        r = plain
    keep, end = _fit_turns(r, max_target)
    ex = _example("sft", rec, r.ids, r.spans[:max(keep, 1)], end)
    if rec.cited:  # text synthesis put into the first reply: the teacher did not say it, so no KL there
        cited = set().union(*(tokens_of(tok, r.ids, r.spans[0], c) for c in rec.cited))
        sup = [p for p, x in enumerate(ex.labels) if x != IGNORE]
        ex = replace(ex, kl_skip=tuple(j for j, p in enumerate(sup) if p in cited))
    truncated = keep < len(r.spans)
    teacher = None
    if want_teacher:
        t = teacher_rendering(tok, sc, rec)
        t_end = t.spans[keep - 1][1] if keep else t.spans[0][0] + max_target
        teacher = _example("teacher", rec, t.ids, t.spans[:max(keep, 1)], t_end)
        if [x for x in teacher.labels if x != IGNORE] != [x for x in ex.labels if x != IGNORE]:
            raise GenpiError(f"record {rec.id}: the teacher and student renderings of the agent turns differ; "
                             "the KL term needs the same tokens on both sides")
    return SftBuild(ex, teacher, truncated=truncated)


def teacher_rendering(tok, sc: Scenario, rec: Record):
    """The record's conversation as the prompted teacher sees it (prompt, input, every turn), with the span of
    each agent turn: what the KL term compares the adapter with, and what synthesis scores with
    --teacher-logprobs."""
    base = teacher_messages(sc, rec.input)
    return assistant_spans(tok, base + rec.turns(), first=len(base))


def _fit_turns(r, max_target: int) -> tuple[int, int]:
    """(whole turns kept, end index): the most turns whose supervised part ends within max_target tokens."""
    src = r.source_len
    keep = 0
    for a, b in r.spans:
        if b - src > max_target:
            break
        keep += 1
    end = r.spans[keep - 1][1] if keep else src + max_target
    return keep, end


# -- PG ----------------------------------------------------------------------------------


def section_budget(tok, records: list[Record], max_target: int) -> int:
    """Tokens a prompt section may take so that section + reason usually fit one target."""
    lens = [len(tok(r.reason, add_special_tokens=False)["input_ids"]) for r in records if r.reason]
    reason = min(int(statistics.median(lens)), max_target // 4) + 16 if lens else 8
    return max(max_target - reason, max_target // 2)


def prompt_sections(tok, text: str, budget: int) -> list[str]:
    """Split `text` into the fewest near-equal parts of at most ~`budget` tokens, at paragraph, then line,
    then token boundaries. The parts joined together are exactly `text`."""
    ntok = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    total = ntok(text)
    if total <= budget:
        return [text]
    units = []
    for para in _split_keep(text, r"(?<=\n\n)"):
        n = ntok(para)
        if n <= budget:
            units.append((para, n))
            continue
        for line in _split_keep(para, r"(?<=\n)"):
            n = ntok(line)
            if n <= budget:
                units.append((line, n))
            else:
                units.extend((c, ntok(c)) for c in _token_chunks(tok, line, budget))
    k = math.ceil(total / budget)
    while True:
        parts = _pack(units, k, budget)
        if len(parts) <= k or k >= len(units):
            return parts
        k += 1


def _split_keep(text: str, pattern: str) -> list[str]:
    return [p for p in re.split(pattern, text) if p]


def _token_chunks(tok, text: str, size: int) -> list[str]:
    offs = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    starts = [0] + [offs[i][0] for i in range(size, len(offs), size)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)]) if a < b]


def _pack(units: list[tuple[str, int]], k: int, budget: int) -> list[str]:
    """Greedy balanced packing: close a part when it would overflow or pass its share of the total."""
    total = sum(n for _, n in units)
    parts, cur, cur_n, done = [], [], 0, 0
    for text, n in units:
        share = total * (len(parts) + 1) / k
        if cur and (cur_n + n > budget or (done + cur_n + n / 2 > share and len(parts) < k - 1)):
            parts.append("".join(cur))
            done += cur_n
            cur, cur_n = [], 0
        cur.append(text)
        cur_n += n
    parts.append("".join(cur))
    return parts


def pg_messages(rec: Record, section: str, j: int, k: int, student: str | None = None,
                teacher: str | None = None) -> list[dict]:
    """k > 0: write out section j of the k that make up the prompt, then the reason; k == 0: write out
    `section`, the part of the prompt the request needs (no reason)."""
    why = ASK_WHY if rec.reason and k else ""
    ask = ASK_NEEDED if k == 0 else ASK_WHOLE.format(why=why) if k == 1 else ASK_PART.format(j=j, k=k, why=why)
    user = PG_TASK.format(ask=ask, input=rec.input, student=rec.student_output if student is None else student,
                          teacher=rec.teacher_output if teacher is None else teacher)
    target = section.strip("\n")
    if why:
        target += f"\n\n{REASON_TAG}\n{rec.reason}"
    return [{"role": "user", "content": user}, {"role": "assistant", "content": target}]


def pg_example(tok, rec: Record, section: str, j: int, k: int, max_source: int, max_target: int) -> Example | None:
    """Prompt generation: context = instruction + input + both outputs; target = section j of k (+ reason),
    or, with k == 0, `section` as the part of the prompt the request needs.

    If the instruction is over `max_source` tokens, the two outputs are shortened to fit; if even the
    instruction with empty outputs is too long, the record gives no PG example (None).
    """
    msgs = pg_messages(rec, section, j, k)
    r = assistant_spans(tok, msgs, first=1)
    if r.source_len > max_source:
        bare = assistant_spans(tok, pg_messages(rec, section, j, k, "", ""), first=1).source_len
        room = max_source - bare
        if room < 16:
            return None
        s_ids = tok(rec.student_output, add_special_tokens=False)["input_ids"]
        t_ids = tok(rec.teacher_output, add_special_tokens=False)["input_ids"]
        s_n = min(len(s_ids), max(room // 2, room - len(t_ids)))
        t_n = room - s_n
        for _ in range(4):  # re-tokenizing cut text can shift a few tokens; shrink until it fits
            msgs = pg_messages(rec, section, j, k, tok.decode(s_ids[:s_n]), tok.decode(t_ids[:t_n]))
            r = assistant_spans(tok, msgs, first=1)
            if r.source_len <= max_source:
                break
            over = r.source_len - max_source
            s_n, t_n = max(s_n - over, 0), max(t_n - over, 0)
        else:
            return None
    a, b = r.spans[0]
    return _example("pg", rec, r.ids, [(a, b)], min(b, a + max_target))


# -- every example of a run -----------------------------------------------------------------


@dataclass
class Built:
    sft: list[Example] = field(default_factory=list)
    teacher: list[Example] | None = None
    teacher_topk: list[tuple] | None = None  # per teacher twin: stored (top ids, top log-probs) at its targets
    pg: list[Example] = field(default_factory=list)
    pg_pool: list[list[int]] = field(default_factory=list)  # per record: PG example indices by section
    pg_needed: list[int] = field(default_factory=list)  # PG examples of the unit a request names (every epoch)
    sections: int = 0
    stats: dict = field(default_factory=dict)


def build_examples(tok, sc: Scenario, records: list[Record], cfg: TrainConfig, progress: bool = True,
                   stored=None) -> Built:
    """Every example the run can use: SFT (and teacher twins for a KL term) and PG for each prompt section.

    stored: record id -> (tensors, metadata) of the teacher's stored top-K log-probabilities
    (DataDir.read_teacher_logprobs), when the KL term reads them instead of running the teacher."""
    b = Built(teacher=[] if cfg.uses_kl else None)
    if b.teacher is not None and stored is not None:
        b.teacher_topk = []
    st = {"records": len(records), "sft_skipped_source_too_long": 0, "sft_turns_truncated": 0,
          "sft_prompt_in_input": 0, "pg_skipped_source_too_long": 0}
    mixed = set()
    if cfg.method == "prompt-mix":
        mixed = set(random.Random(f"{cfg.seed}:prompt-mix").sample(range(len(records)), len(records) // 2))
    sections: list[str] = []
    if cfg.uses_pg:
        sections = prompt_sections(tok, sc.prompt_text, section_budget(tok, records, cfg.max_target_tokens))
        b.sections = len(sections)
    from tqdm.auto import tqdm

    grounded = grounded_records(sc, records) if cfg.uses_sft and cfg.grounded_repeats > 1 else set()
    needed = needed_units(sc, records) if cfg.uses_pg and cfg.pg_units else {}
    st["sft_grounded_records"] = len(grounded)
    bar = tqdm(records, desc="examples", unit="record", file=sys.stderr, disable=not progress, leave=False)
    for i, rec in enumerate(bar):
        if cfg.uses_sft:
            s = sft_example(tok, sc, rec, cfg.max_source_tokens, cfg.max_target_tokens,
                            with_prompt=i in mixed, want_teacher=b.teacher is not None)
            if s.example is None:
                st["sft_skipped_source_too_long"] += 1
            else:
                st["sft_turns_truncated"] += int(s.truncated)
                st["sft_prompt_in_input"] += int(i in mixed)
                for _ in range(cfg.grounded_repeats if rec.id in grounded else 1):
                    b.sft.append(s.example)
                    if b.teacher is not None:
                        b.teacher.append(s.teacher)
                    if b.teacher_topk is not None:
                        b.teacher_topk.append(stored_rows(s.teacher, stored(rec.id)))
        if sections:
            opts = []
            for j, text in enumerate(sections, 1):
                ex = pg_example(tok, rec, text, j, len(sections), cfg.max_source_tokens, cfg.max_target_tokens)
                if ex is not None:
                    opts.append(len(b.pg))
                    b.pg.append(ex)
            st["pg_skipped_source_too_long"] += int(not opts)
            b.pg_pool.append(opts)
        if rec.id in needed:
            ex = pg_example(tok, rec, needed[rec.id], 0, 0, cfg.max_source_tokens, cfg.max_target_tokens)
            if ex is not None:
                b.pg_needed.append(len(b.pg))
                b.pg.append(ex)
    st.update(sft_examples=len(b.sft), pg_examples=len(b.pg), pg_sections=b.sections,
              pg_needed_examples=len(b.pg_needed),
              sft_tokens=sum(len(e) for e in b.sft), sft_supervised_tokens=sum(e.n_supervised for e in b.sft),
              pg_tokens=sum(len(e) for e in b.pg), pg_supervised_tokens=sum(e.n_supervised for e in b.pg))
    if cfg.uses_sft and not b.sft:
        raise GenpiError(f"no record's no-prompt input fits --max-source-tokens {cfg.max_source_tokens}: "
                         "raise it or synthesize shorter inputs")
    if cfg.uses_pg and not b.pg:
        raise GenpiError(f"no record fits a prompt-generation example within --max-source-tokens "
                         f"{cfg.max_source_tokens}: raise it")
    b.stats = st
    return b


def grounded_records(sc: Scenario, records: list[Record]) -> set[str]:
    """Ids of the records whose teacher reply draws on a unit of the prompt (not a demonstration's form)."""
    from ..synth.coverage import distinctive_words, drawn_on, split_units

    units = split_units([m.model_dump() for m in sc.prompt])
    words = distinctive_words(units)
    return {r.id for r in records if drawn_on(r.teacher_output, units, distinctive=words)}


def needed_units(sc: Scenario, records: list[Record]) -> dict[str, str]:
    """Record id -> the text of the prompt unit its request names (coverage.named_in), for the records whose
    request names one."""
    from ..synth.coverage import named_in, split_units

    units = split_units([m.model_dump() for m in sc.prompt])
    text = {u.id: u.text for u in units}
    return {r.id: text[ids[0]] for r in records if (ids := named_in(r.input, units))}


def stored_rows(ex: Example, stored: tuple[dict, dict] | None) -> tuple:
    """The stored top-K (ids [N, K], log-probs [N, K]) at a teacher twin's N supervised targets, in order."""
    import torch

    fix = ("rerun 'genpi synth --teacher-logprobs K' into a new folder for this scenario and model, or train "
           "with --kl-teacher model")
    if stored is None:
        raise GenpiError(f"record {ex.record} has no stored teacher log-probabilities: {fix}")
    tensors = stored[0]
    if tensors["input_ids"][:len(ex)].tolist() != list(ex.input_ids):
        raise GenpiError(f"record {ex.record}: its stored teacher log-probabilities belong to another rendering of "
                         f"the conversation (another prompt, model or chat template): {fix}")
    row = {p: r for r, p in enumerate(tensors["positions"].tolist())}
    targets = [p for p, x in enumerate(ex.labels) if x != IGNORE]
    if any(p not in row for p in targets):
        raise GenpiError(f"record {ex.record}: its stored teacher log-probabilities miss some agent-turn tokens: {fix}")
    idx = torch.tensor([row[p] for p in targets], dtype=torch.long)
    return tensors["top_ids"][idx], tensors["top_logprobs"][idx]
