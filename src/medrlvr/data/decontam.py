"""Decontamination: drop pool questions that share a word 8-gram with an evaluation benchmark's questions, as
open-r1 and s1 do. Text is lower-cased and split into words (``\\w+``) before the n-grams are taken.

Multiple-choice exams share stock phrasing ("which of the following is the most likely"): an n-gram found in
``stock_min`` or more questions of the pool and the evaluation sets together says nothing about leakage and is
ignored (``stock_min=0`` counts every n-gram).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from ..records import Record

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int = 8) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def decontaminate(
    pool: Sequence[Record], eval_records: Iterable[Record], n: int = 8, stock_min: int = 3
) -> tuple[list[Record], list[dict]]:
    """(kept pool, dropped list). Each dropped entry names the question and one overlapping n-gram."""
    pool_grams = [ngrams(r.question, n) for r in pool]
    eval_counts: Counter[str] = Counter()
    for r in eval_records:
        eval_counts.update(ngrams(r.question, n))
    counts = Counter(eval_counts)
    for grams in pool_grams:
        counts.update(g for g in grams if g in eval_counts)
    index = {g for g in eval_counts if not stock_min or counts[g] < stock_min}
    kept, dropped = [], []
    for r, grams in zip(pool, pool_grams):
        hit = next((g for g in sorted(grams) if g in index), None)
        if hit is None:
            kept.append(r)
        else:
            dropped.append({"id": r.id, "ngram": hit})
    return kept, dropped
