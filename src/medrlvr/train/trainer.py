"""The trainer of a method, ready to train: the model (LoRA or full, bf16 where the machine has it), the dataset, the
arguments every TRL trainer shares, and TRL's GRPOTrainer (medrlvr's subclass) or SFTTrainer."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..models import checkpoint_dir
from . import callbacks as _callbacks
from .config import TrainConfig
from .dataset import build_dataset


def build_trainer(config: TrainConfig, records: Sequence[Any], model_obj: Any = None, tokenizer: Any = None,
                  trainer_class: type | None = None):  # fmt: skip
    """TRL's GRPOTrainer (medrlvr's subclass, :func:`medrlvr.train.grpo.grpo_trainer`; ``trainer_class``: a subclass of
    that one) or SFTTrainer, ready to train."""
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        from ..modeling import return_freed_memory

        return_freed_memory()  # a CPU step's freed activations go back to the system, not to the next phase's peak
    if config.bf16 is None:
        from ..modeling import cpu_supports_bf16

        use_bf16 = on_gpu or cpu_supports_bf16()
    else:
        use_bf16 = config.bf16
    if model_obj is None:
        from ..modeling import load_for_training

        model_obj, tokenizer = load_for_training(
            checkpoint_dir(config.model), on_gpu=on_gpu, bf16=use_bf16, frozen=config.lora or config.qlora,
            qlora=config.qlora, trust_remote_code=config.trust_remote_code,
        )  # fmt: skip
    # PEFT 0.21 reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps the model: its call, not
    # ours, and nothing a user can act on
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(records, tokenizer, config)
    common = common_args(config, on_gpu, use_bf16)
    callbacks = _callbacks.callbacks(Path(config.output_dir))
    if config.method in ("grpo", "ppo"):
        if config.method == "grpo":
            from .grpo import grpo_trainer as rl_trainer
        else:
            from .ppo import ppo_trainer as rl_trainer

        trainer = rl_trainer(
            config, model_obj, tokenizer, dataset, lora_config(config), common, callbacks, on_gpu, trainer_class
        )
    else:
        from .sft import sft_trainer

        trainer = sft_trainer(config, model_obj, tokenizer, dataset, lora_config(config), common, callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # they print every metric dict; ours prints one line
        trainer.remove_callback(noisy)
    return trainer


def lora_config(config: TrainConfig):
    """PEFT's LoraConfig for LoRA and QLoRA; None for full fine-tuning."""
    if not (config.lora or config.qlora):
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM")  # fmt: skip


def _checkpointing_argument() -> str:
    """transformers 5.x renamed TrainingArguments' ``gradient_checkpointing`` to ``activation_checkpointing`` (the old
    name warns, and mirrors the new one for code that reads it, as TRL does); older versions have the old name only."""
    from transformers import TrainingArguments

    new = "activation_checkpointing"
    return new if new in TrainingArguments.__dataclass_fields__ else "gradient_checkpointing"


def common_args(config: TrainConfig, on_gpu: bool, use_bf16: bool) -> dict[str, Any]:
    """The arguments GRPOConfig and SFTConfig share."""
    return dict(
        output_dir=str(Path(config.output_dir)),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to=config.report_to,
        bf16=use_bf16,
        use_cpu=not on_gpu,
        save_only_model=False,
        **{
            _checkpointing_argument(): on_gpu
            if config.gradient_checkpointing is None
            else config.gradient_checkpointing
        },
        disable_tqdm=True,  # one line per step instead (see _callbacks)
    )
