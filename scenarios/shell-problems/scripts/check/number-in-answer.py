"""Judge a free-text answer against an expected number.

Usage: python3 number-in-answer.py ANSWER EXPECTED
  ANSWER    the agent's answer, e.g. "There are 5 .log files directly inside /srv/logs."
  EXPECTED  the right value, usually the output of the problem's evaluation.example (e.g. "5\n")

A number in the answer is a whitespace-separated word that, once surrounding punctuation is
stripped, is an integer or a decimal (1,234 with thousands commas counts as 1234), or one of the
English words zero..twenty. Numbers inside paths or names (/srv/logs2, file_3.txt, --port=80)
are not numbers. Passes (exit 0) when the expected value is among the answer's numbers and the
answer holds at most 3 distinct numbers (so listing many candidates fails); exits 1 otherwise.
"""
import re
import sys

WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
NUMBER = re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
PUNCT = ".,;:!?()[]{}<>\"'`*"
MAX_NUMBERS = 3


def numbers(text):
    found = set()
    for word in text.replace("=", " ").split():
        w = word.strip(PUNCT)
        if w.lower() in WORDS:
            found.add(float(WORDS[w.lower()]))
        elif NUMBER.fullmatch(w):
            found.add(float(w.replace(",", "")))
    return found


def main(argv):
    if len(argv) < 3:
        print("usage: number-in-answer.py ANSWER EXPECTED", file=sys.stderr)
        return 2
    answer, expected = argv[1], argv[2].strip()
    try:
        want = float(expected.replace(",", ""))
    except ValueError:
        print(f"expected value is not a number: {expected!r}", file=sys.stderr)
        return 2
    got = numbers(answer)
    if want not in got:
        print(f"expected {expected} among the answer's numbers {sorted(got)}", file=sys.stderr)
        return 1
    if len(got) > MAX_NUMBERS:
        print(f"ambiguous: the answer holds {len(got)} numbers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
