"""Baselines an accuracy must beat (issue 19): constant answers, McNemar against the own constant, pass@k, seeds."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from medrlvr.report.baselines import entropy_bits, gain_is_trivial, gain_verdict, letter_baselines, vs_constant
from medrlvr.stats import compare_seeds, pass_at_k, pass_at_k_summary, permutation_test, t_two_sided_p, welch_t

# The demo's 150 MMLU medical questions had 46 D golds; the rest are spread over A-C.
GOLDS = ["D"] * 46 + ["A"] * 40 + ["B"] * 34 + ["C"] * 30


def test_always_d_is_the_constant_answer_and_no_gain():
    b = letter_baselines(GOLDS, ["D"] * 150, 4)
    assert b["accuracy"] == pytest.approx(46 / 150) and round(b["accuracy"], 3) == 0.307
    assert b["own_constant"] == {"letter": "D", "accuracy": pytest.approx(46 / 150)}
    assert b["best_constant"] == {"letter": "D", "accuracy": pytest.approx(46 / 150)}
    assert b["chance"] == 0.25 and b["top_share"] == 1.0 and b["answered_share"] == 1.0
    assert b["answer_entropy_bits"] == 0.0 and b["gold_entropy_bits"] > 1.9
    test = vs_constant(GOLDS, ["D"] * 150)
    assert test["p_value"] == 1.0 and (test["policy_only"], test["constant_only"]) == (0, 0)
    verdict = gain_verdict(GOLDS, ["D"] * 150, 4, base_well_formed_rate=0.0)
    assert verdict["trivial"] and gain_is_trivial(GOLDS, ["D"] * 150)
    assert "always answering D" in verdict["verdict"] and "McNemar p=1" in verdict["verdict"]
    assert verdict["base"] == "base cannot answer in this format"


def test_demo_random_policy_146_d_is_trivial():
    predictions = ["D"] * 146 + ["A"] * 4  # the four non-D answers fall on C golds: wrong
    assert gain_is_trivial(GOLDS, predictions)
    assert letter_baselines(GOLDS, predictions)["top_share"] == pytest.approx(146 / 150)


def test_a_policy_that_knows_is_a_gain():
    predictions = list(GOLDS[:120]) + ["A" if g != "A" else "B" for g in GOLDS[120:]]  # 120 of 150 right
    verdict = gain_verdict(GOLDS, predictions, 4, base_well_formed_rate=0.9)
    assert not verdict["trivial"] and verdict["base"] is None
    assert verdict["vs_own_constant"]["p_value"] < 1e-6


def test_unanswered_counts_as_wrong_and_per_question_letters():
    b = letter_baselines(["A", "B", "C"], ["A", None, "A"], [4, 5, ["A", "B"]])
    assert b["accuracy"] == pytest.approx(1 / 3) and b["answered"] == 2
    assert b["chance"] == pytest.approx((1 / 4 + 1 / 5 + 1 / 2) / 3)
    assert b["answer_counts"] == {"A": 2} and b["top_letter"] == "A"
    assert entropy_bits({"A": 1, "B": 1, "C": 1, "D": 1}) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="one entry per question"):
        letter_baselines(["A", "B"], ["A", "B"], [4, 4, 4])


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    draws = list(combinations(range(n), k))
    return sum(any(samples[i] for i in d) for d in draws) / len(draws)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_and_checked():
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    assert pass_at_k(10_000, 3, 100) == pytest.approx(1 - math.comb(9997, 100) / math.comb(10_000, 100))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_pass_at_k_summary_is_seeded_and_brackets_the_mean():
    counts = [(8, c) for c in (0, 1, 2, 4, 8, 0, 3, 1)]
    s = pass_at_k_summary(counts, 2, seed=3)
    assert s["ci"][0] <= s["mean"] <= s["ci"][1] and "bootstrap" in s["method"]
    assert s == pass_at_k_summary(counts, 2, seed=3)
    assert s["mean"] == pytest.approx(sum(pass_at_k(n, c, 2) for n, c in counts) / len(counts))


def test_t_distribution_against_closed_forms():
    for t in (0.3, 1.0, 2.5, 7.0):
        assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-9)
        assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=2e-4)  # the textbook critical value


def test_welch_matches_scipy_or_a_hand_computation():
    a, b = [0.31, 0.29, 0.33], [0.25, 0.27, 0.22, 0.26]
    got = welch_t(a, b)
    try:
        from scipy import stats
    except ImportError:
        va, vb = 0.0004 / 3, (sum((x - 0.25) ** 2 for x in b) / 3) / 4
        assert got["t"] == pytest.approx(0.06 / math.sqrt(va + vb))
        assert got["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 3))
    else:
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert got["t"] == pytest.approx(ref.statistic) and got["p_value"] == pytest.approx(ref.pvalue)
    assert got["p_value"] == pytest.approx(t_two_sided_p(got["t"], got["df"]))
    assert math.isnan(welch_t([0.3], [0.2, 0.25])["p_value"])


def test_two_seeds_per_arm_cannot_show_much():
    r = compare_seeds([0.30, 0.31], [0.25, 0.27])
    assert r["a"]["mean"] == pytest.approx(0.305) and r["b"]["min"] == 0.25 and r["b"]["max"] == 0.27
    assert r["welch"]["df"] < 2 and r["welch"]["method"].startswith("Welch")
    assert r["permutation"]["relabellings"] == 6 and r["permutation"]["p_value"] == pytest.approx(1 / 3)
    per_question = compare_seeds(
        [[True, False, True, True], [True, True, False, False]], [[False] * 4, [True] + [False] * 3]
    )
    assert per_question["a"]["values"] == [0.75, 0.5] and per_question["b"]["values"] == [0.0, 0.25]
    assert permutation_test([1, 2, 3, 4], [5, 6, 7, 8])["p_value"] == pytest.approx(2 / 70)
