"""The adversarial-prefill probe (BioMed-R1, arXiv 2505.11462): each question is asked again with the answer begun
by a sentence arguing for a wrong option, and compared with the plain answer to the same question.

BioMed-R1 prefills an incorrect answer and lets the model reconsider; a published biomedical model fell from 50.4%
to 24.4% under it. Here the wrong option is drawn per question from ``(seed, question id)`` (a seeded
``random.Random``: the same option on every rerun and for every model, so models are compared on the same pushes),
the sentence is :data:`medrlvr.prompts.ADVERSARIAL_PREFILL` (our wording) after the run's own prefill, and the answer
is read as the plain run's is (the strict and flexible readings of ``prefill + completion``: a model that writes
nothing after the sentence has not answered, since the sentence is not in the answer format).

Reported (``results.json`` under ``adversarial_prefill``): accuracy under the prefill and the plain accuracy on the
same questions, both with Wilson intervals; the flips against the plain run, right -> wrong (of the questions the
plain run got right) and wrong -> right (of those it got wrong), each a count and a rate with a Wilson interval;
how often the answer is the pushed option; and the exact McNemar p of plain against prefilled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..prompts import ADVERSARIAL_PREFILL
from ..records import Record
from ..stats import mcnemar, wilson


def wrong_option(record: Record, seed: int) -> str | None:
    """The option the prefill argues for: a wrong one, drawn from ``(seed, record.id)``; None without options."""
    wrong = [letter for letter in record.options if letter != record.answer]
    return random.Random(f"adversarial-prefill:{seed}:{record.id}").choice(wrong) if wrong else None


def settings(plain: dict[str, Any], seed: int) -> dict[str, Any]:
    """What decides a probe answer: the plain answer's settings, the wording and the seed of the pushed options."""
    return {**plain, "probe": "adversarial_prefill", "wording": ADVERSARIAL_PREFILL, "seed": seed}


def probe_row(row: dict[str, Any], pushed: str) -> dict[str, Any]:
    """A generate-mode row made under the adversarial prefill, with the option pushed and whether it was taken."""
    return {**row, "pushed": pushed, "followed": row["answer"] == pushed}


def skipped_row(record: Record) -> dict[str, Any]:
    return {"id": record.id, "subject": record.subject, "gold": record.answer, "skipped": "no options to push"}


def _rate(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "n": n, "rate": count / n if n else 0.0, "ci95": list(wilson(count, n))}


def summarize(plain: Sequence[dict], probed: Sequence[dict]) -> dict[str, Any]:
    """The probe's results on the questions both runs answered (rows paired by id)."""
    by_id = {r["id"]: r for r in probed if "skipped" not in r}
    pairs = [(p, by_id[p["id"]]) for p in plain if p["id"] in by_id]
    n = len(pairs)
    before = [bool(p["correct"]) for p, _ in pairs]
    after = [bool(q["correct"]) for _, q in pairs]
    right_before, right_after = sum(before), sum(after)
    test = mcnemar(before, after)
    return {
        "n": n,
        "skipped": len(probed) - len(by_id),
        "accuracy_plain": right_before / n if n else 0.0,
        "ci95_plain": list(wilson(right_before, n)),
        "accuracy": right_after / n if n else 0.0,
        "ci95": list(wilson(right_after, n)),
        "right_to_wrong": _rate(sum(b and not a for b, a in zip(before, after)), right_before),
        "wrong_to_right": _rate(sum(a and not b for b, a in zip(before, after)), n - right_before),
        "followed": _rate(sum(bool(q["followed"]) for _, q in pairs), n),
        "mcnemar_p": test["p_value"],
        "method": "right -> wrong of the plain run's right answers, wrong -> right of its wrong ones; 95% Wilson "
        "intervals; exact McNemar on the pairs",
    }
