"""Training: GRPO with LoRA on the R1-Zero prompt (Open-Medical-R1 section 3.1) and the SFT baseline of Med-RLVR,
as thin wrappers over TRL's GRPOTrainer / SFTTrainer and PEFT.

Defaults are the paper's: learning rate 2e-5 with a cosine schedule, 3 questions per step with 3 rollouts each,
gradient accumulation 4, rewards format + accuracy + XML count with equal weights. ``batch_size`` counts
questions; TRL's per-device batch counts completions, so it is ``batch_size * num_generations``.

What a user watches, per logging step, in ``metrics.jsonl`` (and TRL's ``report_to``): each reward's mean and
std, the share of groups whose rewards are all equal (``frac_reward_zero_std``: they give no gradient), completion
lengths, KL, learning rate, and ``rewards/self_reflection/mean`` -- the share of completions that re-check
themselves ("wait", "let me re-check"), logged through a zero-weight reward. Completions go to
``completions.jsonl`` (the step, the question and the completion: :class:`medrlvr.grpo.CompletionSampler`).

This module holds what every method shares: the config, the dataset, the model, checkpoints and resumption, and
:func:`run`, the stage. GRPO's own wiring (settings, rewards, rollouts, the loss's speed-up) is :mod:`medrlvr.grpo`;
``backend: verl`` is :mod:`medrlvr.verl_backend`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from .config import build
from .errors import UserError
from .models import checkpoint_dir
from .prompts import render
from .store import write_json
from .train_config import ROLLOUT_ENGINES, TrainConfig  # the settings, in their own module

log = logging.getLogger(__name__)

__all__ = ["ROLLOUT_ENGINES", "TrainConfig", "TrainError", "build_trainer", "load_config", "run", "train"]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from YAML (values only) with ``key=value`` overrides (values parsed as YAML)."""
    import yaml

    data: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        data = data.get("train", data)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        data[key.strip()] = yaml.safe_load(value)
    return build(TrainConfig, data, str(path or "overrides"))


class TrainError(UserError):
    """Training cannot start or did not train: the message says why, with the sizes or settings involved."""


# --- the stage ------------------------------------------------------------------------------------------------


def run(config: TrainConfig, data_dir: str | None = None, model_obj: Any = None, tokenizer: Any = None) -> Path:
    """Train one policy; returns the output directory (adapter/, merged/ on request, metrics.jsonl,
    completions.jsonl, checkpoints). Resumes from the last complete checkpoint in the output directory; a finished
    run with the same settings is not trained again. ``backend: verl`` goes to :mod:`medrlvr.verl_backend` (which
    reads ``data_dir`` for its validation questions); ``model_obj`` and ``tokenizer``: an already built model."""
    if config.backend == "verl":  # verl runs its own processes (Ray)
        from . import verl_backend

        return verl_backend.train(config, data_dir=data_dir)
    out = Path(config.output_dir)
    records = training_records(config.train_file)
    _check_size(records, config)
    if _check_previous(out, config):
        log.warning("%s: this training already finished; nothing to do", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train_config.json", asdict(config))
    trainer = build_trainer(config, records, model_obj, tokenizer)
    last = last_complete_checkpoint(out)
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


def training_records(train_file: str | Path) -> list[Any]:
    """The training questions (a train.jsonl or the selection folder holding one); test-split records are refused:
    test splits are for evaluation only."""
    from .data import load_records_file

    if not str(train_file):
        raise TrainError("train_file is not set: give train_file=RUN/select/STRATEGY/train.jsonl")
    path = Path(train_file)
    return load_records_file(path / "train.jsonl" if path.is_dir() else path, pool=True)


def _check_size(records: Sequence[Any], config: TrainConfig) -> None:
    need = config.batch_size * config.gradient_accumulation_steps
    if len(records) < need:
        raise TrainError(
            f"{config.train_file} has {len(records)} questions; one optimizer step needs batch_size x "
            f"gradient_accumulation_steps = {config.batch_size} x {config.gradient_accumulation_steps} = {need}"
        )


# --- checkpoints and resumption -------------------------------------------------------------------------------

CHECKPOINT_MARKER = "medrlvr-complete.json"
DONE_FILE = "train_done.json"
# settings that do not change what is trained: a finished run with only these changed is the same run
COSMETIC = ("output_dir", "logging_steps", "save_steps", "save_total_limit", "report_to", "sample_completions",
            "merge")  # fmt: skip


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint whose writing finished; unfinished ones (a kill while saving) are moved aside to
    ``checkpoint-N.incomplete`` so that neither resumption nor transformers' rotation takes them for checkpoints."""
    complete = []
    for folder in out.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if not m or not folder.is_dir():
            continue
        if (folder / CHECKPOINT_MARKER).is_file():
            complete.append((int(m.group(1)), folder))
        else:
            aside = folder.with_name(f"{folder.name}.incomplete")
            if aside.exists():
                shutil.rmtree(aside)
            folder.rename(aside)
            log.warning("%s was not completely written (interrupted while saving); moved to %s", folder, aside.name)
    return max(complete)[1] if complete else None


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide what is trained (``COSMETIC`` ones left out)."""
    return {k: v for k, v in values.items() if k not in COSMETIC}


def _check_previous(out: Path, config: TrainConfig) -> bool:
    """True when ``out`` holds this exact training, finished. Raises when it holds another one (finished, or
    checkpoints of other settings): continuing it would mix two trainings."""
    previous = out / "train_config.json"
    if not previous.is_file():
        return False
    try:
        before = _settings(json.loads(previous.read_text()))
    except ValueError:
        return False
    now = _settings(asdict(config))
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    finished = (out / DONE_FILE).is_file()
    started = finished or any(out.glob("checkpoint-*"))
    if changed and started:
        raise TrainError(
            f"{out} holds a {'finished' if finished else 'started'} training with other settings "
            f"({', '.join(changed[:5])}); use another output_dir (or remove that one)"
        )
    return finished and not changed


def _callbacks(out: Path):
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    class MarkCheckpoints(TrainerCallback):
        """transformers writes a checkpoint's files one by one into its final folder; a kill in the middle leaves a
        folder that looks like a checkpoint and cannot be resumed. The marker is written after the last file, so
        only a marked checkpoint is ever resumed (see ``last_complete_checkpoint``)."""

        def on_save(self, args, state, control, **kwargs):
            folder = out / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json(folder / CHECKPOINT_MARKER, {"global_step": state.global_step})

    class OneLinePerStep(TrainerCallback):
        """A short line per logged step instead of transformers' dict of forty metrics, with the time left at the
        mean pace of the steps this process ran (the first, a warm-up, left out once there are others)."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_step = None, state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            import time

            if self.started is None:  # from the end of the first step: the warm-up is not the pace
                self.started, self.first_step = time.monotonic(), state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                line = step_line(out.name, state, logs)
                done, left = state.global_step - self.first_step, state.max_steps - state.global_step
                eta = _time_left(self.started, done, left)
                print(line + (f" | {eta} left" if eta and "train_runtime" not in logs else ""), flush=True)

    return [MetricsToJsonl(), MarkCheckpoints(), OneLinePerStep()]


def _time_left(started: float | None, steps_done: int, steps_left: int) -> str | None:
    """``3 min 10 s`` at the mean pace since ``started``, or None before a step was timed."""
    import time

    if started is None or steps_done < 1 or steps_left < 1:
        return None
    seconds = (time.monotonic() - started) / steps_done * steps_left
    return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def step_line(name: str, state, logs: dict[str, Any]) -> str:
    """``[train NAME] step 3/10 | reward 1.250 | format 0.50 | ... | 4.1 s``: what a user watches per step."""
    parts = [f"[train {name}] step {state.global_step}/{state.max_steps}"]
    if "reward" in logs:
        parts.append(f"reward {logs['reward']:.3f}")
        for key, value in logs.items():
            reward = key.split("/")[1] if key.count("/") == 2 else ""
            if key.startswith("rewards/") and key.endswith("/mean") and reward != "completion_sampler":
                parts.append(f"{reward.removesuffix('_reward')} {value:.2f}")
        if "frac_reward_zero_std" in logs:
            parts.append(f"tied groups {logs['frac_reward_zero_std']:.2f}")
    elif "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    elif "train_runtime" in logs:
        parts.append(f"done in {logs['train_runtime']:.0f} s")
    if "step_time" in logs:
        parts.append(f"{logs['step_time']:.1f} s")
    return " | ".join(parts)


# --- the trainer ----------------------------------------------------------------------------------------------


def _uses_chat(tokenizer, config: TrainConfig) -> bool:
    """``config.chat``, or by default whether the tokenizer has a chat template."""
    return config.chat if config.chat is not None else bool(getattr(tokenizer, "chat_template", None))


def prompt_text(record, tokenizer, config: TrainConfig) -> str:
    """The GRPO prompt as the text the model continues: the chat template applied (when the model has one), the
    prefill appended. Both rollout engines (TRL's generate, medrlvr's) tokenize this same text."""
    from .modeling import render_prompt

    return render_prompt(tokenizer, render(record, config.prompt, _uses_chat(tokenizer, config), config.prefill))


def build_dataset(records, tokenizer, config: TrainConfig):
    """The trainer's dataset: a row per question with the columns rewards read (id, answer, options as JSON,
    subject) and the prompt (GRPO) or the prompt and target (SFT: the R1-Zero format with the explanation)."""
    from datasets import Dataset

    chat = _uses_chat(tokenizer, config)
    rows = []
    for r in records:
        row = {
            "id": r.id,
            "answer": r.answer,
            "options": json.dumps(dict(r.options), ensure_ascii=False),
            "subject": r.subject,
        }
        if config.method == "grpo":
            row["prompt"] = prompt_text(r, tokenizer, config)
        else:  # SFT target: the R1-Zero format with the data's explanation (if any) as the reasoning
            reasoning = r.explanation or f"The answer is {r.answer}."
            target = f"<think>{reasoning}</think>\n<answer>{r.answer}</answer>"
            if chat:
                row["messages"] = [*render(r, config.prompt, chat), {"role": "assistant", "content": target}]
            else:
                row["prompt"], row["completion"] = render(r, config.prompt, chat), " " + target
        rows.append(row)
    return Dataset.from_list(rows)


def build_trainer(config: TrainConfig, records: Sequence[Any], model_obj: Any = None, tokenizer: Any = None,
                  trainer_class: type | None = None):  # fmt: skip
    """TRL's GRPOTrainer (medrlvr's subclass, :func:`medrlvr.grpo.grpo_trainer`; ``trainer_class``: a subclass of
    that one) or SFTTrainer, ready to train."""
    import torch

    on_gpu = torch.cuda.is_available()
    if config.bf16 is None:
        from .modeling import cpu_supports_bf16

        use_bf16 = on_gpu or cpu_supports_bf16()
    else:
        use_bf16 = config.bf16
    if model_obj is None:
        from .modeling import load_for_training

        model_obj, tokenizer = load_for_training(
            checkpoint_dir(config.model), on_gpu=on_gpu, bf16=use_bf16, frozen=config.lora or config.qlora,
            qlora=config.qlora, trust_remote_code=config.trust_remote_code,
        )  # fmt: skip
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(records, tokenizer, config)
    common = _common_args(config, on_gpu, use_bf16)
    callbacks = _callbacks(Path(config.output_dir))
    if config.method == "grpo":
        from .grpo import grpo_trainer

        trainer = grpo_trainer(
            config, model_obj, tokenizer, dataset, _lora_config(config), common, callbacks, on_gpu, trainer_class
        )
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**{**common, "per_device_train_batch_size": config.batch_size, **config.extra})
        trainer = SFTTrainer(model=model_obj, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=_lora_config(config), callbacks=callbacks)  # fmt: skip
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # they print every metric dict; ours prints one line
        trainer.remove_callback(noisy)
    return trainer


def _lora_config(config: TrainConfig):
    """PEFT's LoraConfig for LoRA and QLoRA; None for full fine-tuning."""
    if not (config.lora or config.qlora):
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM")  # fmt: skip


def _common_args(config: TrainConfig, on_gpu: bool, use_bf16: bool) -> dict[str, Any]:
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
        gradient_checkpointing=on_gpu if config.gradient_checkpointing is None else config.gradient_checkpointing,
        disable_tqdm=True,  # one line per step instead (see _callbacks)
    )
