"""PPO's math (Schulman et al., arXiv 1707.06347) on (batch, tokens) tensors, with GAE (arXiv 1506.02438) and a
KL penalty folded into the reward, as Med-RLVR (arXiv 2502.19655) trains with verl. Only torch: no model, no trainer.

Each function is written here and checked against verl 0.9.1 by ``scripts/ppo_verl_check.py``:

- :func:`kl_in_reward`       -- ``verl.trainer.ppo.ray_trainer.apply_kl_penalty`` with ``core_algos.kl_penalty``
- :func:`gae`                -- ``core_algos.compute_gae_advantage_return`` (which whitens the advantages itself)
- :func:`masked_mean`, :func:`masked_var`, :func:`masked_whiten` -- ``verl.utils.torch_functional``
- :func:`policy_loss`        -- ``core_algos.compute_policy_loss_vanilla`` (clip-higher; dual-clip, arXiv 1912.09729)
- :func:`value_loss`         -- ``core_algos.compute_value_loss`` (the clipped squared error, halved)
- :func:`explained_variance` -- the ``critic/vf_explained_var`` metric of ``verl.trainer.ppo.metric_utils``

Every tensor is (batch, tokens) over the response; ``mask`` is 1 on the tokens the policy generated and 0 on padding
(and on tool or observation tokens inside a response, which GAE steps over). Defaults: verl's ``ppo_trainer.yaml``
has gamma 1.0, lambda 1.0, clip 0.2 and a value clip of 0.5. OpenRLHF's ``train_ppo_ray.py`` now says the same
(gamma 1, lambd 1, value_clip 0.5); its earlier releases had lambd 0.95 and value_clip 0.2, the values often quoted.
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    # where(), not x * mask alone: a NaN or inf on a padded position (a log-prob of padding) would survive 0 * x
    kept = torch.where(mask.bool(), x, torch.zeros_like(x))
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the tokens where ``mask`` is 1 (over ``dim`` only, if given); 0 where nothing is kept.

    >>> masked_mean(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]])).item()
    2.0
    """
    count = mask.sum() if dim is None else mask.sum(dim)
    # an empty row gives 0, not NaN. verl adds 1e-8 to the count instead, which float32 (the dtype an integer or
    # boolean mask's count + 1e-8 takes) rounds away for any count of 1 or more: the same as dividing by the count
    return masked_sum(x, mask, dim) / count.to(x.dtype).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the mask, with Bessel's correction by default (as verl's); needs two kept tokens.

    >>> masked_var(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]])).item()
    2.0
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError(f"masked_var: the mask keeps {int(count)} token(s); the unbiased variance needs 2")
        var = var * count / (count - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``x`` scaled to unit variance over the mask, and centred unless ``shift_mean`` is False (then its mean is
    kept). Every position is transformed, padding included: the statistics alone come from the mask."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "kl") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probabilities (J. Schulman,
    "Approximating KL divergence", 2020): ``kl``/``k1`` is the log-ratio (unbiased, can be negative), ``mse``/``k2``
    half its square, ``abs`` its absolute value, ``low_var_kl``/``k3`` ``r - log r - 1`` with ``r = ref/policy``
    (unbiased, never negative)."""
    log_ratio = logprobs - ref_logprobs
    if estimator in ("kl", "k1"):
        return log_ratio
    if estimator == "abs":
        return log_ratio.abs()
    if estimator in ("mse", "k2"):
        return 0.5 * log_ratio.square()
    if estimator in ("low_var_kl", "k3"):
        # the clamps are verl's: exp() of a log-ratio past 20 overflows in fp16/bf16 and one such token would
        # dominate the batch's reward
        neg = (-log_ratio).clamp(-20, 20)
        return (neg.exp() - neg - 1).clamp(-10, 10)
    raise ValueError(f"KL estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last kept token of each row (-1 for a row with none); works for left, right or inner padding."""
    positions = torch.arange(1, mask.shape[-1] + 1, device=mask.device)
    return (mask.bool() * positions).max(-1).values - 1


def kl_in_reward(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    estimator: str = "kl",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: each sequence's score (``scores``, shape (batch,)) on its last kept token, minus
    ``beta`` times the per-token KL estimate on every kept token. Returns ``(token_rewards, kl)``, ``kl`` zero on
    padding. ``logprobs`` are the rollout policy's (verl's ``old_log_probs``), not the policy being updated: the
    penalty is part of the reward, fixed for the whole update.

    >>> rewards, kl = kl_in_reward(torch.tensor([1.0]), torch.tensor([[-1.0, -1.0, 0.0]]),
    ...                            torch.tensor([[-2.0, -1.0, 0.0]]), torch.tensor([[1, 1, 0]]), beta=0.5)
    >>> rewards.tolist(), kl.tolist()
    ([[-0.5, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    """
    kl = kl_estimate(logprobs, ref_logprobs, estimator) * mask
    last = last_token_index(mask)
    token_scores = torch.zeros_like(logprobs)
    rows = torch.nonzero(last >= 0).squeeze(-1)  # a row with no kept token gets no score: nowhere to put it
    token_scores[rows, last[rows]] = scores[rows].to(logprobs.dtype)
    return token_scores - beta * kl, kl


@torch.no_grad()
def gae(
    token_rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
    whiten: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, backwards over the tokens: ``delta_t = r_t + gamma * V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma * lam * A_{t+1}``, where "t+1" is the next *kept* token (masked tokens are stepped over:
    they neither bootstrap nor accumulate) and both are 0 past the last. Returns ``(advantages, returns)`` with
    ``returns = A + V`` before any whitening: the critic's target. ``whiten=True`` (verl's GAE always does it)
    whitens the advantages over the whole batch's mask, which is what the policy loss then sees.

    With gamma = lam = 1 and one reward R at the end, ``A_t = R - V_t`` and every return is R:

    >>> advantages, returns = gae(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]]),
    ...                           torch.ones(1, 3), whiten=False)
    >>> advantages.tolist(), returns.tolist()
    ([[1.5, 1.0, 0.5]], [[2.0, 2.0, 2.0]])
    """
    mask = mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(values.shape[-1])):
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        keep = mask[:, t]
        # on a masked token the running value and advantage pass through unchanged to the token before it
        next_value = keep * values[:, t] + (1 - keep) * next_value
        next_advantage = keep * advantage + (1 - keep) * next_advantage
        advantages[:, t] = next_advantage
    returns = advantages + values
    if whiten:
        advantages = masked_whiten(advantages, mask)
    return advantages, returns


def aggregate(loss: torch.Tensor, mask: torch.Tensor, agg: str = "token-mean") -> torch.Tensor:
    """One number from per-token losses. ``token-mean``: the mean over every kept token of the batch (a long answer
    weighs more; DAPO's choice). ``seq-mean-token-mean``: each sequence's token mean, averaged over sequences (the
    original GRPO's; verl's PPO default). ``seq-mean-token-sum``: each sequence's token sum, averaged. Sequences with
    no kept token are left out of the sequence means."""
    mask = mask.to(loss.dtype)
    if agg == "token-mean":
        # clamp: an all-padding batch gives 0, where verl divides by zero (the only place this module differs)
        return masked_sum(loss, mask) / mask.sum().clamp(min=1)
    if agg in ("seq-mean-token-mean", "seq-mean-token-sum"):
        tokens = mask.sum(-1)
        per_sequence = masked_sum(loss, mask, dim=-1)
        if agg == "seq-mean-token-mean":
            per_sequence = per_sequence / tokens.clamp(min=1)  # as in masked_mean
        has_tokens = (tokens > 0).to(loss.dtype)
        return (per_sequence * has_tokens).sum() / has_tokens.sum().clamp(min=1)
    raise ValueError(f"loss aggregation must be one of {', '.join(AGG_MODES)}, got {agg!r}")


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float = 3.0,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, to minimise: per token ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))`` with
    ``r = exp(logprobs - old_logprobs)``; where A < 0 it is also capped at ``-A * clip_ratio_c`` (dual-clip: a token
    the policy has already made far likelier cannot push the loss without bound). ``clip_high > clip_low`` is DAPO's
    clip-higher. Returns ``(loss, clipfrac, approx_kl, clipfrac_lower)``: the share of kept tokens where the clip
    bound, the mean of ``old - new`` log-probabilities (k1 of the old policy from the new), and the share where the
    dual clip bound.

    >>> lp = torch.tensor([[-1.0, -2.0]])
    >>> loss, clipfrac, approx_kl, lower = policy_loss(lp, lp, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    >>> loss.item(), clipfrac.item(), approx_kl.item()
    (0.0, 0.0, 0.0)
    """
    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be above 1 (the dual clip caps the ratio from above), got {clip_ratio_c}")
    # verl's clamp: a ratio of e^20 is already meaningless, and exp() past it overflows in half precision
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    approx_kl = masked_mean(-log_ratio, mask)

    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    pessimistic = torch.maximum(unclipped, clipped)
    clipfrac = masked_mean((clipped > unclipped).to(ratio.dtype), mask)

    dual = -advantages * clip_ratio_c
    negative = advantages < 0
    clipfrac_lower = masked_mean(((pessimistic > dual) & negative).to(ratio.dtype), mask)
    per_token = torch.where(negative, torch.minimum(pessimistic, dual), pessimistic)
    return aggregate(per_token, mask, agg), clipfrac, approx_kl, clipfrac_lower


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.5,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's clipped regression to the GAE returns: per token ``max((V - R)^2, (V_clip - R)^2)`` with
    ``V_clip = old_V + clip(V - old_V, -clip, clip)``, aggregated like the policy loss and halved (verl's and TRL's
    0.5, so that the gradient is ``V - R``). ``clip`` is in the returns' units, not relative. Returns
    ``(loss, clipfrac)``, the share of kept tokens where the clipped error was the larger.

    A critic that jumps from 0 straight onto a return of 2 is held to the clipped error (2 - 0.5)^2, halved:

    >>> loss, clipfrac = value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]),
    ...                             torch.ones(1, 1), clip=0.5)
    >>> loss.item(), clipfrac.item()
    (1.125, 1.0)
    """
    clipped_values = torch.maximum(torch.minimum(values, old_values + clip), old_values - clip)
    errors = (values - returns) ** 2
    clipped_errors = (clipped_values - returns) ** 2
    loss = 0.5 * aggregate(torch.maximum(errors, clipped_errors), mask, agg)
    clipfrac = masked_mean((clipped_errors > errors).to(values.dtype), mask)
    return loss, clipfrac


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - Var(R - V) / Var(R)`` over the kept tokens (unbiased variances; verl's 1e-5 keeps a constant return
    finite): 1 is a perfect critic, 0 one no better than the mean return, below 0 one worse than that.

    >>> explained_variance(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1.0, 2.0, 5.0]]),
    ...                    torch.tensor([[1, 1, 0]])).item()
    1.0
    """
    return 1.0 - masked_var(returns - values, mask) / (masked_var(returns, mask) + 1e-5)
