"""The SFT baseline of Med-RLVR (arXiv 2502.19655): TRL's SFTTrainer on the R1-Zero format, the data's explanation
as the reasoning (:func:`medrlvr.train.dataset.build_dataset` writes the targets)."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig


def sft_trainer(config: TrainConfig, model, tokenizer, dataset, peft_config, common: dict[str, Any], callbacks):
    """TRL's SFTTrainer with the arguments every medrlvr trainer shares (``common``) and ``config.extra``."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**{**common, "per_device_train_batch_size": config.batch_size, **config.extra})
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)  # fmt: skip
