"""Decontamination: drop pool questions that share a word 8-gram with an evaluation benchmark's questions, as
open-r1 and s1 do. Text is lower-cased and split into words (``\\w+``) before the n-grams are taken."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from .records import Record

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int = 8) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def build_index(records: Iterable[Record], n: int = 8) -> set[str]:
    index: set[str] = set()
    for r in records:
        index |= ngrams(r.question, n)
    return index


def decontaminate(
    pool: Sequence[Record], eval_records: Iterable[Record], n: int = 8
) -> tuple[list[Record], list[dict]]:
    """(kept pool, dropped list). Each dropped entry names the question and one overlapping n-gram."""
    index = build_index(eval_records, n)
    kept, dropped = [], []
    for r in pool:
        hit = next((g for g in ngrams(r.question, n) if g in index), None)
        if hit is None:
            kept.append(r)
        else:
            dropped.append({"id": r.id, "ngram": hit})
    return kept, dropped
