"""PPO with a learned critic (Schulman et al., arXiv 1707.06347; GAE, arXiv 1506.02438) on medrlvr's TRL path, as
Med-RLVR (arXiv 2502.19655) trains with OpenRLHF: the outcome reward at the last token, a per-token KL penalty
against the reference in the reward, GAE over the tokens, whitened advantages, the clipped policy loss and the
clipped value loss, PPO epochs and mini-batches over each rollout batch, critic warm-up steps.

Why our own: TRL 1.16 deleted its PPOTrainer (it took a reward *model*, never a reward function), and verl trains
PPO only on GPUs with Ray. What is reused rather than rewritten: TRL's GRPOTrainer through medrlvr's subclass
(:class:`medrlvr.train.grpo.loss.MedrlvrGRPOTrainer`) -- the dataset, the rollouts through TRL's ``rollout_func``
(medrlvr's engine on a live copy of the policy, the sampler/trainer log-prob gap logged), the reward functions, the
reference pass (LoRA disabled), the buffer that reuses each rollout batch for ``num_iterations`` epochs split into
``steps_per_generation`` mini-batches, logging; transformers' Trainer for the optimizer, the schedule, gradient
accumulation, checkpoints and their resumption (RNG states included); PEFT for LoRA on policy and critic. What is
ours: the critic (:mod:`.critic`), the maths (:mod:`.core`, checked against verl's own functions), and this class,
which uses only medrlvr's hooks on that trainer (``after_scoring``, ``rl_loss``) and public Trainer methods
(``create_optimizer``, ``save_model``): no private TRL method is overridden here.

The critic is its own copy of the base model with its own LoRA adapter and a value head (verl's and OpenRLHF's
form). It is trained by the same backward pass as the policy (the two losses touch disjoint parameters) in its own
optimizer parameter group at ``critic_learning_rate``, clipped to the same gradient norm as the policy.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainerCallback

from ..config import LOSS_AGG_MODES
from ..grpo.loss import MedrlvrGRPOTrainer
from . import core

CRITIC_DIR = "critic"  # beside the adapter in every checkpoint and in the final output


class MedrlvrPPOTrainer(MedrlvrGRPOTrainer):
    """medrlvr's GRPO trainer with GRPO's group advantages replaced by PPO's (a critic, GAE, KL in the reward) and
    its loss by PPO's policy and value losses. Set ``critic`` and ``ppo`` (the train config) before training."""

    critic = None
    ppo = None  # the TrainConfig: gamma, lam, value_clip, kl_estimator, whiten_advantages, critic_warmup_steps ...

    # -- rollouts -> advantages --------------------------------------------------------------------------------

    def on_policy(self) -> bool:
        """Whether each rollout batch is one loss call and one optimizer step (one PPO epoch, one mini-batch, no
        gradient accumulation): then the policy that sampled it is the one in the loss, its log-probs and the
        critic's values there are the "old" ones, and the advantages are computed in the loss from that single
        forward of each model (no separate no-grad pass over the batch: the same numbers, one pass fewer each)."""
        return self.ppo.num_iterations == 1 and self.args.steps_per_generation == 1

    @torch.no_grad()
    def after_scoring(self, output: dict) -> dict:
        mask = output["completion_mask"].float()
        scores = self.sequence_scores().to(mask.device).float()
        if self.on_policy():
            output["ppo_scores"] = scores  # the advantages come in the loss, from its own forward passes
            return output
        old, ref = output.get("old_per_token_logps"), output.get("ref_per_token_logps")
        if old is None and ref is not None:  # TRL skips it with one epoch; the KL in the reward needs the rollout
            old = self._batched(lambda part: self.completion_logps(self.model, part)[0], output)  # policy's
            output["old_per_token_logps"] = old
        values = self._batched(self._values, output)
        advantages, returns = self._advantages(scores, old, ref, values, mask)
        output.update(advantages=advantages, returns=returns, old_values=values)
        return output

    def _advantages(self, scores, old, ref, values, mask):
        """GAE advantages and returns of a rollout batch (the KL to the reference in the reward when there is a
        reference pass, i.e. beta > 0), with the batch's PPO metrics logged."""
        if ref is None:  # beta 0: no reference pass, no KL (the loss then takes TRL's on-policy ratio of 1)
            zero = torch.zeros_like(values)
            token_rewards, kl = core.kl_in_reward(scores, zero, zero, mask, 0.0, self.ppo.kl_estimator)
        else:
            token_rewards, kl = core.kl_in_reward(scores, old, ref, mask, self.ppo.beta, self.ppo.kl_estimator)
        advantages, returns = core.gae(token_rewards, values, mask, self.ppo.gamma, self.ppo.lam,
                                       whiten=self.ppo.whiten_advantages)  # fmt: skip
        metrics = self._metrics["train"]
        metrics["ppo/kl"].append(core.masked_mean(kl, mask).item())
        metrics["ppo/score_mean"].append(scores.mean().item())
        metrics["ppo/value_mean"].append(core.masked_mean(values, mask).item())
        metrics["ppo/return_mean"].append(core.masked_mean(returns, mask).item())
        metrics["ppo/explained_variance"].append(core.explained_variance(values, returns, mask).item())
        return advantages, returns

    def _values(self, inputs: dict) -> torch.Tensor:
        """The critic's value of the state before each completion token (the position that predicts it)."""
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        width = inputs["completion_ids"].size(1)
        with self.accelerator.autocast():
            values = self.critic.values(ids, mask)
        return values[:, -width - 1 : -1].float()

    def _batched(self, fn, output: dict):
        """``fn`` over the rollout batch in micro-batches of the training batch size (a rollout batch holds
        ``steps_per_generation`` of them), results concatenated."""
        size = self.args.per_device_train_batch_size
        keys = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")
        rows = output["completion_ids"].size(0)
        return torch.cat([fn({k: output[k][start : start + size] for k in keys}) for start in range(0, rows, size)])

    # -- the loss ----------------------------------------------------------------------------------------------

    def rl_loss(self, model, inputs):
        mask = inputs["completion_mask"].float()
        logps, entropies = self.completion_logps(model, inputs, entropy=True)
        values = self._values(inputs)
        if "ppo_scores" in inputs:  # on policy: this forward is the rollout policy's and the critic's "old" one
            with torch.no_grad():
                old_values = values.detach()
                advantages, returns = self._advantages(inputs["ppo_scores"], logps.detach(),
                                                       inputs.get("ref_per_token_logps"), old_values, mask)  # fmt: skip
        else:
            advantages, returns, old_values = inputs["advantages"], inputs["returns"], inputs["old_values"]
        old = inputs.get("old_per_token_logps")  # None: one epoch and no KL pass -- the rollout policy is this one
        policy, clipfrac, approx_kl, clipfrac_lower = core.policy_loss(
            logps,
            logps.detach() if old is None else old,
            advantages,
            mask,
            self.epsilon_low,
            self.epsilon_high,
            agg=LOSS_AGG_MODES[self.ppo.loss_type],
        )
        value, value_clipfrac = core.value_loss(values, old_values, returns, mask, self.ppo.value_clip,
                                                agg=LOSS_AGG_MODES[self.ppo.loss_type])  # fmt: skip
        warming = self.state.global_step < self.ppo.critic_warmup_steps  # the critic learns first, the policy waits
        loss = value if warming else policy + value
        metrics = self._metrics["train"]
        for key, number in (("ppo/policy_loss", policy), ("ppo/value_loss", value), ("ppo/clipfrac", clipfrac),
                            ("ppo/clipfrac_lower", clipfrac_lower), ("ppo/approx_kl", approx_kl),
                            ("ppo/value_clipfrac", value_clipfrac),
                            ("entropy", core.masked_mean(entropies.detach(), mask))):  # fmt: skip
            metrics[key].append(float(number.detach()))
        metrics["ppo/critic_warmup"].append(float(warming))
        return loss / self.current_gradient_accumulation_steps

    # -- the critic's optimizer group, checkpoints and resumption ----------------------------------------------

    def create_optimizer(self, *args, **kwargs):
        optimizer = super().create_optimizer(*args, **kwargs)
        if not any(group.get("medrlvr_critic") for group in optimizer.param_groups):
            optimizer.add_param_group({"params": list(self.critic.parameters()), "lr": self.ppo.critic_learning_rate,
                                       "weight_decay": 0.0, "medrlvr_critic": True})  # fmt: skip
        return optimizer

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        # written before the checkpoint's completion marker (the marker is a callback's, after this returns)
        self.critic.save(Path(output_dir or self.args.output_dir) / CRITIC_DIR)

    def restore(self, checkpoint: str | Path) -> None:
        """The critic of ``checkpoint`` (a resumed run continues with it; the policy is transformers' to load)."""
        super().restore(checkpoint)
        self.critic.load(Path(checkpoint) / CRITIC_DIR)


class CriticGradients(TrainerCallback):
    """What transformers does for the model's gradients, done for the critic's (it is not part of the model):
    clipped to the same ``max_grad_norm`` before each optimizer step, cleared after it (transformers clears only
    ``model.zero_grad()``: without this the critic's gradients would add up over every step)."""

    def __init__(self, critic):
        self.critic = critic

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if args.max_grad_norm and args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(list(self.critic.parameters()), args.max_grad_norm)

    def on_optimizer_step(self, args, state, control, **kwargs):
        for parameter in self.critic.parameters():
            parameter.grad = None
