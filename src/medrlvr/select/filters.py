"""Selection by several filter models' labels (each a filter run over the same pool; a recipe's select entry names
them as ``filter: [A, B]``).

- ``fail_then_diverse`` (m1, "m1: Unleash the Potential of Test-Time Scaling for Medical Reasoning with Large
  Language Models", arXiv 2504.00869, after s1): keep the questions every named filter model fails (pass rate 0:
  no sample right), then sample for diversity by domain: subjects take one question each in turn, so a small
  training set covers as many subjects as the failed questions span (m1 classifies domains with a model; medrlvr's
  records carry their subject, which is the domain here).
- ``filter_agreement``: agreement of several filters on difficulty, Open-Medical-R1's filter-policy gap made a
  rule. ``agreement: all`` keeps the questions every filter labels hard; ``agreement: weaker_only`` keeps those
  the weaker filters label hard and the strongest (highest mean pass rate on the pool) labels easy: hard for the
  weaker only, within reach of a stronger model. Then ``n`` are drawn uniformly (or by subject with ``stratify``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..records import Record
from .draw import SelectionError, draw, round_robin

Labels = Mapping[str, Mapping[str, Mapping[str, Any]]]  # filter name -> question id -> label row


def strongest(pool: list[Record], labels: Labels) -> str:
    """The filter with the highest mean pass rate over the pool's answered questions (ties: the first named)."""

    def mean(rows: Mapping[str, Mapping[str, Any]]) -> float:
        rates = [rows[r.id]["pass_rate"] for r in pool if rows[r.id]["pass_rate"] is not None]
        return sum(rates) / len(rates) if rates else 0.0

    return max(labels, key=lambda name: mean(labels[name]))


def fail_then_diverse(pool: list[Record], labels: Labels, config, rng: random.Random) -> list[Record]:
    failed = [r for r in pool if all(rows[r.id]["pass_rate"] == 0 for rows in labels.values())]
    what = f"failed by {' and '.join(labels)}"
    return round_robin(failed, config.n, rng, what, config.allow_short)


def filter_agreement(pool: list[Record], labels: Labels, config, rng: random.Random) -> list[Record]:
    if len(labels) < 2:
        raise SelectionError(f"filter_agreement needs two filters or more, got {len(labels)}: {', '.join(labels)}")
    if config.agreement == "all":
        keep = [r for r in pool if all(rows[r.id]["label"] == "hard" for rows in labels.values())]
        what = f"hard for all of {', '.join(labels)}"
    else:
        best = strongest(pool, labels)
        weaker = [name for name in labels if name != best]
        keep = [r for r in pool if labels[best][r.id]["label"] == "easy"
                and all(labels[w][r.id]["label"] == "hard" for w in weaker)]  # fmt: skip
        what = f"hard for {', '.join(weaker)} and easy for {best}"
    return draw(keep, config.n, rng, config.stratify, what, config.allow_short)
