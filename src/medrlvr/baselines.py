"""What an accuracy must beat before it means anything: chance, constant answers, pass@k, and seed-to-seed spread.

Why this module exists (issue 19): on the CPU demo a GRPO policy answered "D" to 146 of 150 MMLU medical questions
and scored 0.307, exactly the share of D among the golds (46/150); against a base model that never closes the
R1-Zero format (accuracy 0) that printed as +0.307 with McNemar p 2.8e-14. Nothing was learned about medicine. The
functions here put every accuracy beside what a policy that ignores the question would score:

* chance: the mean of 1/k over questions (k options each);
* the best constant answer: always the gold's most frequent letter. It needs the golds, so it is an oracle upper
  bound on every constant policy, not a policy anyone could run;
* the policy's own constant: always the letter the policy answers most. A policy that is not better than this one,
  question by question (exact McNemar), has learned a letter, not an answer.

pass@k is Chen et al. 2021 (HumanEval) unbiased estimator; the seed comparison treats seeds as the unit of
replication (Welch's t on per-seed accuracies, and an exact permutation test over seed labels).

Plain functions on lists; numpy only (scipy is not installed: the t distribution is computed here).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from .evaluate import mcnemar, wilson
from .records import LETTERS

ALPHA = 0.05  # two-sided level for every "is it above" decision here
BOOTSTRAP_RESAMPLES = 2000  # pass@k interval: resamples of the questions
EXACT_PERMUTATIONS_MAX = 20_000  # seed permutation test: enumerate every relabelling up to this many, else sample


# --- letters and constant answers -------------------------------------------------------------------------------


def _letters_per_question(n: int, letters: int | Sequence[str] | Sequence[Sequence[str]] | Sequence[int]) -> list:
    """The option letters of each question, from a count k, one letter list for all, or one entry per question."""
    if isinstance(letters, int):
        return [tuple(LETTERS[:letters])] * n
    if letters and all(isinstance(x, str) and len(x) == 1 for x in letters):
        return [tuple(letters)] * n
    if len(letters) != n:
        raise ValueError(f"letters: one entry per question expected ({n}), got {len(letters)}")
    return [tuple(LETTERS[:x]) if isinstance(x, int) else tuple(x) for x in letters]


def entropy_bits(counts: Counter | dict[str, int]) -> float:
    """Shannon entropy in bits of a letter distribution (0 for one letter, 2 for four equally used)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    return float(-sum(c / total * math.log2(c / total) for c in counts.values() if c))


def letter_baselines(golds: Sequence[str], predictions: Sequence[str | None], letters: Any = 4) -> dict[str, Any]:
    """Accuracy beside chance, the best constant answer and the policy's own constant answer.

    ``predictions`` hold the extracted letter or None (unanswered, always wrong); ``letters`` is k, one letter list,
    or one entry (k or letters) per question. Returns accuracy, answered_share, chance (mean 1/k), best_constant
    (letter and accuracy: the golds' most frequent letter, an oracle bound on constant policies), own_constant (the
    policy's most frequent letter answered everywhere), answer_counts, top_letter, top_share (of answered),
    answer_entropy_bits against gold_entropy_bits, and max_entropy_bits (log2 k of the first question).

    >>> b = letter_baselines(list("ABCD"), list("DDDD"))
    >>> b["accuracy"], b["own_constant"]["accuracy"], b["top_share"]
    (0.25, 0.25, 1.0)
    """
    n = len(golds)
    if len(predictions) != n:
        raise ValueError(f"predictions: {len(predictions)} for {n} golds")
    per_q = _letters_per_question(n, letters)
    answered = [p for p in predictions if p is not None]
    counts, gold_counts = Counter(answered), Counter(golds)
    top, top_n = counts.most_common(1)[0] if counts else (None, 0)
    best, _ = gold_counts.most_common(1)[0] if gold_counts else (None, 0)
    return {
        "n": n,
        "accuracy": sum(p == g for p, g in zip(predictions, golds)) / n if n else 0.0,
        "answered": len(answered),
        "answered_share": len(answered) / n if n else 0.0,
        "chance": float(np.mean([1 / len(x) for x in per_q])) if n else 0.0,
        "best_constant": {"letter": best, "accuracy": gold_counts[best] / n if n else 0.0},
        "own_constant": {"letter": top, "accuracy": gold_counts[top] / n if n and top else 0.0},
        "answer_counts": dict(sorted(counts.items())),
        "gold_counts": dict(sorted(gold_counts.items())),
        "top_letter": top,
        "top_share": top_n / len(answered) if answered else 0.0,
        "answer_entropy_bits": entropy_bits(counts),
        "gold_entropy_bits": entropy_bits(gold_counts),
        "max_entropy_bits": math.log2(len(per_q[0])) if n else 0.0,
    }


def vs_constant(golds: Sequence[str], predictions: Sequence[str | None], letter: str | None = None) -> dict[str, Any]:
    """Exact McNemar test of a policy against answering one letter to every question (default: the policy's own
    most frequent letter), on per-question correctness. A policy that always answers D has no discordant question
    against "always D": p = 1, whatever its accuracy against a base model."""
    if letter is None:
        answered = Counter(p for p in predictions if p is not None)
        letter = answered.most_common(1)[0][0] if answered else None
    policy = [p == g for p, g in zip(predictions, golds)]
    constant = [letter is not None and letter == g for g in golds]
    test = mcnemar(policy, constant)
    return {
        "letter": letter,
        "accuracy": sum(policy) / len(policy) if policy else 0.0,
        "constant_accuracy": sum(constant) / len(constant) if constant else 0.0,
        "policy_only": test["only_first_correct"],
        "constant_only": test["only_second_correct"],
        "p_value": test["p_value"],
        "method": "exact McNemar (two-sided binomial on discordant questions)",
    }


def gain_verdict(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    letters: Any = 4,
    base_well_formed_rate: float | None = None,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Whether an accuracy is a gain at all, as a flag and one sentence per reason.

    Rules (any one makes the gain trivial):
    * the 95% Wilson interval's lower bound is not above chance;
    * it is not above the best constant answer's accuracy (the oracle constant: no letter-only policy beats it);
    * the exact McNemar test against the policy's own constant answer has p >= ``alpha``, i.e. question by
      question the policy is not distinguishable from answering its favourite letter everywhere.
    ``base``: with ``base_well_formed_rate == 0`` the base model never answers in this format, so a comparison
    with it measures the format, not knowledge: it reads "base cannot answer in this format" instead of a gain.
    """
    b = letter_baselines(golds, predictions, letters)
    n, correct = b["n"], round(b["accuracy"] * b["n"])
    low, high = wilson(correct, n)
    own = vs_constant(golds, predictions)
    reasons = []
    if low <= b["chance"]:
        reasons.append(f"accuracy {b['accuracy']:.3f} [{low:.3f}, {high:.3f}] is not above chance {b['chance']:.3f}")
    best = b["best_constant"]
    if low <= best["accuracy"]:
        reasons.append(
            f"not above always answering {best['letter']} ({best['accuracy']:.3f}, the golds' most frequent letter)"
        )
    if own["letter"] is not None and own["p_value"] >= alpha:
        reasons.append(
            f"no different from always answering its own top letter {own['letter']} "
            f"({own['constant_accuracy']:.3f}; McNemar p={own['p_value']:.2g}, "
            f"{own['policy_only']}:{own['constant_only']})"
        )
    base = None
    if base_well_formed_rate is not None and base_well_formed_rate == 0:
        base = "base cannot answer in this format"
    verdict = "; ".join(reasons) if reasons else f"above chance and constant answers ({b['accuracy']:.3f})"
    return {"trivial": bool(reasons), "verdict": verdict, "reasons": reasons, "base": base,
            "accuracy_ci": (low, high), "baselines": b, "vs_own_constant": own}  # fmt: skip


def gain_is_trivial(golds: Sequence[str], predictions: Sequence[str | None], letters: Any = 4) -> bool:
    """True when the accuracy is not above chance, the best constant answer, or the policy's own constant answer
    (see :func:`gain_verdict` for the rules)."""
    return gain_verdict(golds, predictions, letters)["trivial"]


# --- pass@k -----------------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with ``c`` correct among ``n`` samples (Chen et al. 2021, eq. 1):
    1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the huge binomials.

    >>> pass_at_k(4, 1, 2)
    0.5
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_summary(
    counts: Sequence[tuple[int, int]], k: int, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """pass@k per question from (n, c) pairs and its mean, with a 95% percentile bootstrap interval over questions
    (``resamples`` resamples, numpy Generator seeded with ``seed``): questions are the unit sampled from the
    benchmark, and the per-question estimates are bounded and skewed near 0 and 1, where a normal interval fails."""
    per_q = np.array([pass_at_k(n, c, k) for n, c in counts])
    if not len(per_q):
        return {"k": k, "mean": 0.0, "ci": (0.0, 0.0), "per_question": [], "method": "bootstrap over questions"}
    rng = np.random.default_rng(seed)
    boots = per_q[rng.integers(0, len(per_q), size=(resamples, len(per_q)))].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5])
    return {"k": k, "mean": float(per_q.mean()), "ci": (float(low), float(high)), "per_question": per_q.tolist(),
            "method": f"percentile bootstrap over questions ({resamples} resamples, seed {seed})"}  # fmt: skip


# --- seeds ------------------------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        even = m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m))
        odd = -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m))
        for num in (even, odd):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with (possibly fractional) ``df``: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isnan(t) or df <= 0:
        return float("nan")
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def welch_t(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's unequal-variance t-test of mean(a) - mean(b), Welch-Satterthwaite df; nan when either arm has fewer
    than two values or both have no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return {"t": float("nan"), "df": float("nan"), "p_value": float("nan")}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return {"t": float("nan"), "df": float("nan"), "p_value": 1.0 if a.mean() == b.mean() else 0.0}
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return {"t": float(t), "df": float(df), "p_value": t_two_sided_p(float(t), float(df))}


def permutation_test(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """Two-sided permutation test of the difference of means over seed labels: every relabelling when there are at
    most ``EXACT_PERMUTATIONS_MAX``, else that many seeded random ones. With 2 seeds per arm there are 6
    relabellings, so p is never below 1/3: it says plainly how little two seeds can show."""
    pooled, na = np.asarray(list(a) + list(b), float), len(a)
    observed = abs(pooled[:na].mean() - pooled[na:].mean())
    total = math.comb(len(pooled), na)
    if total <= EXACT_PERMUTATIONS_MAX:
        splits = (list(idx) for idx in combinations(range(len(pooled)), na))
        method, count = "exact permutation over seed labels", total
    else:
        rng = np.random.default_rng(seed)
        splits = (rng.permutation(len(pooled))[:na] for _ in range(EXACT_PERMUTATIONS_MAX))
        count = EXACT_PERMUTATIONS_MAX
        method = f"random permutation over seed labels ({count}, seed {seed})"
    hits = 0
    for idx in splits:
        mask = np.zeros(len(pooled), bool)
        mask[idx] = True
        hits += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
    return {"p_value": float(hits) / count, "relabellings": count, "method": method}


def _arm(values: np.ndarray) -> dict[str, Any]:
    return {"n_seeds": len(values), "mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "min": float(values.min()) if len(values) else float("nan"),
            "max": float(values.max()) if len(values) else float("nan"), "values": values.tolist()}  # fmt: skip


def compare_seeds(
    a: Sequence[float] | Sequence[Sequence[bool]], b: Sequence[float] | Sequence[Sequence[bool]], seed: int = 0
) -> dict[str, Any]:
    """Two arms (e.g. two selection strategies) trained with several seeds each: per arm mean, std (ddof 1), min
    and max of the per-seed accuracies, and the difference tested against seed-to-seed variance.

    Each entry is one seed's accuracy, or one seed's per-question correctness (its mean is the accuracy). Seeds are
    the unit of replication: a per-question test pools seeds as if they were more questions and ignores that a
    whole training run can land high or low, so it overstates certainty. Welch's t on per-seed accuracies is
    reported with its df (with 2 seeds per arm it has about 1-2 df and little power, reported anyway), beside an
    exact permutation test over seed labels, which assumes no normality.
    """
    arm_a, arm_b = (np.array([np.mean(x) if np.ndim(x) else x for x in arm], float) for arm in (a, b))
    return {
        "a": _arm(arm_a),
        "b": _arm(arm_b),
        "difference": float(arm_a.mean() - arm_b.mean()) if len(arm_a) and len(arm_b) else float("nan"),
        "welch": {**welch_t(arm_a, arm_b), "method": "Welch's t-test on per-seed accuracies"},
        "permutation": permutation_test(arm_a, arm_b, seed=seed),
        "method": "seeds as the unit of replication: Welch's t and a permutation test over seed labels",
    }
