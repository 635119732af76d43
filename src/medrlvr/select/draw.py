"""What every strategy draws with: a uniform or subject-stratified sample (:func:`draw`), a top-n by score with
seeded tie-breaking (:func:`top`), a weighted sample without replacement (:func:`weighted`), and the one error a
strategy raises when the pool cannot supply what it asks for. The strategy modules import these, never the
package's ``__init__`` (which imports them)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

from ..errors import UserError
from ..records import Record


class SelectionError(UserError):
    """A training set that cannot be drawn as asked (too few questions, no labels)."""


def enough(count: int, have: int, what: str, allow_short: bool) -> int:
    """``count``, or what there is with ``allow_short``; otherwise the one-line error saying what is short."""
    if count > have:
        if not allow_short:
            raise SelectionError(
                f"asked for {count} {what} questions, the pool has {have} "
                f"(short by {count - have}; --allow-short takes what there is)"
            )
        return have
    return count


def draw(
    candidates: list[Record], count: int, rng: random.Random, stratify: bool, what: str, allow_short: bool
) -> list[Record]:
    """``count`` of ``candidates`` uniformly, or in proportion to their subjects (largest remainder)."""
    count = enough(count, len(candidates), what, allow_short)
    if not stratify:
        return rng.sample(candidates, count)
    by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in candidates:
        by_subject[r.subject].append(r)
    subjects = sorted(by_subject)
    quotas = {s: count * len(by_subject[s]) / len(candidates) for s in subjects}
    take = {s: int(q) for s, q in quotas.items()}
    for s in sorted(subjects, key=lambda s: (-(quotas[s] - take[s]), s))[: count - sum(take.values())]:
        take[s] += 1
    chosen: list[Record] = []
    for s in subjects:
        chosen += rng.sample(by_subject[s], take[s])
    rng.shuffle(chosen)
    return chosen


def top(
    candidates: Sequence[Record], score: Callable[[Record], float], count: int, rng: random.Random, what: str,
    allow_short: bool,
) -> list[Record]:  # fmt: skip
    """The ``count`` highest-scoring candidates; equal scores are ordered by a seeded shuffle (so the seed decides
    among ties, and nothing else does)."""
    count = enough(count, len(candidates), what, allow_short)
    order = list(candidates)
    rng.shuffle(order)
    return sorted(order, key=score, reverse=True)[:count]  # sorted is stable: the shuffle breaks ties


def weighted(
    candidates: Sequence[Record], weight: Callable[[Record], float], count: int, rng: random.Random, what: str,
    allow_short: bool,
) -> list[Record]:  # fmt: skip
    """``count`` candidates drawn without replacement with probability proportional to ``weight`` at each draw
    (Efraimidis and Spirakis' keys u^(1/w), as ``numpy.random.Generator.choice(replace=False, p=...)`` draws but
    with the stdlib generator every strategy is seeded with); a weight of 0 is never drawn."""
    positive = [r for r in candidates if weight(r) > 0]
    count = enough(count, len(positive), what, allow_short)
    keys = {r.id: rng.random() ** (1.0 / weight(r)) for r in positive}
    return sorted(positive, key=lambda r: keys[r.id], reverse=True)[:count]


def round_robin(candidates: Sequence[Record], count: int, rng: random.Random, what: str, allow_short: bool):
    """``count`` candidates spread as evenly over their subjects as the subjects allow: subjects in a seeded order
    take one question each in turn (a random one of theirs), a subject that runs out drops out (s1's and m1's
    diversity sampling by domain, where the domain is the record's subject)."""
    count = enough(count, len(candidates), what, allow_short)
    by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in candidates:
        by_subject[r.subject].append(r)
    queues = [by_subject[s] for s in sorted(by_subject)]
    for q in queues:
        rng.shuffle(q)
    rng.shuffle(queues)
    chosen: list[Record] = []
    while len(chosen) < count:
        for q in queues:
            if q and len(chosen) < count:
                chosen.append(q.pop())
        queues = [q for q in queues if q]
    return chosen
