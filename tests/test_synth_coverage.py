"""Prompt units, which units a reply draws on, and inputs aimed at units during synthesis."""

from __future__ import annotations

import json

import pytest

from genpi.artifacts import DataDir
from genpi.generate import FakeBackend
from genpi.scenario import load_scenario
from genpi.synth import SynthConfig, synthesize
from genpi.synth.coverage import distinctive_words, drawn_on, on_target, split_units, topics

SHOP = """You are the assistant of Harbor Kayaks, a kayak rental at 3 Pier Road.

Facts:
- Single kayak: 30 euros a day.
- Double kayak: 45 euros a day.
- Life jackets are free with every kayak.
- Opening hours: every day from 9 am to 7 pm, closed in January.

Rules:
1. Start every reply with "Ahoy!".
2. If the facts do not cover the question, say that staff will call back.

```text
Ahoy! A single kayak costs 30 euros a day.
```
"""


def test_units_follow_the_prompts_structure():
    units = split_units(SHOP)
    kinds = [(u.kind, u.section) for u in units]
    assert kinds == [("paragraph", "")] + [("item", "Facts:")] * 4 + [("item", "Rules:")] * 2 + [("block", "Rules:")]
    assert units[1].text == "Single kayak: 30 euros a day." and units[1].id == "u2"
    assert units[6].describe() == "Rules: If the facts do not cover the question, say that staff will call back."
    assert units[7].text.startswith("```text") and units[7].text.endswith("```")


def test_units_of_chat_messages_and_of_plain_text():
    msgs = [{"role": "system", "content": SHOP}, {"role": "user", "content": "Is a helmet free?"},
            {"role": "assistant", "content": "Ahoy! Life jackets are free."}]
    units = split_units(msgs)
    assert units[-1].kind == "example" and units[-1].text == "User: Is a helmet free?\nAgent: Ahoy! Life jackets are free."
    # no visible structure: one unit per sentence
    plain = split_units("Answer in French. Never mention prices. Sign every reply with Bob.")
    assert [u.text for u in plain] == ["Answer in French.", "Never mention prices.", "Sign every reply with Bob."]
    # a long paragraph is cut into sentences; a short one stays whole
    long = split_units("One rule here. Two rules here. Three rules here. Four rules here.\n\nShort one. Two.")
    assert [u.kind for u in long] == ["sentence"] * 4 + ["paragraph"]


def test_a_short_title_line_above_a_list_is_a_heading():
    text = "Policy sheet.\n\nIT-1 Accounts\n- Passwords have 14 characters.\n- Locked after 5 tries.\n\n" \
           "This line ends a sentence.\n- An item under a paragraph, not a heading.\n\nDevices\n\n- One laptop each."
    units = split_units(text)
    assert [(u.kind, u.section) for u in units] == [
        ("paragraph", ""), ("item", "IT-1 Accounts"), ("item", "IT-1 Accounts"),
        ("paragraph", "IT-1 Accounts"), ("item", "IT-1 Accounts"), ("item", "Devices")]


def test_drawn_on_needs_a_units_distinctive_words():
    units = split_units(SHOP)
    words = distinctive_words(units)
    assert "euros" not in words["u2"][0] and {"single", "30"} <= words["u2"][0] and "single" not in words["u2"][1]
    assert words["u3"][1] == {"double", "45"}
    assert drawn_on("Ahoy! A double kayak is 45 euros for the day.", units) == ["u3"]
    assert drawn_on("Ahoy! We open at 9 am every day, but we are closed in January.", units) == ["u5"]
    assert drawn_on("Ahoy! Staff will call back about that.", units) == ["u7"]
    assert drawn_on("Sure, kayaks cost euros per day.", units) == []


def test_topics_name_what_a_request_is_about_without_its_content():
    named = topics(split_units(SHOP))
    # list items' own labels; not the item without one under a generic heading, nor rules or paragraphs
    assert named == {"u2": "Single kayak", "u3": "Double kayak", "u5": "Opening hours"}
    sheet = "IT-1 Accounts and passwords\n- Passwords have 14 characters.\n- Locked after 5 tries.\n"
    assert not topics(split_units(sheet))  # a heading names several units
    assert not topics(split_units("Answer in French. Never mention prices. Sign every reply with Bob."))
    assert not topics(split_units("Act: bash\n```bash\nls\n```\nThink: why."))  # not list items


def test_on_target_requests_name_a_word_of_their_unit():
    words = distinctive_words(split_units(SHOP))["u3"][0]  # Double kayak: 45 euros a day.
    assert on_target("About double kayak, can two adults share it?", words)
    assert not on_target("Can I bring my dog along?", words)
    assert not on_target("How much is a kayak per day?", words)  # words many units share say nothing


SCENARIO = """\
name: kayaks
prompt: |
  Facts:
  - Single kayak: 30 euros a day.
  - Double kayak: 45 euros a day.
  - Life jackets are free with every kayak.
student_template: "{input}"
seed_inputs:
  - How much is a kayak?
  - Are you open on Monday?
environment:
  role: a customer
  end_when: the question is answered
  max_turns: 1
"""


QUESTIONS = ["Can two adults share one boat for a morning trip?", "Do children need their own life vest?",
             "What does a single kayak cost for three days?", "Is there a discount for a whole week?",
             "Can I bring my dog along on the water?", "How early can I pick up a boat tomorrow?",
             "Do you take card payments at the pier?", "What happens if it rains during my rental?",
             "Are paddles included with the double kayak?", "Could we book four boats for a school group?",
             "Where exactly should I park my car?", "Is the lagoon safe for complete beginners?",
             "Can I return the kayak at another harbor?", "How heavy is a single kayak to carry?",
             "Do you sell dry bags for phones?", "Is there a shower after the trip?"]


class Canned:
    def __init__(self):
        self.aimed: list[str] = []
        self.k = 0

    def __call__(self, conv):
        first = conv[0]["content"]
        if "new requests that a user could send" in first:
            self.k += 1
            asked = [QUESTIONS[(3 * self.k + i) % len(QUESTIONS)] for i in range(3)]
            if "this part of the rule book" in first or "both of these parts" in first:
                self.aimed.append(first)  # the first request names the unit's label, the others miss it
                label = first.split('answered well: "' if "both of" in first else 'how to answer: "')[1]
                unit = label.split('"')[0].split(":", 1)[1].strip().lower()
                asked[0] = f"About the {unit.split(':')[0] if ':' in unit else ' '.join(unit.split()[:2])}: {asked[0]}"
            return "\n".join(f"{i}. {q}" for i, q in enumerate(asked, 1))
        if "explain why the second answer differs" in first:
            return "The facts give the price."
        if first.startswith("Facts:"):
            return "A double kayak is 45 euros a day."
        return "I do not know."


def _synth(write, tiny_ref, out, canned, text=SCENARIO, **settings):
    """A scenario (the kayak one) synthesized with `canned` as base model and generator; (scenario, summary)."""
    sc = load_scenario(write("kayaks.yaml", text))
    fake = FakeBackend(canned, name="base")
    cfg = SynthConfig.from_preset("smoke", sc, **{"num_inputs": 6, "max_turns": 1, **settings})
    return sc, synthesize(sc, tiny_ref, None, out, cfg, base_backend=fake, generator_backend=fake, progress=False)


def test_synthesis_aims_inputs_at_units_and_reports_coverage(write, tiny_ref, tmp_path):
    canned = Canned()
    sc, summary = _synth(write, tiny_ref, tmp_path / "D", canned, batch_size=3, coverage=0.5)
    assert canned.aimed and '"Facts: Single kayak: 30 euros a day."' in canned.aimed[0]  # least covered first
    rows = [json.loads(line) for line in (tmp_path / "D" / "inputs.jsonl").read_text().splitlines()]
    assert any(r.get("units") == ["u1"] for r in rows) and any("units" not in r for r in rows)
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    cov = meta["coverage"]
    assert cov["units"] == 3 and set(cov["per_unit"]) == {"u1", "u2", "u3"}
    aimed_records = sum(r.id in DataDir(tmp_path / "D").read_input_units() for r in DataDir(tmp_path / "D").read_records())
    assert sum(u["inputs"] for u in cov["per_unit"].values()) == aimed_records > 0
    # every teacher reply names the double kayak's price: drawn on u2 only
    assert set(map(tuple, cov["teacher_units"].values())) == {("u2",)} and cov["units_drawn_on"] == 1
    assert meta["counts"]["aimed_off_target"] == 0  # every request of an aimed call counts as aimed
    assert "prompt units: 3" in __import__("genpi.synth", fromlist=["format_summary"]).format_summary(summary)


def test_aim_stems_keep_only_requests_that_name_their_unit(write, tiny_ref, tmp_path):
    canned = Canned()
    sc, summary = _synth(write, tiny_ref, tmp_path / "D", canned, batch_size=3, coverage=0.5, aim_stems=True)
    rows = [json.loads(line) for line in (tmp_path / "D" / "inputs.jsonl").read_text().splitlines()]
    words = distinctive_words(split_units([m.model_dump() for m in sc.prompt]))
    assert any("units" in r for r in rows) and summary["counts"]["aimed_off_target"] > 0
    assert all(on_target(r["input"], words[u][0]) for r in rows for u in r.get("units", ()))


def test_coverage_zero_asks_as_the_paper_does(write, tiny_ref, tmp_path):
    canned = Canned()
    _synth(write, tiny_ref, tmp_path / "D", canned, num_inputs=4, batch_size=4, coverage=0.0)
    assert canned.aimed == []


class Rotating(Canned):
    """Teacher replies cycle through the three facts, per conversation: greedy first, then each sample."""

    FACTS = ["A double kayak is 45 euros a day.", "A single kayak is 30 euros a day.",
             "Life jackets are free with every kayak."]

    def __init__(self):
        super().__init__()
        self.teacher_calls: dict[str, int] = {}

    def __call__(self, conv):
        if conv[0]["content"].startswith("Facts:"):
            k = self.teacher_calls.get(conv[-1]["content"], 0)
            self.teacher_calls[conv[-1]["content"]] = k + 1
            return self.FACTS[k % 3]
        return super().__call__(conv)


def test_records_spread_over_units_and_teacher_replies_use_the_unit_aimed_at(write, tiny_ref, tmp_path):
    sc, summary = _synth(write, tiny_ref, tmp_path / "D", Rotating(), batch_size=6, coverage=0.5)
    data = DataDir(tmp_path / "D")
    units_of, records = data.read_input_units(), data.read_records()
    aimed = [units_of[r.id] for r in records if r.id in units_of]
    assert sorted(u[0] for u in aimed) == ["u1", "u2", "u3"]  # half the records, one unit each, no repeats
    units = split_units([m.model_dump() for m in sc.prompt])
    for r in records:
        if r.id in units_of:  # every aimed record's teacher reply uses the unit it was aimed at
            assert set(units_of[r.id]) <= set(drawn_on(r.teacher_output, units)), (units_of[r.id], r.teacher_output)
        else:
            assert r.teacher_output == Rotating.FACTS[0]  # plain inputs keep their greedy reply
    c = summary["counts"]
    assert c["teacher_missed_unit"] == 2 and c["teacher_unit_resampled"] == 2  # u1 and u3; u2's greedy reply fits


HOURS = ("name: hours\nprompt: |\n  Facts:\n  - Opening hours: every day from 9 am to 7 pm, closed in January.\n"
         "  - Single kayak: 30 euros a day.\n" + SCENARIO.split("  - Life jackets are free with every kayak.\n")[1])


class Sampled:
    """The generator asks about the unit it is aimed at; the teacher misses it greedily, then its
    samples use it a little, fully, a little (per conversation)."""

    REPLIES = ["No idea, sorry.", "Opening hours start at 9 am.", "Opening hours: 9 am to 7 pm, closed in January.",
               "Opening hours begin at 9 am sharp."]

    def __init__(self):
        self.k, self.teacher_calls = 0, {}

    def requests(self) -> list[str]:
        return [f"About the opening hours, can I come for visit {self.k}?", f"Is there parking for group {self.k}?"]

    def __call__(self, conv):
        first = conv[0]["content"]
        if "new requests that a user could send" in first:
            self.k += 1
            return "\n".join(f"{i}. {q}" for i, q in enumerate(self.requests(), 1))
        if "explain why the second answer differs" in first:
            return "The facts give the hours."
        if first.startswith("Facts:"):
            n = self.teacher_calls[conv[-1]["content"]] = self.teacher_calls.get(conv[-1]["content"], -1) + 1
            return self.REPLIES[n % len(self.REPLIES)]
        return "I do not know."


@pytest.mark.parametrize("stems, kept", [(True, 2), (False, 1)])
def test_an_aimed_input_keeps_a_sample_that_draws_on_its_unit(write, tiny_ref, tmp_path, stems, kept):
    """With aim_stems, the sample that uses most of the unit; without, the first that uses it."""
    _, summary = _synth(write, tiny_ref, tmp_path / "D", Sampled(), HOURS, num_inputs=2, batch_size=2, coverage=1.0,
                        aim_stems=stems)
    data = DataDir(tmp_path / "D")
    units_of = data.read_input_units()
    aimed = [r for r in data.read_records() if units_of.get(r.id) == ["u1"]]
    assert aimed and all(r.teacher_output == Sampled.REPLIES[kept] for r in aimed)
    assert summary["counts"]["teacher_unit_resampled"] == summary["counts"]["teacher_missed_unit"] == len(aimed)


DEMO = """\
name: kayak-weeks
prompt:
  - role: system
    content: |-
      Facts:
      - Single kayak: 30 euros a day.
      - Double kayak: 45 euros a day.
  - role: user
    content: How much is a double kayak for a week?
  - role: assistant
    content: A double kayak is 45 euros a day, so a week of 7 days costs 315 euros.
""" + "student_template:" + SCENARIO.split("student_template:")[1]


def test_demo_copies_spot_a_demonstrations_wording_given_to_another_request(write):
    from genpi.synth.coverage import DemoCopies

    copies = DemoCopies(split_units([m.model_dump() for m in load_scenario(write("d.yaml", DEMO)).prompt]))
    assert copies("A single kayak is 30 euros a day, so a week of 7 days costs 210 euros.", "A single kayak?")
    assert not copies("A single kayak is 30 euros a day.", "A single kayak?")  # the fact, not the template
    assert not copies("A double kayak is 45 euros a day.", "How much for a day?")  # runs in the facts don't count
    # the demonstration's own request may get the demonstrated answer
    assert not copies("A double kayak is 45 euros a day, so a week of 7 days costs 315 euros.",
                      "How much is a double kayak for a week?")
    assert not DemoCopies(split_units(SHOP)).demos  # a prompt without demonstrations copies nothing


class Templated(Sampled):
    """The teacher answers every question in the demonstration's form greedily, plainly when sampled."""

    COPY, PLAIN = "A single kayak is 30 euros a day, so a week of 7 days costs 210 euros.", "A single kayak is 30 euros a day."
    REPLIES = [COPY, PLAIN]

    def requests(self) -> list[str]:
        return QUESTIONS[2 * self.k % 16:2 * self.k % 16 + 2]


@pytest.mark.parametrize("avoid", [True, False])
def test_teacher_replies_that_copy_a_demonstration_are_counted_and_sampled_again(write, tiny_ref, tmp_path, avoid):
    _, summary = _synth(write, tiny_ref, tmp_path / "D", Templated(), DEMO, num_inputs=4, batch_size=4, coverage=0.0,
                        avoid_demo_copies=avoid)
    records = DataDir(tmp_path / "D").read_records()
    assert len(records) == 4
    assert {r.teacher_output for r in records} == {Templated.PLAIN if avoid else Templated.COPY}
    c, cov = summary["counts"], summary["coverage"]
    assert c["teacher_copied_demo"] == c["teacher_copy_resampled"] == (4 if avoid else 0)
    assert cov["teacher_demo_copies"] == (0 if avoid else 4)  # meta.json counts them either way
    from genpi.synth import format_summary

    assert f"repeating a demonstration's wording: {0 if avoid else 4} kept" in format_summary(summary)


def test_asked_unit_is_the_aimed_unit_the_request_names_else_the_one_it_names():
    from genpi.synth.coverage import asked_unit

    units = split_units(SHOP)  # u1 the shop, u2 single, u3 double, u4 life jackets, u5 hours, ...
    assert asked_unit("Do you have a double kayak for two adults?", units, ("u3",)).id == "u3"
    # aimed at the double kayak but about the life jackets: the unit it names
    assert asked_unit("Are life jackets extra?", units, ("u3",)).id == "u4"
    assert asked_unit("Can I bring my dog?", units, ("u3",)) is None  # names nothing, misses its aim
    demo = split_units([{"role": "system", "content": SHOP}, {"role": "user", "content": "Double kayak price?"},
                        {"role": "assistant", "content": "Ahoy! 30 euros."}])
    assert demo[-1].kind == "example" and asked_unit("Double kayak price?", demo, (demo[-1].id,)).id == "u3"


def test_citing_puts_the_unit_after_the_first_sentence_then_at_the_start_then_the_end():
    from genpi.synth.coverage import citing

    fact = "Double kayak: 45 euros\n a day."
    assert citing("Ahoy! We have boats. Come by.", fact) == [
        "Ahoy! Double kayak: 45 euros a day. We have boats. Come by.",
        "Double kayak: 45 euros a day. Ahoy! We have boats. Come by.",
        "Ahoy! We have boats. Come by. Double kayak: 45 euros a day."]
    assert citing("Ahoy!", fact) == ["Double kayak: 45 euros a day. Ahoy!", "Ahoy! Double kayak: 45 euros a day."]


CITED = HOURS.replace("max_turns: 1\n", "max_turns: 1\neval:\n  checks:\n    - {name: greeting, regex: '^Ahoy!'}\n")


class Forgetful(Sampled):
    """The teacher greets and never states a fact; the requests ask about the opening hours, then parking."""

    REPLIES = ["Ahoy! Come and see us."]


@pytest.mark.parametrize("cite", [True, False])
def test_cite_units_puts_the_asked_units_text_into_a_reply_that_leaves_it_out(write, tiny_ref, tmp_path, cite):
    hours = "Opening hours: every day from 9 am to 7 pm, closed in January."
    _, summary = _synth(write, tiny_ref, tmp_path / "D", Forgetful(), CITED, num_inputs=2, batch_size=2,
                        coverage=0.0, teacher_samples=0, cite_units=cite)
    records = DataDir(tmp_path / "D").read_records()
    about = [r for r in records if "opening hours" in r.input]
    assert len(about) == 1 and len(records) == 2
    for r in records:
        if cite and r in about:  # after the greeting, so the scenario's check still passes; marked for training
            assert r.teacher_output == f"Ahoy! {hours} Come and see us." and r.cited == (hours,)
            assert r.conversation[0].content == r.teacher_output
        else:  # parking is in no unit; without the option nothing changes
            assert r.teacher_output == "Ahoy! Come and see us." and r.cited == ()
            assert "cited" not in r.to_json()
    c = summary["counts"]
    assert (c["teacher_left_out_asked"], c["teacher_cited"]) == ((1, 1) if cite else (0, 0))
    from genpi.synth import format_summary

    assert ("given its text (--cite-units): 1" in format_summary(summary)) == cite


def test_cite_units_leaves_a_reply_alone_where_no_place_passes_the_checks(write, tiny_ref, tmp_path):
    strict = CITED.replace("regex: '^Ahoy!'", "regex: '^Ahoy! Come and see us\\.$'")
    _, summary = _synth(write, tiny_ref, tmp_path / "D", Forgetful(), strict, num_inputs=2, batch_size=2,
                        coverage=0.0, teacher_samples=0, cite_units=True)
    assert all(r.cited == () for r in DataDir(tmp_path / "D").read_records())
    assert (summary["counts"]["teacher_left_out_asked"], summary["counts"]["teacher_cited"]) == (1, 0)


def test_question_pairs_join_demonstrated_and_seed_requests_to_the_unit_they_ask_about():
    from genpi.synth.coverage import question_pairs

    units = split_units([{"role": "system", "content": "Facts:\n- Single kayak: 30 euros a day.\n"
                                                       "- Double kayak: 45 euros a day.\n"
                                                       "- Life jackets are free with every kayak."},
                         {"role": "user", "content": "What does the double cost?"},
                         {"role": "assistant", "content": "A double kayak costs 45 euros a day."}])
    seeds = ["Do I have to pay for life  jackets?", "Are you open on Monday?", "What does the double cost?"]
    assert question_pairs(units, seeds) == [("u2", "What does the double cost?"), ("u3", "Do I have to pay for life jackets?")]
    assert question_pairs(units[:3], ["Are you open on Monday?"]) == []


def test_a_unit_question_call_shows_pairs_then_opens_the_units_question():
    from genpi.synth import stages

    shown = [("Single kayak: 30 euros a day.", "How much is a single?")]
    continued = stages.unit_question_prompt(shown, "Life jackets are\n free.", continues=True)
    assert continued[-1] == {"role": "assistant", "content": "Fact: Single kayak: 30 euros a day.\nQuestion: How much "
                                                            "is a single?\n\nFact: Life jackets are free.\nQuestion:"}
    asked = stages.unit_question_prompt(shown, "Life jackets are free.", continues=False)
    assert len(asked) == 1 and asked[0]["role"] == "user" and asked[0]["content"].endswith("Question:")
    parse = stages.UNIT_QUESTION.parse
    assert parse(" Are life jackets free?\n\nFact: Single kayak") == ["Are life jackets free?"]
    assert parse('\nQuestion: "Do I pay for a jacket?"') == ["Do I pay for a jacket?"]
    assert parse("Fact: Double kayak: 45 euros.") == [] and parse("  ") == []


UNIT_SCENARIO = SCENARIO.replace("  - How much is a kayak?\n", "  - Do I have to pay for a single kayak?\n")


class Asking(Canned):
    """Writes the question of a unit-question call: names the unit for the kayaks, misses it for life jackets."""

    def __init__(self):
        super().__init__()
        self.unit_calls: list[list[dict]] = []

    def __call__(self, conv):
        if conv[0]["content"].startswith("For each fact"):
            self.unit_calls.append(conv)
            fact = conv[-1]["content"].rsplit("Fact: ", 1)[1]
            return " Do you sell ice cream at the pier?" if fact.startswith("Life") else f" What does a {fact.split(':')[0].lower()} cost?"
        return super().__call__(conv)


@pytest.mark.parametrize("continues", [True, False])
def test_unit_questions_ask_the_generator_for_each_units_request(write, tiny_ref, tmp_path, continues):
    canned = Asking()
    sc = load_scenario(write("kayaks.yaml", UNIT_SCENARIO))
    fake = FakeBackend(canned, name="base", continues=continues)
    cfg = SynthConfig.from_preset("smoke", sc, num_inputs=6, max_turns=1, batch_size=3, coverage=0.5,
                                  unit_questions=True)
    summary = synthesize(sc, tiny_ref, None, tmp_path / "D", cfg, base_backend=fake, generator_backend=fake,
                         progress=False)
    assert canned.unit_calls and canned.k > 0  # unit questions and the plain list continuation
    for conv in canned.unit_calls:  # the seed's pair is shown, never before its own unit
        text = conv[-1]["content"]
        assert "Question: Do I have to pay for a single kayak?" in text and text.endswith("Question:")
        assert text.count("Fact: Single kayak") == 1
    greedy = [c for c in fake.calls if c["conversations"][0][0]["content"].startswith("For each fact")]
    assert greedy and all(c["temperature"] == 0.0 for c in greedy)
    rows = {r["input"]: r.get("units") for r in map(json.loads, (tmp_path / "D" / "inputs.jsonl").read_text().splitlines())}
    assert rows["What does a double kayak cost?"] == ["u2"]
    assert rows.get("Do you sell ice cream at the pier?", "absent") is None  # off target: a plain input
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["counts"]["unit_questions_off_target"] >= 1
    assert meta["counts"]["unit_questions"] > meta["counts"]["unit_questions_off_target"]
    assert meta["sampling"]["unit_questions"] == "greedy"
    from genpi.synth import format_summary

    assert "--unit-questions" in format_summary(summary)


def test_unit_questions_without_a_pair_ask_as_before(write, tiny_ref, tmp_path):
    canned = Asking()
    _synth(write, tiny_ref, tmp_path / "D", canned, batch_size=3, coverage=0.5, unit_questions=True)
    assert canned.aimed and not canned.unit_calls  # no seed names a unit: the aimed instruction
