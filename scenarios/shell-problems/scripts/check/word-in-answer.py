"""Judge a free-text answer against an expected word, name or path.

Usage: python3 word-in-answer.py ANSWER EXPECTED
  ANSWER    the agent's answer, e.g. "The biggest file is /srv/media/video/intro.mp4."
  EXPECTED  the right value, usually the output of the problem's evaluation.example (e.g. "intro.mp4\n")

Passes (exit 0) when EXPECTED (stripped) appears in the answer as a whole token, case-insensitively:
not preceded by a letter, digit, "_", "-" or "." and not followed by a letter, digit, "_" or "-",
nor by "/" or "." that continues the token. So "intro.mp4" is found in "/srv/media/video/intro.mp4"
and in "`intro.mp4`.", "bob" is not found in "bobby" or "bob-2", "/var/lib/metrics" is found in
"/var/lib/metrics/" but not in "/var/lib/metrics/data". Exits 1 otherwise.
"""
import re
import sys


def found(answer, expected):
    pattern = (r"(?<![A-Za-z0-9_.\-])" + re.escape(expected)
               + r"(?![A-Za-z0-9_\-])(?![/.][A-Za-z0-9_\-])")
    return re.search(pattern, answer, re.IGNORECASE) is not None


def main(argv):
    if len(argv) < 3:
        print("usage: word-in-answer.py ANSWER EXPECTED", file=sys.stderr)
        return 2
    answer, expected = argv[1], argv[2].strip()
    if not expected:
        print("expected value is empty", file=sys.stderr)
        return 2
    if not found(answer, expected):
        print(f"{expected!r} is not a whole word of the answer", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
