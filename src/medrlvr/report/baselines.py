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

The tests themselves (McNemar, Wilson, pass@k, the seed comparison) are :mod:`medrlvr.stats`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import LETTERS
from ..stats import mcnemar, wilson

ALPHA = 0.05  # two-sided level for every "is it above" decision here


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
