"""medrlvr's PPO math (src/medrlvr/train/ppo/core.py) checked against verl's own functions, on a CPU, on seeded toy tensors.

Run in the environment that has verl (``bash scripts/install.sh --dev`` makes ``.venv-verl``)::

    .venv-verl/bin/python scripts/ppo_verl_check.py    # one line per check; exit 0 only if every one agrees

verl 0.9.1's functions, each called as verl's trainer calls it:

- ``verl.utils.torch_functional``: ``masked_mean``, ``masked_var``, ``masked_whiten``;
- ``verl.trainer.ppo.core_algos.kl_penalty`` for each KL estimator, and ``ray_trainer.apply_kl_penalty`` on a
  ``DataProto`` whose ``token_level_scores`` hold each score on its response's last token, as verl's reward managers
  write them;
- ``core_algos.compute_gae_advantage_return`` at verl's default gamma = lambda = 1 and at gamma 0.99, lambda 0.95,
  with an observation token masked inside a response;
- ``core_algos.get_policy_loss_fn("vanilla")`` (``compute_policy_loss_vanilla``) for each loss aggregation, with a
  symmetric clip and with clip-higher, on ratios far enough from 1 that both clips and the dual clip bind: the
  loss, its gradient and the three metrics;
- ``core_algos.compute_value_loss`` for each aggregation: the loss, its gradient and the clip fraction;
- ``metric_utils.compute_data_metrics``'s ``critic/vf_explained_var``.

Each check runs in float64 (1e-7 absolute and relative: verl computes some factors in float32 even then) and float32
(1e-6 absolute, 1e-5 relative). core.py is loaded from its file, not through ``import medrlvr``: this environment
has verl but not TRL or PEFT, which medrlvr's package imports. Where medrlvr differs on purpose (an empty response's
score; a batch with no response token at all), the inputs avoid the case and a comment says so.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src" / "medrlvr" / "train" / "ppo" / "core.py"
# dtype -> (absolute, relative). Not tighter in float64: verl divides an integer mask's count by the count - 1 in
# float32 (masked_var's Bessel factor), a relative error of up to 6e-8 in its variances and whitened values.
TOLERANCE = {torch.float64: (1e-7, 1e-7), torch.float32: (1e-6, 1e-5)}
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
KL_ESTIMATORS = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")


def load_core():
    spec = importlib.util.spec_from_file_location("medrlvr_ppo_core", CORE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def right_padded_mask(lengths: list[int], width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()


def toy_batch(dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """Six responses of ragged lengths (a full one, a one-token one, an empty one: an aborted sample) over 7 tokens;
    log-probabilities far enough apart that ratios land on both sides of each clip."""
    g = torch.Generator().manual_seed(seed)
    mask = right_padded_mask([7, 5, 1, 3, 0, 6], 7)
    mask[5, 2] = 0  # a tool or observation token inside a response: GAE and the losses step over it

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    old = -randn(6, 7).abs() - 0.1
    return {
        "mask": mask,
        "old_logprobs": old,
        "logprobs": old + randn(6, 7, scale=0.6),  # ratios from about 0.2 to 5
        "ref_logprobs": old + randn(6, 7, scale=0.3),
        "advantages": randn(6, 7),
        "values": randn(6, 7),
        "old_values": randn(6, 7),
        "returns": randn(6, 7),
        "rewards": randn(6, 7, scale=0.1),
        "scores": torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, -1.0], dtype=dtype),
    }


class Checks:
    def __init__(self):
        self.failed: list[str] = []

    def compare(self, name: str, ours, theirs, dtype: torch.dtype) -> None:
        atol, rtol = TOLERANCE[dtype]
        ours = torch.as_tensor(ours, dtype=torch.float64)
        theirs = torch.as_tensor(theirs, dtype=torch.float64)
        label = f"{name} [{str(dtype).removeprefix('torch.')}]"
        if ours.shape != theirs.shape:
            self.failed.append(label)
            print(f"MISMATCH {label}: shape {tuple(ours.shape)} vs verl's {tuple(theirs.shape)}")
            return
        diff = (ours - theirs).abs().max().item() if ours.numel() else 0.0
        if torch.allclose(ours, theirs, atol=atol, rtol=rtol, equal_nan=False):
            print(f"ok {label}  max|diff| {diff:.1e}")
        else:
            self.failed.append(label)
            print(f"MISMATCH {label}: max|diff| {diff:.3e} (atol {atol:g}, rtol {rtol:g})")


def policy_config(clip_low: float, clip_high: float, clip_ratio_c: float):
    """verl's ActorConfig with the fields compute_policy_loss_vanilla reads (dp size 1: no global batch info)."""
    from verl.workers.config import ActorConfig

    return ActorConfig(strategy="fsdp", clip_ratio=clip_low, clip_ratio_low=clip_low, clip_ratio_high=clip_high,
                       clip_ratio_c=clip_ratio_c, ppo_micro_batch_size_per_gpu=1, rollout_n=1)  # fmt: skip


def check_masked_statistics(core, checks, dtype):
    import verl.utils.torch_functional as verl_F

    b = toy_batch(dtype)
    x, mask = b["advantages"], b["mask"]
    checks.compare("masked_mean", core.masked_mean(x, mask), verl_F.masked_mean(x, mask), dtype)
    checks.compare(
        "masked_mean(dim=-1)", core.masked_mean(x, mask, dim=-1), verl_F.masked_mean(x, mask, axis=-1), dtype
    )
    checks.compare("masked_var", core.masked_var(x, mask), verl_F.masked_var(x, mask), dtype)
    checks.compare("masked_var(biased)", core.masked_var(x, mask, False), verl_F.masked_var(x, mask, False), dtype)
    for shift in (True, False):
        ours, theirs = core.masked_whiten(x, mask, shift), verl_F.masked_whiten(x, mask, shift)
        checks.compare(f"masked_whiten(shift_mean={shift})", ours, theirs, dtype)


def verl_apply_kl_penalty():
    """verl's ``ray_trainer.apply_kl_penalty``. Importing ray_trainer pulls in its rollout server stack, which needs
    packages verl 0.9.1 does not declare (cachetools); where that fails, the function's own source is read from
    ray_trainer.py and run with the names it uses (DataProto, core_algos, masked_mean, torch)."""
    try:
        from verl.trainer.ppo.ray_trainer import apply_kl_penalty

        return apply_kl_penalty
    except ImportError as error:
        import ast

        from verl import DataProto
        from verl.trainer import ppo
        from verl.trainer.ppo import core_algos
        from verl.utils.torch_functional import masked_mean

        path = Path(ppo.__file__).parent / "ray_trainer.py"
        tree = ast.parse(path.read_text())
        (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "apply_kl_penalty"]
        namespace = {"DataProto": DataProto, "core_algos": core_algos, "masked_mean": masked_mean, "torch": torch}
        exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102 (verl's own code)
        print(f"note: apply_kl_penalty run from its source in {path.name} ({error})")
        return namespace["apply_kl_penalty"]


def check_kl(core, checks, dtype):
    from verl import DataProto
    from verl.trainer.ppo import core_algos

    apply_kl_penalty = verl_apply_kl_penalty()

    b = toy_batch(dtype)
    # every response non-empty: verl's reward managers write an empty response's score at index length - 1 = -1,
    # the last padded token; medrlvr drops it (no token of the response to carry it), a deliberate difference
    mask = right_padded_mask([7, 5, 1, 3, 2, 6], 7)
    for estimator in KL_ESTIMATORS:
        ours = core.kl_estimate(b["logprobs"], b["ref_logprobs"], estimator)
        theirs = core_algos.kl_penalty(b["logprobs"], b["ref_logprobs"], estimator)
        checks.compare(f"kl_estimate({estimator})", ours, theirs, dtype)
    token_scores = torch.zeros_like(b["logprobs"])
    lengths = mask.sum(-1)
    token_scores[torch.arange(6), lengths - 1] = b["scores"]  # as verl's naive reward manager places the score
    for estimator in ("kl", "low_var_kl"):
        beta = 0.05
        tensors = {"response_mask": mask, "token_level_scores": token_scores, "old_log_probs": b["logprobs"],
                   "ref_log_prob": b["ref_logprobs"]}  # fmt: skip
        data, _ = apply_kl_penalty(DataProto.from_dict(tensors=tensors), core_algos.FixedKLController(beta), estimator)
        rewards, _ = core.kl_in_reward(b["scores"], b["logprobs"], b["ref_logprobs"], mask, beta, estimator)
        checks.compare(f"kl_in_reward({estimator})", rewards, data.batch["token_level_rewards"], dtype)


def check_gae(core, checks, dtype):
    from verl.trainer.ppo import core_algos

    b = toy_batch(dtype)
    mask = b["mask"]
    values = b["values"] * mask  # verl's critic zeroes the values past the response; GAE then reads them as 0
    rewards, _ = core.kl_in_reward(b["scores"], b["logprobs"], b["ref_logprobs"], mask, 0.05)
    for gamma, lam in ((1.0, 1.0), (0.99, 0.95)):
        ours = core.gae(rewards, values, mask, gamma=gamma, lam=lam, whiten=True)
        theirs = core_algos.compute_gae_advantage_return(rewards, values, mask, gamma, lam)
        checks.compare(f"gae(gamma={gamma}, lam={lam}).advantages", ours[0], theirs[0], dtype)
        checks.compare(f"gae(gamma={gamma}, lam={lam}).returns", ours[1], theirs[1], dtype)
    # medrlvr's whiten=False has no switch in verl (its GAE always whitens): verl's advantages before whitening are
    # its returns minus the values
    unwhitened, _ = core.gae(rewards, values, mask, gamma=0.99, lam=0.95, whiten=False)
    _, verl_returns = core_algos.compute_gae_advantage_return(rewards, values, mask, 0.99, 0.95)
    checks.compare("gae(whiten=False) = verl's returns - values", unwhitened, verl_returns - values, dtype)


def check_policy_loss(core, checks, dtype):
    from verl.trainer.ppo import core_algos

    b = toy_batch(dtype)
    mask, advantages = b["mask"], b["advantages"]
    loss_fn = core_algos.get_policy_loss_fn("vanilla")
    # one response is empty but the batch is not: on a batch with no response token at all verl's token-mean divides
    # by zero (NaN) and medrlvr's gives 0, a deliberate difference left out here
    for clip_low, clip_high in ((0.2, 0.2), (0.2, 0.28)):
        config = policy_config(clip_low, clip_high, 3.0)
        for agg in AGG_MODES:
            name = f"policy_loss(clip {clip_low}/{clip_high}, {agg})"
            ours_lp = b["logprobs"].clone().requires_grad_()
            loss, clipfrac, approx_kl, lower = core.policy_loss(
                ours_lp, b["old_logprobs"], advantages, mask, clip_low, clip_high, 3.0, agg
            )
            loss.backward()
            theirs_lp = b["logprobs"].clone().requires_grad_()
            verl_loss, metrics = loss_fn(b["old_logprobs"], theirs_lp, advantages, mask, agg, config)
            verl_loss.backward()
            checks.compare(name, loss, verl_loss, dtype)
            checks.compare(f"{name}.grad", ours_lp.grad, theirs_lp.grad, dtype)
            checks.compare(f"{name}.clipfrac", clipfrac, metrics["actor/pg_clipfrac"], dtype)
            checks.compare(f"{name}.approx_kl", approx_kl, metrics["actor/ppo_kl"], dtype)
            checks.compare(f"{name}.clipfrac_lower", lower, metrics["actor/pg_clipfrac_lower"], dtype)
    # the toy batch must exercise what it claims: both clips and the dual clip bind somewhere
    _, clipfrac, _, lower = core.policy_loss(b["logprobs"], b["old_logprobs"], advantages, mask)
    if not (0 < clipfrac < 1 and 0 < lower < 1):
        checks.failed.append("toy batch")
        print(f"MISMATCH toy batch: clip fraction {clipfrac:.2f}, dual clip {lower:.2f}; both must be in (0, 1)")


def check_value_loss(core, checks, dtype):
    from verl.trainer.ppo import core_algos

    b = toy_batch(dtype)
    mask = b["mask"].bool()  # verl's critic passes a boolean mask
    for agg in AGG_MODES:
        name = f"value_loss(clip 0.5, {agg})"
        ours_v = b["values"].clone().requires_grad_()
        loss, clipfrac = core.value_loss(ours_v, b["old_values"], b["returns"], mask, 0.5, agg)
        loss.backward()
        theirs_v = b["values"].clone().requires_grad_()
        verl_loss, verl_clipfrac = core_algos.compute_value_loss(
            vpreds=theirs_v, returns=b["returns"], values=b["old_values"], response_mask=mask, cliprange_value=0.5,
            loss_agg_mode=agg,
        )  # fmt: skip
        verl_loss.backward()
        checks.compare(name, loss, verl_loss, dtype)
        checks.compare(f"{name}.grad", ours_v.grad, theirs_v.grad, dtype)
        checks.compare(f"{name}.clipfrac", clipfrac, verl_clipfrac, dtype)


def check_explained_variance(core, checks, dtype):
    from verl import DataProto
    from verl.trainer.ppo.metric_utils import compute_data_metrics

    b = toy_batch(dtype)
    mask = b["mask"]
    returns = b["returns"]
    values = returns + 0.5 * b["values"]  # a critic that explains part of the returns
    prompts = torch.ones(6, 3, dtype=torch.long)
    tensors = {"prompts": prompts, "responses": torch.ones_like(mask), "response_mask": mask,
               "attention_mask": torch.cat([torch.ones_like(prompts), mask], dim=-1),
               "token_level_scores": b["rewards"], "token_level_rewards": b["rewards"], "advantages": b["advantages"],
               "returns": returns, "values": values}  # fmt: skip
    metrics = compute_data_metrics(DataProto.from_dict(tensors=tensors), use_critic=True)
    ours = core.explained_variance(values, returns, mask)
    checks.compare("explained_variance", ours, metrics["critic/vf_explained_var"], dtype)


def main() -> int:
    from importlib.metadata import version

    core = load_core()
    checks = Checks()
    print(f"verl {version('verl')}, torch {torch.__version__}, medrlvr's {CORE.relative_to(ROOT)}")
    for dtype in (torch.float64, torch.float32):
        for check in (check_masked_statistics, check_kl, check_gae, check_policy_loss, check_value_loss,
                      check_explained_variance):  # fmt: skip
            check(core, checks, dtype)
    if checks.failed:
        print(f"{len(checks.failed)} check(s) failed: {', '.join(checks.failed)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
