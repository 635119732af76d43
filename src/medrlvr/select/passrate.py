"""Selection by the policy's own pass rates: a filter run with ``k`` samples per question (the policy itself as
the filter: its pass rate on each question is what the rules below read).

- ``learnability`` (Foster and Foerster, "Learning to Reason at the Frontier of Learnability", arXiv 2502.12272):
  a question's learnability is p(1-p), the variance of its Bernoulli reward, highest for questions the policy
  solves half the time and zero for those it always or never solves; questions are sampled in proportion to it
  (here: ``n`` drawn without replacement, each draw in proportion to p(1-p) of what is left).
- ``variance`` (VCRL, "Variance-based Curriculum Reinforcement Learning for Large Language Models", arXiv
  2509.19803): the unbiased variance of a group of G rollouts with k correct, k(G-k)/(G(G-1)), normalised by its
  largest value (k = G/2) to lie in [0, 1]; VCRL keeps the questions whose normalised variance passes a threshold.
  Here: the ``n`` of highest normalised variance, at least ``min_variance``, ties broken by the seed.

Both need k >= 2 samples per question (one sample has no variance): the recipe refuses a filter with k < 2 before
anything runs, and :func:`group_variance` refuses a row without its sample count.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..records import Record
from .draw import SelectionError, top, weighted


def group_variance(row: Mapping[str, Any]) -> float | None:
    """The normalised variance of a question's k-sample reward, k(G-k)/(G(G-1)) over its largest value (None for a
    question the filter did not answer). ``row``: a filter label row with ``pass_rate`` and ``samples`` (G)."""
    if row.get("pass_rate") is None:
        return None
    samples = row.get("samples")
    if not samples or samples < 2:
        raise SelectionError(f"variance needs a filter run with k >= 2 samples per question, got k={samples}")
    correct = round(row["pass_rate"] * samples)
    return correct * (samples - correct) / ((samples // 2) * ((samples + 1) // 2))


def learnability(pool: list[Record], labels, config, rng: random.Random) -> list[Record]:
    rates = {r.id: labels[r.id]["pass_rate"] for r in pool}
    small = next((labels[r.id]["samples"] for r in pool if labels[r.id].get("samples", 2) < 2), None)
    if small is not None:  # one sample: p(1-p) is 0 for every question
        raise SelectionError(f"learnability needs a filter run with k >= 2 samples per question, got k={small}")
    weight = {i: (p * (1 - p) if p is not None else 0.0) for i, p in rates.items()}
    return weighted(pool, lambda r: weight[r.id], config.n, rng, "learnable (0 < pass rate < 1)", config.allow_short)


def variance(pool: list[Record], labels, config, rng: random.Random) -> list[Record]:
    scores = {r.id: group_variance(labels[r.id]) for r in pool}
    keep = [r for r in pool if scores[r.id] is not None and scores[r.id] > 0 and scores[r.id] >= config.min_variance]
    what = f"normalised variance >= {config.min_variance} (and > 0)"
    return top(keep, lambda r: scores[r.id], config.n, rng, what, config.allow_short)
