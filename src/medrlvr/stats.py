"""Every statistic medrlvr reports, in one place: intervals (Wilson), paired tests (exact McNemar), pass@k (Chen et
al.'s unbiased estimator with a bootstrap interval), and the comparison of arms over seeds (Welch's t and an exact
permutation test). Distributions come from scipy.stats (the binomial for McNemar, Student's t for Welch); what is
left here is the bookkeeping around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from .errors import UserError

BOOTSTRAP_RESAMPLES = 2000  # pass@k interval: resamples of the questions
EXACT_PERMUTATIONS_MAX = 20_000  # seed permutation test: enumerate every relabelling up to this many, else sample


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test (two-sided binomial on the discordant pairs) for two models on the same questions."""
    if len(a) != len(b):
        raise UserError("paired test needs the same questions for both models")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    from scipy.stats import binomtest  # imported here: `import medrlvr` stays light (verl's venv has no scipy)

    n = only_a + only_b
    p = float(binomtest(min(only_a, only_b), n, 0.5).pvalue) if n else 1.0
    return {"only_first_correct": only_a, "only_second_correct": only_b, "p_value": p}


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


# --- seeds ------------------------------------------------------------------------------------------------------


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with (possibly fractional) ``df``."""
    if math.isnan(t) or df <= 0:
        return float("nan")
    from scipy.stats import t as student_t

    return float(2.0 * student_t.sf(abs(t), df))


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
