"""``method: ppo``: PPO with a critic (Med-RLVR, arXiv 2502.19655) on the TRL path, wired as GRPO is: the same rewards,
rollouts (medrlvr's engine, or TRL's generate or vLLM) and TRL arguments (:func:`medrlvr.train.grpo.grpo_settings`, with TRL's own KL loss
off: PPO's KL is in the reward), plus the critic. The maths is :mod:`.core`, the critic :mod:`.critic`, the trainer
:mod:`.trainer`; ``backend: verl`` launches the same settings through verl (:mod:`medrlvr.train.verl`).
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import UserError
from ...models import checkpoint_dir
from ..config import TrainConfig


def ppo_trainer(config: TrainConfig, model, tokenizer, dataset, peft_config, common: dict[str, Any], callbacks,
                on_gpu: bool, trainer_class: type | None = None):  # fmt: skip
    """medrlvr's PPO trainer (``trainer_class``: a subclass of it) with its critic, ready to train: GRPO's wiring
    (:func:`medrlvr.train.grpo.grpo_trainer`) with PPO's trainer class and the critic. TRL's reference pass runs when
    beta > 0 (the KL in PPO's reward needs it); TRL's KL *loss* never runs: the loss is PPO's own."""
    import torch

    from ..grpo import grpo_trainer
    from .critic import SeparateCritic
    from .trainer import CriticGradients, MedrlvrPPOTrainer

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("method ppo on the TRL path trains in one process (one GPU): run it without accelerate launch "
                        "or torchrun, or use backend: verl for several GPUs")  # fmt: skip
    torch.manual_seed(config.seed)  # the critic's LoRA starts from the same weights in a resumed run
    critic = SeparateCritic.from_pretrained(
        checkpoint_dir(config.model), lora=_critic_lora(peft_config), init="zero", dtype=model.dtype
    )
    trainer = grpo_trainer(config, model, tokenizer, dataset, peft_config, common,
                           [CriticGradients(critic), *callbacks], on_gpu, trainer_class or MedrlvrPPOTrainer)  # fmt: skip
    trainer.critic, trainer.ppo = critic, config
    if peft_config is not None:  # the base weights held once, now that TRL has frozen the policy's under its LoRA
        critic.share_frozen(trainer.accelerator.unwrap_model(trainer.model))
    return trainer


def _critic_lora(peft_config):
    """The critic's own LoRA: the policy's rank, alpha and modules, no dropout (OpenRLHF's lora_dropout 0), as a
    feature extractor (no LM head: the value head is the critic's)."""
    if peft_config is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=peft_config.r, lora_alpha=peft_config.lora_alpha, lora_dropout=0.0,
                      target_modules=peft_config.target_modules, task_type="FEATURE_EXTRACTION")  # fmt: skip
