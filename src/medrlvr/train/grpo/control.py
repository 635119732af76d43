"""The random-reward control (spurious rewards, arXiv 2506.10947): a policy trained on coin flips instead of its
rewards, to tell what training does to a model whatever the reward says (format drift, entropy collapse, answer
distribution) from what the reward teaches.

Each step the real weighted rewards are computed (and logged by TRL with weight 0, so the control's real reward
curve is in ``metrics.jsonl`` beside the others) and each completion gets ``top * coin``, ``coin ~ Bernoulli(p)``
with ``p = mean(real totals) / top`` and ``top`` the sum of the positive weights: the same mean reward as the real
rewards, spread over the group independently of the completion. Coins are drawn from a generator seeded by the
training seed and the step, so a resumed run flips what an uninterrupted one would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


class RandomRewardControl:
    __name__ = "random_reward_control"  # TRL logs rewards/<name>/mean

    def __init__(self, rewards: Sequence[Callable], weights: Sequence[float], seed: int = 0):
        if len(rewards) != len(weights):
            raise ValueError(f"{len(rewards)} rewards and {len(weights)} weights")
        self.rewards, self.weights, self.seed = list(rewards), [float(w) for w in weights], seed
        self.top = sum(w for w in self.weights if w > 0) or 1.0
        self.calls = 0

    def real_totals(self, completions, **columns) -> list[float]:
        """The weighted sum of the real rewards per completion (a reward's None counts 0, as TRL's nansum)."""
        totals = [0.0] * len(completions)
        for fn, w in zip(self.rewards, self.weights):
            for i, value in enumerate(fn(completions, **columns)):
                totals[i] += w * (value or 0.0)
        return totals

    def __call__(self, completions, trainer_state=None, **columns) -> list[float]:
        self.calls += 1
        step = trainer_state.global_step if trainer_state is not None else self.calls
        totals = self.real_totals(completions, **columns)
        p = min(1.0, max(0.0, sum(totals) / len(totals) / self.top)) if totals else 0.0
        rng = random.Random(self.seed * 1_000_003 + step)
        return [self.top if rng.random() < p else 0.0 for _ in totals]
