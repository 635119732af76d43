"""Selection by a short pilot run: a policy of the recipe trains first (``pilot: POLICY`` on the select entry;
the study orders pilot training -> selection -> training), and its per-question reward log
(``train/POLICY/question_rewards.jsonl``: per step, each question's mean accuracy over its group of rollouts)
gives each question a trajectory: its accuracy at its 1st, 2nd, ... visit (epoch).

- ``limr`` (LIMR, "LIMR: Less is More for RL Scaling", arXiv 2502.11886): Learning Impact Measurement. The run's
  mean curve is the mean accuracy over questions at each visit, r_avg^k; a question's score is
  ``1 - sum_k (r_i^k - r_avg^k)^2 / sum_k (1 - r_avg^k)^2``: 1 for a question whose trajectory follows the mean
  curve, lower the further it strays. The ``n`` of highest score are kept (LIMR keeps those above a threshold).
- ``pilot_variance`` (1-shot RLVR, "Reinforcement Learning for Reasoning in Large Language Models with One
  Training Example", arXiv 2504.20571): rank questions by the variance of their accuracy over the pilot's visits
  (its "historical variance score"), highest first; the ``n`` first are kept.

A question with fewer than ``pilot_min_visits`` visits has no trajectory to score and is not a candidate.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..records import Record
from .draw import top

Trajectories = Mapping[str, Sequence[float]]  # question id -> accuracy at each visit, in step order


def trajectories(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Each question's accuracy per visit from ``question_rewards.jsonl`` rows (``step``, ``id``, ``accuracy``;
    ``reward``, the weighted total, where no accuracy reward was logged). A step logged twice (a resumed run
    repeats the steps after its checkpoint) counts once, as last written."""
    by_id: dict[str, dict[int, float]] = {}
    for row in rows:
        value = row.get("accuracy")
        value = row.get("reward") if value is None else value
        if value is not None:
            by_id.setdefault(row["id"], {})[int(row["step"])] = float(value)
    return {i: [steps[s] for s in sorted(steps)] for i, steps in by_id.items()}


def mean_curve(paths: Trajectories) -> list[float]:
    """r_avg^k: the mean accuracy at visit k over the questions that have a k-th visit."""
    longest = max((len(p) for p in paths.values()), default=0)
    return [statistics.fmean(p[k] for p in paths.values() if len(p) > k) for k in range(longest)]


def limr_scores(paths: Trajectories) -> dict[str, float]:
    """LIMR's score per question (see the module docstring); 1.0 where the mean curve is 1 at every visit."""
    curve = mean_curve(paths)
    scores = {}
    for qid, path in paths.items():
        apart = sum((r - curve[k]) ** 2 for k, r in enumerate(path))
        room = sum((1 - curve[k]) ** 2 for k in range(len(path)))
        scores[qid] = 1 - apart / room if room > 0 else 1.0 - apart
    return scores


def _scored(pool: list[Record], paths: Trajectories, min_visits: int) -> dict[str, list[float]]:
    return {r.id: list(paths[r.id]) for r in pool if len(paths.get(r.id, ())) >= min_visits}


def limr(pool: list[Record], paths: Trajectories, config, rng: random.Random) -> list[Record]:
    candidates = _scored(pool, paths, config.pilot_min_visits)
    scores = limr_scores(paths)  # the mean curve is the whole run's
    keep = [r for r in pool if r.id in candidates]
    what = f"pilot-scored (>= {config.pilot_min_visits} visits)"
    return top(keep, lambda r: scores[r.id], config.n, rng, what, config.allow_short)


def pilot_variance(pool: list[Record], paths: Trajectories, config, rng: random.Random) -> list[Record]:
    candidates = _scored(pool, paths, max(2, config.pilot_min_visits))
    spread = {qid: statistics.pvariance(path) for qid, path in candidates.items()}
    keep = [r for r in pool if r.id in spread]
    what = f"pilot-scored (>= {max(2, config.pilot_min_visits)} visits)"
    return top(keep, lambda r: spread[r.id], config.n, rng, what, config.allow_short)
