"""``method: ppo``: PPO with a critic (Med-RLVR, arXiv 2502.19655) on the TRL path, wired as GRPO is: the same rewards,
rollouts (medrlvr's engine) and TRL arguments (:func:`medrlvr.train.grpo.grpo_settings`, with TRL's own KL loss
off: PPO's KL is in the reward), plus the critic. The maths is :mod:`.core`, the critic :mod:`.critic`, the trainer
:mod:`.trainer`; ``backend: verl`` launches the same settings through verl (:mod:`medrlvr.train.verl`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UserError
from ...models import checkpoint_dir
from ..config import TrainConfig


def ppo_trainer(config: TrainConfig, model, tokenizer, dataset, peft_config, common: dict[str, Any], callbacks,
                on_gpu: bool, trainer_class: type | None = None):  # fmt: skip
    """medrlvr's PPO trainer (``trainer_class``: a subclass of it) with its critic, ready to train."""
    import torch
    from trl import GRPOConfig

    from ..grpo import _medrlvr_rollouts, grpo_settings, resolve_rollout_engine, reward_functions
    from .critic import SeparateCritic
    from .trainer import CriticGradients, MedrlvrPPOTrainer

    engine = resolve_rollout_engine(config, on_gpu)
    if engine != "medrlvr":
        raise UserError(f"method ppo samples with medrlvr's rollouts; rollout_engine resolved to {engine}")
    funcs, scored, weights = reward_functions(config, Path(common["output_dir"]))
    settings = grpo_settings(config, weights + [0.0, 0.0], engine)
    # TRL's reference pass runs when beta > 0 (PPO needs it for the KL in the reward); its KL *loss* never runs,
    # because the loss is PPO's own (MedrlvrPPOTrainer.rl_loss)
    args = GRPOConfig(**{**common, **settings, **config.extra})
    torch.manual_seed(config.seed)  # the critic's LoRA starts from the same weights in a resumed run
    critic = SeparateCritic.from_pretrained(
        checkpoint_dir(config.model), lora=_critic_lora(peft_config), init="zero", dtype=model.dtype
    )
    trainer = (trainer_class or MedrlvrPPOTrainer)(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CriticGradients(critic), *callbacks],
        rollout_func=_medrlvr_rollouts(config, args, dataset, tokenizer, scored, weights),
    )
    trainer.critic, trainer.ppo = critic, config
    trainer.sampler_logprobs = True  # sampling/* metrics every step (the rollout gap)
    trainer.correct_sampling = config.rollout_importance_sampling is not None
    return trainer


def _critic_lora(peft_config):
    """The critic's own LoRA: the policy's rank, alpha and modules, no dropout (OpenRLHF's lora_dropout 0), as a
    feature extractor (no LM head: the value head is the critic's)."""
    if peft_config is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=peft_config.r, lora_alpha=peft_config.lora_alpha, lora_dropout=0.0,
                      target_modules=peft_config.target_modules, task_type="FEATURE_EXTRACTION")  # fmt: skip
