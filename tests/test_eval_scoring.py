"""Pure evaluation functions: checks, expectations, score, retention, normalized, agreement, KL."""

from __future__ import annotations

import pytest
import torch

from genpi.evaluate import checks as sc
from genpi.evaluate.agreement import agreement, chrf, exact_match
from genpi.evaluate.kl import mean_kl, token_kl
from genpi.scenario import Check, Expectation

PROTOCOL = Check(name="protocol", regex=r"\APlan: [^\n]+\n")
JSON = Check(name="json", json=True)


def test_expectation_contains_all_any_and_regex():
    e = Expectation(contains=["45 days", "receipt"])
    assert sc.expectation_passes(e, "Returns within 45 DAYS with a Receipt.")
    assert not sc.expectation_passes(e, "Returns within 45 days.")
    any_ = Expectation(contains_any=["9 am", "9:00"])
    assert sc.expectation_passes(any_, "We open at 9:00.")
    assert not sc.expectation_passes(any_, "We open at ten.")
    rx = Expectation(regex=r"\$\s?12(\.00)?\b")
    assert sc.expectation_passes(rx, "It costs $12.")
    assert not sc.expectation_passes(rx, "It costs $120.")
    both = Expectation(contains=["open"], contains_any=["9 am"], regex="sunday")
    assert sc.expectation_passes(both, "Open on Sunday from 9 am")
    assert not sc.expectation_passes(both, "Open on Monday from 9 am")


def test_expectation_case_sensitive():
    e = Expectation(contains=["Gold"], case_sensitive=True)
    assert sc.expectation_passes(e, "the Gold plan")
    assert not sc.expectation_passes(e, "the gold plan")


def test_summarize_rates_and_score():
    outs = ["Plan: list\n```sh\nls\n```", "hello", "Plan: x\n{}", '{"a": 1}']
    exps = [Expectation(contains=["ls"]), None, Expectation(contains=["nope"]), None]
    s = sc.summarize([PROTOCOL, JSON], exps, outs)
    assert s["checks"] == {"protocol": 0.5, "json": 0.25}
    assert s["expectations"] == 0.5 and s["n_expectations"] == 2
    assert s["score"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)


def test_summarize_without_expectations_or_checks():
    s = sc.summarize([PROTOCOL], [None, None], ["Plan: a\nb", "no"])
    assert s["expectations"] is None and s["score"] == 0.5
    empty = sc.summarize([], [None], ["anything"])
    assert empty["score"] is None and empty["checks"] == {}
    with pytest.raises(ValueError):
        sc.summarize([PROTOCOL], [None], ["a", "b"])


def test_facts_kept_counts_only_what_the_teacher_met():
    exps = [Expectation(contains=["35"]), Expectation(contains=["16"]), Expectation(contains=["Quay"]), None]
    teacher = ["35 euros", "16 years", "no idea", "hello"]
    # kept the first, lost the second; the third it met on its own and that does not count
    assert sc.expectations_kept(exps, ["it is 35", "age 18", "14 Quay Street", "x"], teacher) == 0.5
    assert sc.expectations_kept(exps, ["35", "16", "", ""], teacher) == 1.0
    assert sc.expectations_kept(exps, ["35", "16", "", ""], ["", "", "", ""]) is None  # the teacher met none
    with pytest.raises(ValueError):
        sc.expectations_kept(exps, ["a"], teacher)


def test_retention_and_normalized():
    assert sc.retention(0.45, 0.9) == pytest.approx(0.5)
    assert sc.retention(1.0, 0.8) == pytest.approx(1.25)  # better than the prompt is allowed
    assert sc.normalized(0.5, 0.1, 0.9) == pytest.approx(0.5)
    assert sc.normalized(0.1, 0.1, 0.9) == 0.0
    assert sc.normalized(0.0, 0.2, 0.6) == pytest.approx(-0.5)  # worse than no prompt


def test_edge_cases_are_null_not_errors():
    assert sc.retention(0.3, 0.0) is None  # a ceiling of zero: the ratio means nothing
    assert sc.retention(0.0, 0.0) is None
    assert sc.normalized(0.4, 0.5, 0.5) is None  # ceiling == floor
    assert sc.retention(None, 0.5) is None and sc.normalized(0.5, None, 1.0) is None


def test_agreement_exact_and_chrf():
    assert exact_match(" a b \n", "a b")
    assert chrf("Plan: list the files", "Plan: list the files") == pytest.approx(1.0)
    near, far = chrf("Plan: list the files", "Plan: list all files"), chrf("zzzz qqqq", "Plan: list all files")
    assert 0.0 <= far < near < 1.0
    a = agreement(["x", "Plan: ls"], ["x", "Plan: ls -l"])
    assert a["exact"] == 0.5 and 0.5 < a["chrf"] < 1.0
    assert agreement([], []) == {"exact": None, "chrf": None}


def test_kl_zero_for_identical_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(5, 11, generator=g)
    assert mean_kl(t, t.clone()) == pytest.approx(0.0, abs=1e-6)
    assert mean_kl(t, t + 3.0) == pytest.approx(0.0, abs=1e-5)  # a constant shift keeps the distribution
    s = torch.randn(5, 11, generator=g)
    per = token_kl(t, s)
    assert per.shape == (5,) and bool((per > 0).all())
    # KL(p||q) by hand for the first position
    p, q = torch.softmax(t[0], -1), torch.softmax(s[0], -1)
    assert float(per[0]) == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-5)
    with pytest.raises(ValueError):
        token_kl(t, s[:3])
