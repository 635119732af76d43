"""PPO's math on literal inputs: what GAE, whitening, the clipped losses and the KL penalty must give by hand.
Against verl's own functions: tests/test_ppo_verl.py."""

import pytest
import torch

from medrlvr.train.ppo.core import (
    explained_variance,
    gae,
    kl_estimate,
    kl_in_reward,
    last_token_index,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    value_loss,
)

# three responses of 4, 2 and 3 tokens, right-padded
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])


def test_gae_with_gamma_and_lambda_one_returns_the_final_reward_at_every_token():
    values = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, -0.5, 9.0, 9.0], [0.0, 1.0, 2.0, 9.0]])
    rewards = torch.zeros(3, 4)
    rewards[0, 3], rewards[1, 1], rewards[2, 2] = 1.0, -1.0, 0.5
    advantages, returns = gae(rewards, values, MASK, gamma=1.0, lam=1.0, whiten=False)
    expected_returns = torch.tensor([[1.0] * 4, [-1.0, -1.0, 9.0, 9.0], [0.5] * 3 + [9.0]])
    # padding past the end bootstraps nothing: advantage 0 there, the return is the (padded) value itself
    assert torch.allclose(returns, expected_returns)
    assert torch.allclose(advantages, (expected_returns - values) * MASK)


def test_gae_discounts_and_steps_over_masked_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    gamma, lam = 0.9, 0.5
    advantages, _ = gae(rewards, values, torch.ones(1, 3), gamma=gamma, lam=lam, whiten=False)
    deltas = [0 + gamma * 2.0 - 1.0, 0 + gamma * 3.0 - 2.0, 1.0 - 3.0]
    by_hand = [deltas[2]]
    for d in reversed(deltas[:2]):
        by_hand.insert(0, d + gamma * lam * by_hand[0])
    assert torch.allclose(advantages, torch.tensor([by_hand]))
    # a masked middle token (an observation inside the response) is invisible to the tokens around it
    inner = torch.tensor([[1, 0, 1]])
    advantages, _ = gae(rewards, values, inner, gamma=gamma, lam=lam, whiten=False)
    first = (gamma * 3.0 - 1.0) + gamma * lam * (1.0 - 3.0)
    assert torch.allclose(advantages[:, [0, 2]], torch.tensor([[first, 1.0 - 3.0]]))


def test_gae_whitened_is_the_unwhitened_advantage_whitened_and_the_returns_do_not_change():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    raw, raw_returns = gae(rewards, values, MASK, gamma=0.99, lam=0.95, whiten=False)
    white, returns = gae(rewards, values, MASK, gamma=0.99, lam=0.95)
    assert torch.equal(returns, raw_returns)
    assert torch.allclose(white, masked_whiten(raw, MASK))


def test_whitening_gives_mean_zero_and_variance_one_over_the_mask_only():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 1e6, -1e6], [5.0, 6.0, 7.0, 1e6]])
    w = masked_whiten(x, MASK)
    assert abs(masked_mean(w, MASK).item()) < 1e-6
    assert masked_var(w, MASK).item() == pytest.approx(1.0, abs=1e-5)
    kept = masked_whiten(x, MASK, shift_mean=False)
    assert masked_mean(kept, MASK).item() == pytest.approx(masked_mean(x, MASK).item(), rel=1e-5)


def test_masked_statistics_ignore_padding_even_when_it_is_not_finite():
    x = torch.tensor([[1.0, 3.0, float("nan"), float("inf")]])
    mask = torch.tensor([[1, 1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    assert masked_var(x, mask).item() == pytest.approx(2.0)  # unbiased: ((1-2)^2 + (3-2)^2) / (2 - 1)
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(1.0)
    assert masked_mean(x, mask, dim=-1).tolist() == pytest.approx([2.0])
    with pytest.raises(ValueError, match="keeps 1 token"):
        masked_var(x, torch.tensor([[1, 0, 0, 0]]))


def test_the_score_lands_on_each_rows_last_kept_token():
    left_padded = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 0]])
    assert last_token_index(left_padded).tolist() == [2, 2, -1]
    zeros = torch.zeros(3, 3)
    rewards, kl = kl_in_reward(torch.tensor([1.0, 2.0, 3.0]), zeros, zeros, torch.tensor([[1, 1, 0], [1, 0, 0],
                               [0, 0, 0]]), beta=0.1)  # fmt: skip
    assert rewards.tolist() == [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # the empty row's score is dropped
    assert torch.equal(kl, zeros)


def test_the_kl_penalty_is_beta_times_the_estimate_on_kept_tokens_only():
    logprobs = torch.tensor([[-1.0, -0.5, -3.0, -2.0]])
    ref = torch.tensor([[-1.5, -0.5, -1.0, -9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    rewards, kl = kl_in_reward(torch.tensor([1.0]), logprobs, ref, mask, beta=0.5)
    assert kl.tolist() == [[0.5, 0.0, -2.0, 0.0]]  # k1: the log-ratio, negative where the policy is less likely
    assert rewards.tolist() == [[-0.25, 0.0, 1.0 + 1.0, 0.0]]
    _, k3 = kl_in_reward(torch.tensor([1.0]), logprobs, ref, mask, beta=0.5, estimator="k3")
    assert (k3 >= 0).all() and k3[0, 1] == 0 and k3[0, 3] == 0


@pytest.mark.parametrize("names", [("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3")])
def test_kl_estimator_aliases_agree_and_each_is_zero_at_equal_policies(names):
    lp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert torch.equal(kl_estimate(lp, ref, names[0]), kl_estimate(lp, ref, names[1]))
    assert torch.equal(kl_estimate(lp, lp, names[0]), torch.zeros(2))


def test_an_unknown_kl_estimator_or_aggregation_names_the_choices():
    with pytest.raises(ValueError, match="one of kl, k1, abs"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")
    with pytest.raises(ValueError, match="token-mean, seq-mean-token-mean"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), agg="token-sum")
    with pytest.raises(ValueError, match="clip_ratio_c must be above 1"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), clip_ratio_c=1.0)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_at_ratio_one_nothing_is_clipped_and_the_loss_is_minus_the_mean_advantage(agg):
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -0.1], [-1.0, -1.0, -1.0, -1.0], [-3.0, -0.2, -0.7, 0.0]])
    advantages = torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, 2.0, 100.0, 100.0], [-1.0, 0.0, 4.0, 100.0]])
    loss, clipfrac, approx_kl, lower = policy_loss(logprobs, logprobs, advantages, MASK, agg=agg)
    assert clipfrac.item() == 0 and lower.item() == 0 and approx_kl.item() == 0
    kept = advantages * MASK
    expected = {
        "token-mean": -kept.sum() / MASK.sum(),
        "seq-mean-token-mean": -(kept.sum(-1) / MASK.sum(-1)).mean(),
        "seq-mean-token-sum": -kept.sum(-1).mean(),
    }[agg]
    assert loss.item() == pytest.approx(expected.item())


def test_the_clip_and_the_dual_clip_bind_where_they_should():
    old = torch.zeros(1, 4)
    ratios = torch.tensor([[1.5, 0.5, 5.0, 1.1]])
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, clipfrac, approx_kl, lower = policy_loss(ratios.log(), old, advantages, torch.ones(1, 4), clip_low=0.2,
                                                   clip_high=0.28, clip_ratio_c=3.0)  # fmt: skip
    # token 0: A > 0, r above 1 + 0.28 -> clipped to -1.28. token 1: A < 0, r below 1 - 0.2 -> clipped to 0.8.
    # token 2: A < 0, r = 5 -> -A r = 5, capped by the dual clip at -A c = 3. token 3: inside the band, -1.1.
    assert loss.item() == pytest.approx((-1.28 + 0.8 + 3.0 - 1.1) / 4)
    assert clipfrac.item() == pytest.approx(2 / 4)  # tokens 0 and 1; token 2's ratio is far out but unclipped wins
    assert lower.item() == pytest.approx(1 / 4)
    assert approx_kl.item() == pytest.approx(-ratios.log().mean().item())
    # the gradient through a clipped token is zero: only tokens 2 (dual clip: constant too) and 3 are neither
    logprobs = ratios.log().requires_grad_()
    policy_loss(logprobs, old, advantages, torch.ones(1, 4), clip_low=0.2, clip_high=0.28)[0].backward()
    assert logprobs.grad[0, :3].tolist() == [0.0, 0.0, 0.0] and logprobs.grad[0, 3] != 0


def test_the_value_loss_is_half_the_squared_error_and_its_clip_stops_a_jump():
    returns = torch.tensor([[1.0, 1.0, 1.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    values = torch.tensor([[0.3, 1.0, 5.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, clipfrac = value_loss(values, old, returns, mask, clip=10.0)
    assert loss.item() == pytest.approx(0.5 * (0.7**2 + 0.0) / 2) and clipfrac.item() == 0
    # with clip 0.5 the second token's jump from 0 to 1 is held to 0.5: its error counts as (1 - 0.5)^2
    loss, clipfrac = value_loss(values, old, returns, mask, clip=0.5)
    assert loss.item() == pytest.approx(0.5 * (0.7**2 + 0.5**2) / 2) and clipfrac.item() == pytest.approx(0.5)


def test_explained_variance_is_one_for_a_perfect_critic_and_zero_for_the_mean():
    returns = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, 0.0, 0.0], [6.0, 7.0, 8.0, 0.0]])
    assert explained_variance(returns, returns, MASK).item() == pytest.approx(1.0)
    mean = masked_mean(returns, MASK) * torch.ones_like(returns)
    assert explained_variance(mean, returns, MASK).item() == pytest.approx(0.0, abs=1e-5)
    assert explained_variance(-returns, returns, MASK).item() < 0
