"""Training: GRPO with LoRA on the R1-Zero prompt (Open-Medical-R1 section 3.1) and the SFT baseline of Med-RLVR,
as thin wrappers over TRL's GRPOTrainer / SFTTrainer and PEFT.

Defaults are the paper's: learning rate 2e-5 with a cosine schedule, 3 questions per step with 3 rollouts each,
gradient accumulation 4, rewards format + accuracy + XML count with equal weights. ``batch_size`` counts
questions; TRL's per-device batch counts completions, so it is ``batch_size * num_generations``.

What a user watches, per logging step, in ``metrics.jsonl`` (and TRL's ``report_to``): each reward's mean and
std, the share of groups whose rewards are all equal (``frac_reward_zero_std``: they give no gradient), completion
lengths, KL, learning rate, and ``rewards/self_reflection/mean`` -- the share of completions that re-check
themselves ("wait", "let me re-check"), logged through a zero-weight reward. Sample completions go to
``completions.jsonl``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import build
from .models import checkpoint_dir
from .prompts import chat_messages, plain_prompt
from .rewards import REWARDS, completion_text
from .select import load_selection

REFLECTION = re.compile(
    r"(?i)\b(wait|let me (?:re-?check|double[- ]check|verify|reconsider)|on second thought|"
    r"hmm|i made a mistake|re-?evaluate)\b"
)


@dataclass
class TrainConfig:
    model: str = "smollm2-135m-instruct"  # any model reference
    train_file: str = ""  # train.jsonl written by `medrlvr select`
    output_dir: str = "runs/default/train/ratio"
    method: str = "grpo"  # grpo | sft
    rewards: dict[str, float] = field(default_factory=lambda: {"format": 1.0, "accuracy": 1.0, "xml_count": 1.0})
    prompt: str = "r1_zero"
    chat: bool | None = None  # None: chat template if the tokenizer has one
    # LoRA by default; full fine-tuning with lora: false; QLoRA (4-bit base, GPU + bitsandbytes) with qlora: true
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    qlora: bool = False
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "cosine"
    batch_size: int = 3  # questions per device step
    num_generations: int = 3  # rollouts per question
    gradient_accumulation_steps: int = 4
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_completion_length: int = 256
    temperature: float = 1.0
    beta: float = 0.0  # KL coefficient (TRL's default: no reference model)
    loss_type: str | None = None  # TRL's (grpo, dr_grpo, dapo, bnpo, ...); None keeps TRL's default
    logging_steps: int = 1
    save_steps: int = 10
    save_total_limit: int = 2
    seed: int = 0
    report_to: str | list[str] = "none"
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # or "server" (trl vllm-serve on other GPUs)
    merge: bool = False  # also write a merged model (base + LoRA) that `medrlvr eval` loads directly
    sample_completions: int = 2  # completions per generation step written to completions.jsonl
    # bf16 mixed precision. None: on a GPU, and on a CPU with native bf16 (AVX512-BF16/AMX; measured on the
    # demo: 23 s per GRPO step against 31 s in fp32, the same rewards and completions)
    bf16: bool | None = None
    trust_remote_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # passed to GRPOConfig / SFTConfig as is
    backend: str = "trl"  # trl | verl (PPO, GRPO, DAPO on GPUs and many nodes: medrlvr.verl_backend)
    verl: dict[str, Any] = field(default_factory=dict)  # backend verl: verl_backend.VerlSettings

    def __post_init__(self) -> None:
        if self.method not in ("grpo", "sft"):
            raise ValueError(f"method must be grpo or sft, got {self.method!r}")
        unknown = [name for name in self.rewards if name not in REWARDS]
        if unknown:
            raise ValueError(f"unknown reward {unknown[0]!r} in 'rewards'; known: {', '.join(REWARDS)}")
        if self.backend not in ("trl", "verl"):
            raise ValueError(f"backend must be trl or verl, got {self.backend!r}")
        if self.backend == "verl":  # checked here, so a recipe's --plan already catches a bad verl setting
            from .verl_backend import settings

            settings(self)


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


def self_reflection_reward(completions, **kwargs) -> list[float]:
    """1.0 for a completion that re-checks itself ("wait", "let me re-check", ...). Logged with weight 0."""
    return [1.0 if REFLECTION.search(completion_text(c)) else 0.0 for c in completions]


class CompletionSampler:
    """A zero-weight reward that appends a few completions per generation step to a JSON Lines file."""

    __name__ = "completion_sampler"

    def __init__(self, path: Path, per_step: int):
        self.path, self.per_step, self.calls = path, per_step, 0

    def __call__(self, completions, answer=None, id=None, **kwargs) -> list[float]:
        self.calls += 1
        with open(self.path, "a", encoding="utf-8") as f:
            for i, c in enumerate(completions[: self.per_step]):
                f.write(
                    json.dumps(
                        {
                            "call": self.calls,
                            "id": id[i] if id else None,
                            "gold": answer[i] if answer else None,
                            "completion": completion_text(c),
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        return [0.0] * len(completions)


def _dataset(records, tokenizer, config: TrainConfig):
    from datasets import Dataset

    chat = config.chat if config.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    rows = []
    for r in records:
        row = {
            "id": r.id,
            "answer": r.answer,
            "options": json.dumps(dict(r.options), ensure_ascii=False),
            "subject": r.subject,
        }
        if config.method == "grpo":
            row["prompt"] = chat_messages(r, config.prompt) if chat else plain_prompt(r, config.prompt)
        else:  # SFT target: the R1-Zero format with the data's explanation (if any) as the reasoning
            reasoning = r.explanation or f"The answer is {r.answer}."
            target = f"<think>{reasoning}</think>\n<answer>{r.answer}</answer>"
            if chat:
                row["messages"] = chat_messages(r, config.prompt) + [{"role": "assistant", "content": target}]
            else:
                row["prompt"], row["completion"] = plain_prompt(r, config.prompt), " " + target
        rows.append(row)
    return Dataset.from_list(rows)


def _metrics_callback(path: Path):
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return MetricsToJsonl()


def train(config: TrainConfig, model_obj: Any = None, tokenizer: Any = None) -> Path:
    """Train one policy; returns the output directory (adapter/, merged/ on request, metrics.jsonl,
    completions.jsonl, checkpoints). Resumes from the last checkpoint in the output directory."""
    if config.backend == "verl":  # verl runs its own processes (Ray): medrlvr.verl_backend
        from . import verl_backend

        return verl_backend.train(config)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    records = load_selection(config.train_file)
    on_gpu = torch.cuda.is_available()
    if config.bf16 is None:
        from .engines.hf import cpu_supports_bf16

        use_bf16 = on_gpu or cpu_supports_bf16()
    else:
        use_bf16 = config.bf16
    if model_obj is None:
        path = checkpoint_dir(config.model)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
        kwargs: dict[str, Any] = {
            "dtype": torch.bfloat16 if on_gpu else torch.float32,
            "trust_remote_code": config.trust_remote_code,
        }
        if config.qlora:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        model_obj = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    peft_config = None
    if config.lora or config.qlora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
            task_type="CAUSAL_LM",
        )
    dataset = _dataset(records, tokenizer, config)
    common = dict(
        output_dir=str(out),
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
    )
    callbacks = [_metrics_callback(out / "metrics.jsonl")]
    if config.method == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        names = list(config.rewards)
        funcs = [REWARDS[n] for n in names] + [
            self_reflection_reward,
            CompletionSampler(out / "completions.jsonl", config.sample_completions),
        ]
        weights = [float(config.rewards[n]) for n in names] + [0.0, 0.0]
        grpo = dict(
            per_device_train_batch_size=config.batch_size * config.num_generations,
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            temperature=config.temperature,
            beta=config.beta,
            reward_weights=weights,
            use_vllm=config.use_vllm,
            vllm_mode=config.vllm_mode,
            **({"loss_type": config.loss_type} if config.loss_type else {}),
        )
        # `extra`: anything TRL takes, over medrlvr's choices (e.g. bf16: true on a CPU with AVX512-BF16)
        args = GRPOConfig(**{**common, **grpo, **config.extra})
        trainer = GRPOTrainer(
            model=model_obj,
            reward_funcs=funcs,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**{**common, "per_device_train_batch_size": config.batch_size, **config.extra})
        trainer = SFTTrainer(
            model=model_obj,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    last = get_last_checkpoint(str(out)) if any(out.glob("checkpoint-*")) else None
    trainer.train(resume_from_checkpoint=last)
    final = out / ("adapter" if peft_config else "model")
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    if config.merge and peft_config:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"), safe_serialization=True)
        tokenizer.save_pretrained(str(out / "merged"))
    return out
