"""Circular evaluation: every question asked under the rotations of its options (MMBench's CircularEval, Liu et al.
2023), so that knowing an answer and liking a position can be told apart.

One order per question cannot tell them apart: by log-likelihood a 135M model answers "A" to nearly every MMLU
question and scores the share of A among the golds. Asked under each rotation (:func:`medrlvr.options.rotations`: n
orders for n free options, the gold once in every free place; for long lists such as MMLU-Pro's ten, the original
order and ``circular_rotations - 1`` seeded others), a letter prior earns nothing: a question counts as right only
if every rotation is. Options that speak about the others ("All of the above") keep their places.

What results.json gets, under ``circular``:
- ``accuracy_all_rotations``: questions right under every rotation, with a 95% Wilson interval, beside
  ``chance_all_rotations`` (a uniform guess: the mean of (1/k)^r over questions);
- ``per_rotation``: accuracy under rotation j (j = 0 is the original order: the plain accuracy) with its interval;
- ``consistent_rate``: questions whose chosen option (by its text, not its letter) is the same under every rotation;
- ``position_bias``: per position, how often it was chosen against its share of the golds over every rotation asked,
  the chosen share's Wilson interval, and the total variation distance between the two distributions;
- ``skipped``: questions whose options cannot be rotated (fewer than two free to move), counted with their reasons
  and never scored as circular; their plain (original-order) answer still counts in the plain accuracy.

Each prediction row keeps its original-order fields (so every plain summary, the baselines and the paired tests read
it as before) and adds ``rotations``: per order, the order itself (the original letters in their new places), the
gold, the answer in that lettering, ``answer_original`` (the chosen option's original letter), correctness and
credit. In log-likelihood mode the rotations of a question share its stem (header and question): they are scored in
one engine call, whose prefix grouping (:func:`medrlvr.engines.cache.prefix_groups`) runs the stem once for them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import UserError
from ..options import old_letter, permute, rotations, why_fixed
from ..records import LETTERS, Record
from ..stats import wilson

ROTATION_ID = "{id}#rotation{j}"  # the id a rotation is asked under (never written: rows are folded back)


def check_circular(records: Sequence[Record], benchmark: str) -> None:
    """One line before anything runs when a benchmark has questions without options (GSM8K): nothing to rotate."""
    bare = next((r for r in records if not r.options), None)
    if bare is not None:
        raise UserError(f"{benchmark}: circular evaluation needs multiple-choice questions; question {bare.id!r} has "
                        "no options (leave circular off for this benchmark)")  # fmt: skip


def plan(records: Sequence[Record], limit: int | None, seed: int) -> tuple[list[Record], list[tuple]]:
    """The questions to ask (each rotation a record of its own, the original order first, under the original id)
    and per question ``(record, orders, reason)``: ``reason`` says why it is not rotated (then it is asked once)."""
    asked, plans = [], []
    for r in records:
        reason = why_fixed(r)
        orders = rotations(r, limit, seed)
        plans.append((r, orders, reason))
        asked.append(r)
        for j, order in enumerate(orders[1:], start=1):
            moved = permute(r, order)
            asked.append(Record(id=ROTATION_ID.format(id=r.id, j=j), question=moved.question, options=moved.options,
                                answer=moved.answer, subject=r.subject, source=r.source, split=r.split))  # fmt: skip
    return asked, plans


SUB_FIELDS = ("gold", "answer", "correct", "credit", "tied", "too_long", "answer_flexible", "correct_flexible",
              "well_formed", "response")  # fmt: skip


def fold(rows: Sequence[dict], plans: Sequence[tuple]) -> list[dict]:
    """One row per question from the rows of :func:`plan`'s asked records (in that order): the original order's row,
    with ``rotations`` (or ``circular_skipped``, the reason)."""
    out, i = [], 0
    for _record, orders, reason in plans:
        mine = rows[i : i + len(orders)]
        i += len(orders)
        row = dict(mine[0])
        if reason:
            row["circular_skipped"] = reason
        else:
            row["rotations"] = [_sub(sub, order) for sub, order in zip(mine, orders)]
        out.append(row)
    return out


def _sub(row: dict, order: Sequence[str]) -> dict:
    sub = {k: row[k] for k in SUB_FIELDS if k in row}
    sub.setdefault("credit", float(row.get("correct", False)))
    answer = row.get("answer")
    sub["order"] = "".join(order)
    sub["answer_original"] = old_letter(answer, order) if answer in LETTERS[: len(order)] else None
    return sub


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """results.json's ``circular`` block from folded prediction rows (see the module docstring)."""
    rotated = [r for r in rows if "rotations" in r]
    skipped = [r for r in rows if "circular_skipped" in r]
    n = len(rotated)
    all_right = sum(all(s["correct"] for s in r["rotations"]) for r in rotated)
    consistent = sum(len({s["answer_original"] for s in r["rotations"]}) == 1
                     and r["rotations"][0]["answer_original"] is not None for r in rotated)  # fmt: skip
    depth = max((len(r["rotations"]) for r in rotated), default=0)
    per_rotation = []
    for j in range(depth):
        subs = [r["rotations"][j] for r in rotated if len(r["rotations"]) > j]
        credit = sum(s["credit"] for s in subs)
        per_rotation.append({"rotation": j, "n": len(subs), "accuracy": credit / len(subs),
                             "ci95": wilson(credit, len(subs))})  # fmt: skip
    subs = [s for r in rotated for s in r["rotations"]]
    chance = [math.prod(1 / len(s["order"]) for s in r["rotations"]) for r in rotated]
    return {
        "n": n,
        "skipped": len(skipped),
        "skipped_reasons": dict(Counter(r["circular_skipped"] for r in skipped)),
        "skipped_ids": [r["id"] for r in skipped][:50],
        "rotations_per_question": {"min": min((len(r["rotations"]) for r in rotated), default=0), "max": depth},
        "asked": len(subs),
        "accuracy_all_rotations": all_right / n if n else 0.0,
        "ci95_all_rotations": wilson(all_right, n),
        "chance_all_rotations": sum(chance) / n if n else 0.0,
        "accuracy_mean_rotations": sum(s["credit"] for s in subs) / len(subs) if subs else 0.0,
        "per_rotation": per_rotation,
        "consistent_rate": consistent / n if n else 0.0,
        "ci95_consistent": wilson(consistent, n),
        "position_bias": position_bias(subs),
    }


def position_bias(subs: Sequence[dict]) -> dict[str, Any]:
    """How often each position (letter) was chosen, of the answered asks, against its share of the golds, of all
    asks; the chosen share's 95% Wilson interval; ``ratio`` chosen share / gold share (1: no bias); and the total
    variation distance between the two distributions (0: the answers' positions follow the golds')."""
    chosen = Counter(s["answer"] for s in subs if s.get("answer"))
    golds = Counter(s["gold"] for s in subs)
    answered, asked = sum(chosen.values()), len(subs)
    positions = {}
    for letter in sorted(set(chosen) | set(golds)):
        c_share = chosen[letter] / answered if answered else 0.0
        g_share = golds[letter] / asked if asked else 0.0
        positions[letter] = {"chosen": chosen[letter], "chosen_share": c_share, "ci95": wilson(chosen[letter], answered),
                             "gold": golds[letter], "gold_share": g_share,
                             "ratio": c_share / g_share if g_share else None}  # fmt: skip
    tv = 0.5 * sum(abs(p["chosen_share"] - p["gold_share"]) for p in positions.values()) if answered else None
    return {"answered": answered, "asked": asked, "positions": positions, "total_variation": tv}
