"""Training: GRPO with LoRA on the R1-Zero prompt (Open-Medical-R1 section 3.1) and the SFT baseline of Med-RLVR,
as thin wrappers over TRL's GRPOTrainer / SFTTrainer and PEFT.

Defaults are the paper's: learning rate 2e-5 with a cosine schedule, 3 questions per step with 3 rollouts each,
gradient accumulation 4, rewards format + accuracy + XML count with equal weights. ``batch_size`` counts
questions; TRL's per-device batch counts completions, so it is ``batch_size * num_generations``.

What a user watches, per logging step, in ``metrics.jsonl`` (and TRL's ``report_to``): each reward's mean and
std, the share of groups whose rewards are all equal (``frac_reward_zero_std``: they give no gradient), completion
lengths, KL, learning rate, and ``rewards/self_reflection/mean`` -- the share of completions that re-check
themselves ("wait", "let me re-check"), logged through a zero-weight reward. Completions go to
``completions.jsonl`` (the step, the question and the completion: :class:`medrlvr.train.grpo.CompletionSampler`),
and each question's rollouts, mean reward and mean accuracy per step to ``question_rewards.jsonl`` (a pilot run's
trajectories for :mod:`medrlvr.select.pilot`; GRPO and PPO on the TRL path).

The package, in the order a training runs: :mod:`.config` (the settings, checked once), :mod:`.dataset` (the
questions and the trainer's rows), :mod:`.trainer` (model, LoRA, the arguments every TRL trainer shares),
:mod:`.grpo` (GRPO's wiring: rewards, rollouts, the loss) and :mod:`.sft`, :mod:`.callbacks` and
:mod:`.checkpoints` (what a run writes, resumption); ``backend: verl`` is :mod:`.verl`. This module is the
dispatcher: :func:`check` and :func:`run`, the stage.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..store import write_json
from .checkpoints import DONE_FILE, check_previous, last_complete_checkpoint, trim_step_logs
from .config import ROLLOUT_ENGINES, TrainConfig, TrainError, load_config
from .dataset import check_size, training_records
from .trainer import build_trainer

log = logging.getLogger(__name__)

__all__ = ["ROLLOUT_ENGINES", "TrainConfig", "TrainError", "build_trainer", "check", "load_config", "run", "train"]


def check(config: TrainConfig) -> TrainConfig:
    """The checks of ``config``'s backend that its own fields cannot make (verl's settings against the shared ones),
    before anything runs: recipe loading, ``--plan`` and :func:`run` call it. Returns ``config``."""
    if config.backend == "verl":
        from .verl.settings import check as check_verl

        check_verl(config)
    return config


def run(config: TrainConfig, data_dir: str | None = None, model_obj: Any = None, tokenizer: Any = None) -> Path:
    """Train one policy; returns the output directory (adapter/, merged/ on request, metrics.jsonl,
    completions.jsonl, checkpoints). Resumes from the last complete checkpoint in the output directory; a finished
    run with the same settings is not trained again. ``backend: verl`` goes to :mod:`medrlvr.train.verl.launch` (which
    reads ``data_dir`` for its validation questions); ``model_obj`` and ``tokenizer``: an already built model."""
    check(config)
    if config.backend == "verl":  # verl runs its own processes (Ray)
        from .verl.launch import train as verl_train

        return verl_train(config, data_dir=data_dir)
    out = Path(config.output_dir)
    records = training_records(config.train_file)
    check_size(records, config)
    if check_previous(out, config):
        log.warning("%s: this training already finished; nothing to do", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train_config.json", asdict(config))
    trainer = build_trainer(config, records, model_obj, tokenizer)
    last = last_complete_checkpoint(out)
    if last:
        trim_step_logs(out, int(last.name.split("-")[-1]))
    if last and hasattr(trainer, "restore"):  # what a checkpoint holds beyond transformers' (PPO's critic)
        trainer.restore(last)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if trainer.state.global_step < 1:
        raise TrainError(f"{out}: training ended after 0 optimizer steps ({len(records)} questions)")
    _save(trainer, config, out)
    write_json(out / DONE_FILE, {"global_step": trainer.state.global_step, "questions": len(records)})
    return out


train = run  # the name medrlvr's Python API and earlier versions use


def _save(trainer, config: TrainConfig, out: Path) -> None:
    """The trained adapter (or model), and on request the merged model that `medrlvr eval` loads directly."""
    final = out / ("adapter" if config.lora or config.qlora else "model")
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    if config.merge and (config.lora or config.qlora):
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"), safe_serialization=True)
        trainer.processing_class.save_pretrained(str(out / "merged"))
