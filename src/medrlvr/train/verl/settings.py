"""What medrlvr hands verl: the settings only verl has (:class:`VerlSettings`, a recipe's ``train.verl``) and the
full list of hydra overrides for ``verl.trainer.main_ppo`` (:func:`overrides`), every setting the shared train
settings define mapped once onto verl's names. :mod:`medrlvr.train.verl.launch` writes them into the launch script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config import build
from ...errors import UserError
from ..config import LOSS_AGG_MODES

if TYPE_CHECKING:
    from ..config import TrainConfig

ALGORITHMS = ("ppo", "grpo")
ROLLOUTS = ("vllm", "sglang")
# rollout_importance_sampling -> verl's algorithm.rollout_correction.rollout_is (truncated: ratio capped from above)
ROLLOUT_IS = {"token_truncate": "token", "sequence_truncate": "sequence"}
SCALE_REWARDS = {"group": True, "none": False}  # -> algorithm.norm_adv_by_std_in_grpo
KL_PENALTY = {"k1": "kl", "k2": "mse", "k3": "low_var_kl", "abs": "abs"}  # kl_estimator -> algorithm.kl_penalty
# VerlSettings keys that became shared train settings: a recipe still using one is told where it went
MOVED = {
    "clip_ratio_low": "epsilon",
    "clip_ratio_high": "epsilon_high",
    "loss_agg_mode": "loss_type",
    "max_num_gen_batches": "max_resample",
    # PPO's settings are shared: the TRL path trains PPO too (medrlvr.train.ppo), from the same values
    "critic_learning_rate": "critic_learning_rate",
    "gamma": "gamma",
    "lam": "lam",
    "value_clip": "value_clip",
}
REWARD_PATH = "pkg://medrlvr.rewards"  # an import of the installed package (see the module docstring)
REWARD_NAME = "compute_score"
# chat: false (a base model, as Med-RLVR): verl always renders prompts through a chat template, so this one renders
# the R1-Zero messages exactly as medrlvr.prompts.plain_prompt does ("SYSTEM\nUser: QUESTION\nAssistant:").
# verl_rows gives [system, user]; the template has no quotes, so it passes hydra's and the shell's quoting intact.
PLAIN_TEMPLATE = "{{ messages[0].content }}\nUser: {{ messages[1].content }}\nAssistant:"


@dataclass
class VerlSettings:
    """``train.verl`` in a recipe: what only verl has. A setting TRL also has is a shared train setting, defined
    once: model, learning_rate, lr_scheduler_type (constant | cosine), batch_size x gradient_accumulation_steps =
    questions per update across all GPUs, num_generations = rollouts per question, num_train_epochs / max_steps,
    max_completion_length, temperature, top_p, top_k, beta (KL: in the reward for ppo, a loss term for grpo),
    epsilon / epsilon_high (the clip range), loss_type (grpo | dapo | bnpo | dr_grpo: verl's loss_agg_mode),
    scale_rewards (group | none: grpo's advantages), num_iterations (ppo_epochs), dynamic_sampling / max_resample
    (verl's filter_groups), gradient_checkpointing, lora / lora_r / lora_alpha / lora_target_modules (verl's FSDP
    LoRA has no dropout), chat (false: the plain R1-Zero text), save_steps, save_total_limit, seed, report_to,
    merge, trust_remote_code. Shared settings verl cannot honour are errors: prefill, mask_truncated_completions,
    rollout_engine other than auto (verl samples with ``rollout``), qlora, extra (verl's own keys go in
    ``overrides``). DAPO is algorithm grpo with dynamic_sampling: true, epsilon_high: 0.28, loss_type: dapo."""

    # ppo: GAE with a critic (Med-RLVR) | grpo: group-normalised (Open-Medical-R1). None: the train setting
    # ``method`` decides (method ppo -> ppo), which is how a recipe should say it: one switch for both backends
    algorithm: str | None = None
    nnodes: int = 1  # more than one: start a Ray cluster first, run the script on its head node
    n_gpus_per_node: int = 1
    rollout: str = "vllm"  # vllm | sglang (install verl[vllm] or verl[sglang])
    rollout_tensor_parallel: int = 1  # GPUs per rollout engine (verl's default, 2, fails on one GPU)
    gpu_memory_utilization: float = 0.6  # the rollout engine's share of a GPU it shares with FSDP training
    micro_batch_size_per_gpu: int = 4  # sequences per forward/backward pass: memory, not maths
    max_prompt_length: int = 1024  # tokens; longer prompts are dropped from training (and counted in verl's log)
    val: str | None = None  # validation questions: NAME[:SPLIT] or a JSONL (never test); None: a training sample
    val_size: int = 256  # validation questions (a seeded sample)
    overrides: list[str] = field(default_factory=list)  # more verl key=value overrides, applied last

    def __post_init__(self) -> None:
        if self.algorithm == "dapo":
            raise UserError(
                "algorithm dapo is grpo with shared settings: set verl.algorithm: grpo, dynamic_sampling: true, "
                "epsilon_high: 0.28, loss_type: dapo"
            )
        for name, value, allowed in (("algorithm", self.algorithm, ALGORITHMS), ("rollout", self.rollout, ROLLOUTS)):
            if value not in allowed and not (name == "algorithm" and value is None):
                raise UserError(f"{name} must be one of {', '.join(str(a) for a in allowed)}, got {value!r}")
        for name in ("nnodes", "n_gpus_per_node", "rollout_tensor_parallel", "micro_batch_size_per_gpu", "val_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")


def settings(config: TrainConfig) -> VerlSettings:
    """The verl settings of a train config, checked against the shared ones; a one-line UserError naming the key."""
    moved = next((k for k in MOVED if k in (config.verl or {})), None)
    if moved:
        raise UserError(f"verl.{moved} is now the shared train setting {MOVED[moved]}: set that instead")
    s = build(VerlSettings, dict(config.verl or {}), "verl")
    _check_shared(config)
    if config.method == "ppo" and s.algorithm == "grpo":
        raise UserError(
            "method ppo trains PPO with a critic; verl.algorithm grpo says otherwise: unset verl.algorithm"
        )
    s.algorithm = s.algorithm or ("ppo" if config.method == "ppo" else "grpo")
    if s.algorithm != "ppo" and config.num_generations < 2:
        raise UserError(f"verl algorithm {s.algorithm} compares rollouts in a group: num_generations must be >= 2")
    gpus = s.nnodes * s.n_gpus_per_node
    sequences = config.batch_size * config.gradient_accumulation_steps * config.num_generations
    if sequences % gpus:
        raise UserError(
            f"backend verl splits batch_size x gradient_accumulation_steps x num_generations = {sequences} "
            f"sequences over verl.nnodes x verl.n_gpus_per_node = {gpus} GPUs: make it a multiple"
        )
    return s


def check(config: TrainConfig) -> None:
    """verl's check of a train config (``backend: verl``): a one-line UserError naming the key, before anything runs."""
    settings(config)


def _check_shared(config: TrainConfig) -> None:
    """The shared train settings verl cannot honour, each a one-line error naming the setting."""
    if config.method not in ("grpo", "ppo"):
        raise UserError(f"backend verl trains RL policies (method grpo or ppo); method {config.method} stays with trl")
    if config.qlora:
        raise UserError("backend verl has no QLoRA: set qlora: false (lora: true trains verl's FSDP LoRA)")
    if set(config.rewards) != {"accuracy"} or float(config.rewards["accuracy"]) != 1.0:
        raise UserError(
            "backend verl scores with medrlvr.rewards.compute_score (accuracy only): set rewards: {accuracy: 1.0}"
        )
    if config.prompt != "r1_zero":
        raise UserError(f"backend verl trains on the r1_zero prompt (select.verl_rows), got prompt {config.prompt!r}")
    if config.lr_scheduler_type not in ("constant", "cosine"):
        raise UserError(
            f"backend verl: lr_scheduler_type must be constant or cosine, got {config.lr_scheduler_type!r}"
        )
    if float(config.num_train_epochs) != int(config.num_train_epochs):
        raise UserError(f"backend verl counts whole epochs: num_train_epochs {config.num_train_epochs}")
    if config.extra:
        raise UserError("train.extra is passed to TRL; for backend verl put verl settings in verl.overrides")
    if config.loss_type not in LOSS_AGG_MODES:
        raise UserError(
            f"backend verl: loss_type must be one of {', '.join(LOSS_AGG_MODES)} (verl's loss_agg_mode), "
            f"got {config.loss_type!r}"
        )
    if config.scale_rewards not in SCALE_REWARDS:
        raise UserError(
            f"backend verl: scale_rewards must be group or none (verl has no batch std), got {config.scale_rewards!r}"
        )
    if config.stop:
        raise UserError(
            "backend verl: stop is medrlvr's rollouts' setting (verl samples with its own engine): unset stop"
        )
    if config.skip_zero_variance:
        raise UserError("backend verl: skip_zero_variance is medrlvr's rollouts' (verl 0.9 has no skipping before "
                        "sampling): unset it")  # fmt: skip
    if config.prefill:
        raise UserError("backend verl has no prefill (verl renders the prompt and samples from it): unset prefill")
    if config.mask_truncated_completions:
        raise UserError(
            "backend verl trains on truncated completions (verl 0.9 has no mask_truncated_completions): set it false"
        )
    for name, off, why in (
        ("top_entropy_quantile", 1.0, "verl 0.9 has no top-entropy token selection"),
        ("overlong_buffer", None, "verl 0.9's trainer config has no overlong shaping (DAPO recipe's reward manager)"),
    ):  # fmt: skip
        if getattr(config, name) not in (off, 0):
            raise UserError(f"backend verl: {name} is not mapped ({why}): unset it")
    if config.rollout_importance_sampling not in (None, *ROLLOUT_IS):
        raise UserError(
            f"backend verl: rollout_importance_sampling {config.rollout_importance_sampling} is not mapped (verl's "
            "rejection sampling, algorithm.rollout_correction.rollout_rs, bounds another statistic): use "
            "token_truncate or sequence_truncate"
        )
    if config.rollout_importance_sampling and config.rollout_importance_sampling_min:
        raise UserError("backend verl truncates the rollout importance ratio from above only (TIS): unset "
                         "rollout_importance_sampling_min")  # fmt: skip
    if config.rollout_engine != "auto":
        raise UserError(
            f"backend verl samples with verl.rollout (vllm | sglang): set rollout_engine: auto, "
            f"got {config.rollout_engine!r}"
        )


def _value(value: Any) -> str:
    """A value in hydra's override grammar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    text = str(value)
    if text and all(c.isalnum() or c in "_-./" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def paths(config: TrainConfig) -> dict[str, Path]:
    """Where verl's inputs and outputs go, as absolute paths: Ray's workers do not share the launcher's directory
    (several nodes: the run directory must be on a filesystem they all mount)."""
    out = Path(config.output_dir).resolve()
    return {
        "out": out,
        "train": out / "data" / "train.parquet",
        "val": out / "data" / "val.parquet",
        "checkpoints": out / "checkpoints",
        "hf": out / "verl_hf",  # the model merger's output, moved to model/ or adapter/ after training
        "metrics": out / "verl_metrics.jsonl",  # verl's file logger
        "script": out / "verl_launch.sh",
        "log": out / "verl.log",
    }


# Over 60 lines on purpose: one table of (verl key, value), one key per line in the order of verl's own config, so
# that it reads against ``ppo_trainer.yaml`` top to bottom; split into helpers, a key's neighbours would be elsewhere.
def overrides(config: TrainConfig, model_path: str | None = None) -> list[str]:
    """The hydra overrides for ``python -m verl.trainer.main_ppo``, in order: data, model, actor, rollout,
    reference, critic, algorithm, reward, trainer, then ``verl.overrides``."""
    s = settings(config)
    p = paths(config)
    model = model_path or config.model
    ppo = s.algorithm == "ppo"
    prompts_per_update = config.batch_size * config.gradient_accumulation_steps
    clip_high = config.epsilon_high if config.epsilon_high is not None else config.epsilon
    clip_low = config.epsilon
    # verl's policy loss: GSPO (sequence-level ratio) and CISPO have their own; vanilla is PPO/GRPO's clip
    loss_mode = "gspo" if config.importance_sampling_level == "sequence" else "vanilla"
    if config.loss_type == "cispo":
        # TRL clamps the ratio at epsilon_high (5.0: a ratio of at most 5); verl clips it to [1 - low, 1 + high]
        loss_mode, clip_low, clip_high = "cispo", 1.0, clip_high - 1.0
    # None: on, as TRL's path has it on a GPU (verl trains on GPUs only)
    checkpointing = config.gradient_checkpointing is not False
    dr_grpo = config.loss_type == "dr_grpo"
    loggers = [] if config.report_to in ("none", [], None) else config.report_to
    lora = {}
    if config.lora:
        lora = {
            "lora_rank": config.lora_r,
            "lora_alpha": config.lora_alpha,
            "target_modules": config.lora_target_modules,
        }
    model_keys = {
        "path": str(model),
        "trust_remote_code": config.trust_remote_code,
        "lora_rank": config.lora_r if config.lora else 0,
        **{k: v for k, v in lora.items() if k != "lora_rank"},
        "enable_gradient_checkpointing": checkpointing,
    }
    if config.chat is False:
        model_keys["custom_chat_template"] = PLAIN_TEMPLATE
    micro = s.micro_batch_size_per_gpu
    items: list[tuple[str, Any]] = [
        ("data.train_files", str(p["train"])),
        ("data.val_files", str(p["val"])),
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", s.max_prompt_length),
        ("data.max_response_length", config.max_completion_length),
        ("data.train_batch_size", prompts_per_update * config.ppo_mini_batches),  # one rollout batch
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.shuffle", True),
        ("data.seed", config.seed),
        ("data.trust_remote_code", config.trust_remote_code),
        *((f"actor_rollout_ref.model.{k}", v) for k, v in model_keys.items()),
        ("actor_rollout_ref.actor.optim.lr", config.learning_rate),
        ("actor_rollout_ref.actor.optim.lr_scheduler_type", config.lr_scheduler_type),
        ("actor_rollout_ref.actor.optim.lr_warmup_steps_ratio", 0.0),
        ("actor_rollout_ref.actor.optim.min_lr_ratio", 0.0),
        ("actor_rollout_ref.actor.optim.weight_decay", 0.0),  # TRL's default, so both backends agree
        ("actor_rollout_ref.actor.grad_clip", 1.0),
        # The generated batch is one mini-batch, optimised num_iterations times (TRL's num_iterations): one
        # iteration keeps the rollouts on-policy.
        ("actor_rollout_ref.actor.ppo_mini_batch_size", prompts_per_update),  # one optimizer step
        ("actor_rollout_ref.actor.ppo_epochs", config.num_iterations),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", micro),
        ("actor_rollout_ref.actor.clip_ratio", config.epsilon),
        ("actor_rollout_ref.actor.clip_ratio_low", clip_low),
        ("actor_rollout_ref.actor.clip_ratio_high", clip_high),
        ("actor_rollout_ref.actor.policy_loss.loss_mode", loss_mode),
        ("actor_rollout_ref.actor.loss_agg_mode", LOSS_AGG_MODES[config.loss_type]),
        # dr_grpo divides by max_completion_length, as TRL does (verl's default: the batch's padded length)
        *([("actor_rollout_ref.actor.loss_scale_factor", config.max_completion_length)] if dr_grpo else []),
        ("actor_rollout_ref.actor.entropy_coeff", 0.0),
        # KL to the reference: PPO puts it in the reward (the classic RLHF form), GRPO/DAPO in the loss.
        ("actor_rollout_ref.actor.use_kl_loss", not ppo and config.beta > 0),
        *([] if ppo else [("actor_rollout_ref.actor.kl_loss_coef", config.beta)]),
        *([] if ppo else [("actor_rollout_ref.actor.kl_loss_type", "low_var_kl")]),
        ("actor_rollout_ref.actor.checkpoint.save_contents", ["model", "optimizer", "extra"]),
        ("actor_rollout_ref.rollout.name", s.rollout),
        ("actor_rollout_ref.rollout.n", config.num_generations),
        ("actor_rollout_ref.rollout.temperature", config.temperature),
        ("actor_rollout_ref.rollout.top_p", config.top_p),
        ("actor_rollout_ref.rollout.top_k", config.top_k if config.top_k > 0 else -1),  # off: 0 in TRL, -1 in vLLM
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", s.rollout_tensor_parallel),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", s.gpu_memory_utilization),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", micro),
        ("actor_rollout_ref.rollout.seed", config.seed),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", micro),
        ("critic.enable", ppo),
    ]
    if ppo:
        items += [
            ("critic.model.path", str(model)),  # the critic starts from the policy's base model
            ("critic.model.trust_remote_code", config.trust_remote_code),
            ("critic.model.lora_rank", config.lora_r if config.lora else 0),
            *((f"critic.model.{k}", v) for k, v in lora.items() if k != "lora_rank"),
            ("critic.model.enable_gradient_checkpointing", checkpointing),
            ("critic.optim.lr", config.critic_learning_rate),
            ("critic.optim.lr_scheduler_type", config.lr_scheduler_type),
            ("critic.optim.lr_warmup_steps_ratio", 0.0),
            ("critic.optim.weight_decay", 0.0),
            ("critic.ppo_micro_batch_size_per_gpu", micro),
            ("critic.cliprange_value", config.value_clip),
        ]
    items.append(("algorithm.adv_estimator", "gae" if ppo else "grpo"))
    if ppo:
        items += [
            ("algorithm.gamma", config.gamma),
            ("algorithm.lam", config.lam),
            ("algorithm.use_kl_in_reward", config.beta > 0),
            ("algorithm.kl_penalty", KL_PENALTY[config.kl_estimator]),
            ("algorithm.kl_ctrl.type", "fixed"),
            ("algorithm.kl_ctrl.kl_coef", config.beta),
        ]
    else:
        items += [
            ("algorithm.norm_adv_by_std_in_grpo", SCALE_REWARDS[config.scale_rewards]),
            ("algorithm.use_kl_in_reward", False),
        ]
    # DAPO's dynamic sampling: groups whose rewards are all equal are dropped and the batch refilled. verl 0.9's
    # trainer (trainer.use_v1) logs that it ignores max_num_gen_batches and refills until the batch is full.
    items.append(("algorithm.filter_groups.enable", config.dynamic_sampling))
    if config.rollout_importance_sampling:  # truncated importance sampling of the rollouts (TIS) at the same cap
        items += [
            ("algorithm.rollout_correction.rollout_is", ROLLOUT_IS[config.rollout_importance_sampling]),
            ("algorithm.rollout_correction.rollout_is_threshold", config.rollout_importance_sampling_max),
        ]
    if config.dynamic_sampling:
        items += [
            ("algorithm.filter_groups.metric", "reward"),
            ("algorithm.filter_groups.max_num_gen_batches", config.max_resample + 1),
        ]
    items += [
        ("reward.custom_reward_function.path", REWARD_PATH),
        ("reward.custom_reward_function.name", REWARD_NAME),
        ("reward.reward_manager.name", "naive"),
        ("trainer.nnodes", s.nnodes),
        ("trainer.n_gpus_per_node", s.n_gpus_per_node),
        ("trainer.total_epochs", int(config.num_train_epochs)),
        ("trainer.total_training_steps", config.max_steps if config.max_steps > 0 else None),
        ("trainer.critic_warmup", config.critic_warmup_steps),
        ("trainer.save_freq", config.save_steps),
        ("trainer.test_freq", config.save_steps),
        ("trainer.val_before_train", True),
        ("trainer.max_actor_ckpt_to_keep", config.save_total_limit),
        ("trainer.max_critic_ckpt_to_keep", config.save_total_limit),
        ("trainer.default_local_dir", str(p["checkpoints"])),
        ("trainer.resume_mode", "auto"),  # a rerun continues from the last checkpoint
        ("trainer.project_name", "medrlvr"),
        ("trainer.experiment_name", p["out"].name),
        ("trainer.logger", ["console", "file", *([loggers] if isinstance(loggers, str) else loggers)]),
    ]
    return [f"{key}={_value(value)}" for key, value in items] + list(s.overrides)
