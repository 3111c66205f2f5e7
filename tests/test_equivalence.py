"""Reproduce's rule: a CR1 clustered difference test and TOST on the same SE, checked against statsmodels."""

import numpy as np
import pytest
from scipy.stats import ttest_rel
from statsmodels.stats.weightstats import ttost_paired

from hookbench.reports.formatting import equivalence_sentence
from hookbench.stats import equivalence
from hookbench.testing.config import STATS

A = np.array([0.6, 0.4, 0.5, 0.7, 0.3, 0.5, 0.6, 0.4, 0.55, 0.45, 0.5, 0.65])
B = np.array([0.55, 0.45, 0.5, 0.65, 0.35, 0.5, 0.6, 0.45, 0.5, 0.45, 0.55, 0.6])


def test_singleton_tost_matches_ttost_paired_and_the_difference_test_matches_ttest_rel():
    for margin in (0.02, 0.05, 0.2):
        eq = equivalence(A - B, np.arange(len(A)), margin=margin, alpha=0.05)
        p_tost, *_ = ttost_paired(A, B, -margin, margin)
        assert eq.p_equivalence == pytest.approx(p_tost, rel=1e-9)
        assert eq.p_difference == pytest.approx(ttest_rel(A, B).pvalue, rel=1e-9)
        assert (eq.outcome == "agrees") == (p_tost < 0.05)
    assert equivalence(A - B, np.arange(len(A)), 0.2, STATS["alpha"]).outcome == "agrees"
    assert equivalence(A - B, np.arange(len(A)), 0.02, STATS["alpha"]).outcome == "inconclusive"


def test_a_shifted_rerun_does_not_reproduce_and_equivalence_takes_precedence_when_inside_the_margin():
    shifted = A - (B - 0.2)
    assert equivalence(shifted, np.arange(12), margin=0.05, alpha=STATS["alpha"]).outcome == "disagrees"
    small = A - (B - 0.03)  # detectably different, but inside a ±0.2 margin: reproduces
    eq = equivalence(small, np.arange(12), margin=0.2, alpha=STATS["alpha"])
    assert eq.p_difference < 0.05 and eq.outcome == "agrees"
    text = equivalence_sentence(eq)
    assert text.startswith("the delta (patched − baseline): reproduces: the runs differ by +0.030 95% [")
    assert "90% [" in text and "margin ±0.200" in text


def test_too_few_items_are_inconclusive():
    eq = equivalence([0.5, -0.5, 0.0, 0.5, -0.5, 0.0], np.arange(6), margin=0.1, alpha=STATS["alpha"])
    assert eq.outcome == "inconclusive"
    assert equivalence([0.5], [0], margin=0.1, alpha=STATS["alpha"]).outcome == "inconclusive"
    assert "too few to compare" in equivalence_sentence(equivalence([0.5], [0], margin=0.1, alpha=STATS["alpha"]))
