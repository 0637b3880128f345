"""Reading generator replies (lists, markers, labels) and the pseudo-input filter."""

from __future__ import annotations

import pytest

from genpi.synth.filters import FilterConfig, InputFilter
from genpi.envs import parse_environment_reply
from genpi.synth.text import clean_reply, normalize, parse_list, similarity, tidy_item

SEEDS = ["Tell me the max number of threads in my computer.",
         "How many empty files are there in /home and all of its content?"]
PROMPT = ("You are an agent on a Linux machine. Answer with Think: and Act: lines.\n"
          "Now, my problem is:\n\ntell me how many files are in the directory \"/etc\"?")


@pytest.mark.parametrize("reply, want", [
    ("1. Count the users.\n2. List open ports.\n3) Show disk usage.", ["Count the users.", "List open ports.", "Show disk usage."]),
    ("Here are three new problems:\n\n- Find big files\n* Kill a process\n\u2022 Show the date",
     ["Find big files", "Kill a process", "Show the date"]),
    ("1. Find every log file\n   older than a week.\n2. Remove them.",
     ["Find every log file older than a week.", "Remove them."]),
    ('1. "How many users exist?"\n2. **Problem 2:** What is my IP?\n3. Question: Which shell is used?',
     ["How many users exist?", "What is my IP?", "Which shell is used?"]),
    ("Find big files\nKill a process", ["Find big files", "Kill a process"]),  # no markers: lines
    ("1. Count users<|im_end|>\n2. ignored", ["Count users"]),
    ("1. Count users</s>2. ignored", ["Count users"]),
    ("", []),
])
def test_parse_list(reply, want):
    assert parse_list(reply) == want


def test_clean_reply_cuts_any_family_marker():
    assert clean_reply("Think: x<|eot_id|>garbage") == "Think: x"
    assert clean_reply("answer<end_of_turn>\nmore") == "answer"
    assert clean_reply("  plain  ") == "plain"
    assert clean_reply(None) == ""


def test_tidy_item_labels_and_quotes():
    assert tidy_item("\u201cWhat is the kernel version?\u201d") == "What is the kernel version?"
    assert tidy_item("Task: list files") == "list files"
    assert tidy_item("Request a new password") == "Request a new password"  # a verb, not a label


def test_normalize_and_similarity():
    assert normalize("  \u201cTell ME\u201d the   /etc/passwd size!! ") == "tell me the /etc/passwd size"
    assert similarity("Tell me the max number of threads.", '"tell me the max number of threads"') == 1.0
    assert similarity(SEEDS[0], "Tell me the max number of threads") >= 0.8  # cut-down variant
    assert similarity("Count users", "Show the disk usage of /var") < 0.5
    # a cut-down variant that difflib alone rates below 0.8
    assert similarity("How many empty files are there in /home and all of its content?",
                      "How many empty files are there in /home?") == 0.9


def test_end_marker_stripped():
    def parse(reply, marker="[END]"):
        return parse_environment_reply(reply, marker)

    assert parse("The output of the OS:\n42 [END] trailing") == ("The output of the OS:\n42", True)
    assert parse("The output of the OS:\n42") == ("The output of the OS:\n42", False)
    assert parse("   ") == ("", True)  # an empty reply ends the episode too
    assert parse("no marker", "") == ("no marker", False)


def test_filter_drops_and_counts():
    f = InputFilter(SEEDS, PROMPT)
    cands = [
        "List all users whose home directory is under /srv.",  # kept
        "\u201ctell me the MAX number of threads in my computer\u201d",  # seed, quoted and cased
        "Tell me the max number of threads",  # seed, cut down
        "Tell me how many files are in the directory /etc",  # the prompt's own demonstration
        "list all users whose home directory is under /srv!",  # duplicate of the first
        "List all the users whose home directories are under /srv.",  # near duplicate
        "ok",  # empty
        "files files files files files files files files files files",  # degenerate
        "#### ///// 12345 ==== ---- ++++ 9999",  # degenerate
        "What is the default shell of the root user?",  # kept
    ]
    kept = f.add(cands)
    assert kept == [cands[0], cands[-1]]
    assert f.drop_counts() == {"empty": 1, "degenerate": 2, "copies_prompt": 1, "seed": 2, "duplicate": 1,
                               "near_duplicate": 1}


def test_filter_remembers_earlier_inputs_and_threshold():
    f = InputFilter([], PROMPT, kept=["Show the disk usage of /var."])
    assert f.add(["show the disk usage of /var"]) == []
    assert f.drop_counts()["duplicate"] == 1
    loose = InputFilter([], PROMPT, FilterConfig(similarity=1.0), kept=["Show the disk usage of /var."])
    assert loose.add(["Show the disk usage of /var/log."]) == ["Show the disk usage of /var/log."]
    with pytest.raises(ValueError):
        FilterConfig(similarity=0)


def test_length_limit_follows_the_seeds():
    long_seed = "Explain this log line: " + " ".join(f"field{i}=value{i}" for i in range(30))
    long_input = "Please summarise these settings: " + " ".join(f"option{i} is set to level {i * 7}" for i in range(12))
    assert 300 < len(long_input) < 2 * len(long_seed)
    assert InputFilter([], PROMPT).reason(long_input) == "degenerate"
    assert InputFilter([long_seed], PROMPT).reason(long_input) is None


def test_inputs_prompt_continues_a_list_of_the_examples_when_the_backend_can(write):
    import random

    from genpi.scenario import load_scenario
    from genpi.synth import stages

    sc = load_scenario(write("s.yaml", "name: s\nprompt: Be a shell agent.\n"))
    rng = random.Random(0)
    msgs = stages.inputs_prompt(sc, ["Count users.", "Show disk use."], 4, rng, continues=True)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["content"] == "1. Count users.\n2. Show disk use.\n3."
    assert "Write 6 new requests" in msgs[0]["content"] and "Be a shell agent." in msgs[0]["content"]
    # the continuation of "3." and what follows are new; the shown examples are not kept
    assert stages.parse_inputs(msgs, "Which kernel runs here?\n4. List open ports.\n5. Tell me the uptime.") == [
        "Which kernel runs here?", "List open ports.", "Tell me the uptime."]
    # an example written over several lines is one item of the list, so the examples are still dropped
    multi = stages.inputs_prompt(sc, ["Count the users\n  of this machine.", "Show disk use."], 4, rng, continues=True)
    assert multi[1]["content"] == "1. Count the users of this machine.\n2. Show disk use.\n3."
    assert stages.parse_inputs(multi, "Reboot it.") == ["Reboot it."]
    # no examples: the list opens at "1."
    assert stages.inputs_prompt(sc, [], 4, rng, continues=True)[1]["content"] == "1."
    # a backend that cannot continue gets the examples quoted in one user turn
    plain = stages.inputs_prompt(sc, ["Count users."], 4, rng, continues=False)
    assert [m["role"] for m in plain] == ["user"] and "1. Count users." in plain[0]["content"]
    assert stages.parse_inputs(plain, "1. Reboot the box.\n2. Show the date.") == ["Reboot the box.", "Show the date."]
    # a stem opens the first new item, and is part of the request parsed back
    stem = stages.topic_stem(["Disk quotas"])
    stemmed = stages.inputs_prompt(sc, ["Count users."], 2, rng, continues=True, stem=stem)
    assert stem == "What about the disk quotas" and stemmed[1]["content"] == "1. Count users.\n2. What about the disk quotas"
    assert stages.parse_inputs(stemmed, " on /home?\n3. Reboot it.") == [
        "What about the disk quotas on /home?", "Reboot it."]
    assert stages.topic_stem(["VPN", "Tandem", "Tandem"]) == "What about the VPN and the tandem"
    assert stages.topic_stem([]) is None
    assert stages.parse_inputs(stemmed, "?\n3. Reboot it.") == ["What about the disk quotas?", "Reboot it."]


def test_pick_examples_prefers_seeds_and_adds_one_kept_input():
    import random

    from genpi.synth.stages import pick_examples

    seeds, kept = [f"seed {i}" for i in range(5)], [f"kept {i}" for i in range(9)]
    rng = random.Random(1)
    for _ in range(20):
        shown = pick_examples(seeds, kept, 3, rng)
        assert len(shown) == 3 and sum(x.startswith("kept") for x in shown) == 1
    assert all(x.startswith("seed") for x in pick_examples(seeds, [], 3, rng))
    assert all(x.startswith("kept") for x in pick_examples([], kept, 3, rng))
    one_seed = pick_examples(["the seed"], kept, 3, rng)
    assert "the seed" in one_seed and len(one_seed) == 3
    assert pick_examples([], [], 3, rng) == []
