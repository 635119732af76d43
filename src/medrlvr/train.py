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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import build, check_ranges, setting
from .errors import UserError
from .models import checkpoint_dir
from .prompts import render
from .rewards import REWARDS
from .store import write_json

log = logging.getLogger(__name__)

ROLLOUT_ENGINES = ("auto", "medrlvr", "trl", "vllm")


@dataclass
class TrainConfig:
    model: str = setting("smollm2-135m-instruct", help="any model reference")
    train_file: str = setting("", help="train.jsonl written by `medrlvr select`")
    output_dir: str = setting("runs/default/train/ratio", help="where the adapter, checkpoints and metrics go")
    method: str = setting("grpo", help="grpo (RL with verifiable rewards) or sft", choices=("grpo", "sft"))
    rewards: dict[str, float] = setting(
        default_factory=lambda: {"format": 1.0, "accuracy": 1.0, "xml_count": 1.0},
        help="reward name -> weight, as JSON or key=value (format, accuracy, xml_count, ...)",
    )
    prompt: str = setting("r1_zero", help="the training prompt (r1_zero: <think>/<answer>)")
    chat: bool | None = setting(None, help="use the chat template (default: if the tokenizer has one)")
    # LoRA by default; full fine-tuning with lora: false; QLoRA (4-bit base, GPU + bitsandbytes) with qlora: true
    lora: bool = setting(True, help="train a LoRA adapter (off: full fine-tuning)")
    lora_r: int = setting(16, help="LoRA rank", ge=1)
    lora_alpha: int = setting(32, help="LoRA scaling alpha", gt=0)
    lora_dropout: float = setting(0.05, help="LoRA dropout", ge=0, lt=1)
    lora_target_modules: str | list[str] = setting(
        "all-linear", help="modules LoRA adapts (all-linear, or a list of names)"
    )
    qlora: bool = setting(False, help="QLoRA: a 4-bit base (GPU + bitsandbytes)")
    learning_rate: float = setting(2e-5, help="optimizer learning rate", gt=0)
    lr_scheduler_type: str = setting("cosine", help="learning-rate schedule (a transformers scheduler name)")
    batch_size: int = setting(3, help="questions per device step", ge=1)
    num_generations: int = setting(3, help="rollouts per question", ge=1)
    gradient_accumulation_steps: int = setting(4, help="device steps per optimizer step", ge=1)
    num_train_epochs: float = setting(1.0, help="passes over the training set (when max_steps is -1)", gt=0)
    max_steps: int = setting(-1, help="optimizer steps; -1: num_train_epochs decides")
    max_completion_length: int = setting(256, help="tokens per rollout at most", ge=1)
    # GRPO settings the paper ran with without printing them: the defaults of TRL 0.15, which Unsloth's GRPO used
    # in April 2025. They are set here and passed to TRL every time, never inherited: TRL has changed most of them
    # since (1.16 defaults to loss_type dapo, 0.19 to beta 0.0, 1.x to temperature 1.0).
    loss_type: str = setting(
        "grpo", help="per-sequence token mean, then the batch mean (dapo/bnpo/dr_grpo: other normalisers)"
    )
    beta: float = setting(
        0.04, help="KL coefficient against the reference (the base model: LoRA disabled); 0 skips that pass", ge=0
    )
    scale_rewards: str = setting(
        "group",
        help='advantages divided by the group\'s reward std ("none": Dr. GRPO; "batch")',
        choices=("group", "none", "batch"),
    )
    epsilon: float = setting(0.2, help="PPO-style clip range (inactive with one iteration per batch)", ge=0)
    epsilon_high: float | None = setting(None, help="upper clip bound; None: epsilon; DAPO's clip-higher: 0.28", ge=0)
    num_iterations: int = setting(1, help="optimisation passes over each generated batch", ge=1)
    mask_truncated_completions: bool = setting(
        False, help="True (DAPO): completions cut at max_completion_length give no loss"
    )
    temperature: float = setting(0.9, help="sampling temperature of the rollouts", ge=0)
    top_p: float = setting(1.0, help="rollouts: nucleus sampling mass", gt=0, le=1)
    top_k: int = setting(
        0, help="0: no top-k (vLLM's and TRL 1.x's default; transformers' generate would apply 50)", ge=0
    )
    # Who samples the rollouts: "medrlvr" (medrlvr's engine on a live bf16 copy of the policy: see
    # medrlvr.rollout), "trl" (TRL's own transformers generate), "vllm" (TRL's vLLM integration). "auto": vllm on a
    # GPU where vLLM is installed, else medrlvr (2.7x faster generation than TRL's generate on this project's CPU:
    # medrlvr bench train).
    rollout_engine: str = setting(
        "auto", help="who samples the rollouts: medrlvr, trl, vllm, or auto", choices=ROLLOUT_ENGINES
    )
    rollout_dtype: str = setting(
        "auto",
        help="medrlvr rollouts: auto (bf16 where the hardware has it), fp32, bf16, fp16",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    rollout_batch_size: int = setting(64, help="medrlvr rollouts: rows decoded together", ge=1)
    vllm_mode: str = setting(
        "colocate",
        help='rollout_engine vllm: "colocate" or "server" (trl vllm-serve on other GPUs)',
        choices=("colocate", "server"),
    )
    # Text the completion starts with, written after the prompt (R1-Zero replications prefill "<think>"): the
    # rewards and the evaluation read it as part of the completion; it is not trained on.
    prefill: str | None = setting(None, help='text each completion starts with (e.g. "<think>"); not trained on')
    # DAPO dynamic sampling (off in the papers): drop groups whose rollouts all earn the same reward and refill the
    # batch with groups of further questions, at most max_resample extra generation rounds per step
    # (rollout_engine medrlvr; backend verl: verl's filter_groups).
    dynamic_sampling: bool = setting(
        False, help="DAPO dynamic sampling: refill groups whose rollouts all earn the same reward"
    )
    max_resample: int = setting(3, help="dynamic sampling: extra generation rounds per step at most", ge=0)
    logging_steps: int = setting(1, help="optimizer steps between log lines", ge=1)
    save_steps: int = setting(10, help="optimizer steps between checkpoints", ge=1)
    save_total_limit: int = setting(2, help="checkpoints kept", ge=1)
    seed: int = setting(0, help="training seed")
    control: str | None = setting(
        None, help="random_reward: train on coin flips with the real rewards' mean (a control arm)",
        choices=("random_reward",),
    )  # fmt: skip
    report_to: str | list[str] = setting(
        "none", help="where transformers reports metrics (none, wandb, tensorboard, ...)"
    )
    merge: bool = setting(False, help="also write a merged model (base + LoRA) that `medrlvr eval` loads directly")
    sample_completions: int = setting(
        64, help="completions per generation step written to completions.jsonl (the dynamics report reads them)", ge=0
    )
    # Recompute activations in the backward pass instead of keeping them: less memory, a slower step (measured
    # here on a CPU: 6.2 s instead of ~3.5 s of backward per demo step). None: on a GPU (memory is what runs out
    # there), off on a CPU. TRL's own default is on.
    gradient_checkpointing: bool | None = setting(
        None, help="recompute activations in the backward pass (default: on a GPU only)"
    )
    # bf16 mixed precision. None: on a GPU, and on a CPU with native bf16 (AVX512-BF16/AMX; measured on the
    # demo: 23 s per GRPO step against 31 s in fp32, the same rewards and completions)
    bf16: bool | None = setting(None, help="bf16 mixed precision (default: on a GPU, and on a CPU with native bf16)")
    trust_remote_code: bool = setting(False, help="run the code that comes with the model repository")
    extra: dict[str, Any] = setting(
        default_factory=dict, help="passed to GRPOConfig / SFTConfig as is (JSON or key=value)"
    )
    backend: str = setting(
        "trl",
        help="trl, or verl (PPO, GRPO, DAPO on GPUs and many nodes: medrlvr.verl_backend)",
        choices=("trl", "verl"),
    )
    verl: dict[str, Any] = setting(
        default_factory=dict, help="backend verl: verl_backend.VerlSettings (JSON or key=value)"
    )

    def __post_init__(self) -> None:
        from .grpo import apply_variant

        apply_variant(self)  # a named GRPO variant's settings, where none is given explicitly
        if self.method not in ("grpo", "sft"):
            raise UserError(f"method must be grpo or sft, got {self.method!r}")
        if self.rollout_engine not in ROLLOUT_ENGINES:
            raise UserError(f"rollout_engine must be one of {', '.join(ROLLOUT_ENGINES)}, got {self.rollout_engine!r}")
        if self.dynamic_sampling and self.rollout_engine not in ("auto", "medrlvr"):
            raise UserError(
                "dynamic_sampling needs rollout_engine medrlvr (TRL's own generation cannot refill a batch)"
            )
        for name in ("batch_size", "num_generations", "gradient_accumulation_steps", "max_completion_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.method == "grpo" and self.num_generations < 2:
            raise UserError("num_generations must be at least 2: GRPO compares rollouts within a group")
        if self.max_resample < 0:
            raise UserError(f"max_resample must be >= 0, got {self.max_resample}")
        unknown = [name for name in self.rewards if name not in REWARDS]
        if unknown:
            raise UserError(f"unknown reward {unknown[0]!r} in 'rewards'; known: {', '.join(REWARDS)}")
        if self.backend not in ("trl", "verl"):
            raise UserError(f"backend must be trl or verl, got {self.backend!r}")
        if self.control and (self.method != "grpo" or self.backend != "trl"):
            raise UserError("setting 'control': random_reward needs method grpo and backend trl")
        if self.control and self.dynamic_sampling:
            raise UserError("setting 'control': random_reward with dynamic_sampling would refill on coin flips; "
                            "turn one off")  # fmt: skip
        if self.backend == "verl":  # checked here, so a recipe's --plan already catches a bad verl setting
            from .verl_backend import settings

            settings(self)
        if self.max_steps == 0 or self.max_steps < -1:
            raise UserError(
                f"setting 'max_steps' must be -1 (train num_train_epochs) or at least 1, got {self.max_steps}"
            )
        check_ranges(self)

    # --- GRPO variants, and the rollouts' importance-sampling correction (medrlvr.grpo: VARIANTS) ---------------
    variant: str | None = setting(
        None,
        choices=("grpo", "dr_grpo", "dapo", "gspo", "cispo"),
        help="a named GRPO variant: sets its paper's settings (medrlvr.grpo.VARIANTS) wherever the recipe leaves "
        "them at medrlvr's default; a setting given another value wins. None: the settings as given",
    )
    importance_sampling_level: str = setting(
        "token",
        choices=("token", "sequence"),
        help="the policy ratio per token (GRPO) or per sequence, the length-normalised sum (GSPO, arXiv 2507.18071)",
    )
    top_entropy_quantile: float = setting(
        1.0, gt=0.0, le=1.0,
        help="train only on the highest-entropy share of each batch's tokens (arXiv 2506.01939: 0.2); 1.0: all",
    )  # fmt: skip
    overlong_buffer: int | None = setting(
        None, ge=0,
        help="DAPO's soft overlong punishment: a reward falling linearly from 0 to -1 over the last overlong_buffer "
        "tokens before max_completion_length (TRL's get_soft_overlong_punishment). None or 0: off",
    )  # fmt: skip
    rollout_importance_sampling: str | None = setting(
        None,
        choices=("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
        help="correct the gap between the sampler's and the trainer's log-probs (medrlvr or vLLM rollouts): "
        "truncate the ratio at the bounds, or mask tokens/sequences outside them (TRL's "
        "vllm_importance_sampling_mode). None: no correction (the gap is still logged)",
    )
    rollout_importance_sampling_max: float = setting(
        3.0, gt=0.0,
        help="upper bound of the rollout importance-sampling ratio (TRL's vllm_importance_sampling_clip_max)",
    )  # fmt: skip
    rollout_importance_sampling_min: float | None = setting(
        None, ge=0.0,
        help="lower bound of that ratio (masked modes; TRL's vllm_importance_sampling_clip_min). None: no bound",
    )  # fmt: skip


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
