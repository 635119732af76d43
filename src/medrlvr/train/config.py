"""Training settings: every setting of ``medrlvr train`` and a recipe's ``train`` section, defined once (help,
choices and ranges are the CLI's and the checks'). The defaults are the paper's (Open-Medical-R1 section 3.1, and
TRL 0.15's GRPO defaults it ran with: see the comments); :mod:`medrlvr.train` trains with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import apply_overrides, build, check_ranges, setting
from ..errors import UserError
from ..rewards import REWARDS
from .variants import apply_variant

ROLLOUT_ENGINES = ("auto", "medrlvr", "trl", "vllm")
METHODS = ("grpo", "ppo", "sft")
RL_METHODS = ("grpo", "ppo")  # trained on rollouts and rewards
PPO_LOSS_AGG = ("grpo", "dapo", "bnpo")  # loss_types PPO's loss (medrlvr.train.ppo.core.aggregate) can average as
# The shared loss_type (TRL's names) -> verl's actor.loss_agg_mode: the same normaliser of the per-token loss.
LOSS_AGG_MODES = {
    "grpo": "seq-mean-token-mean",  # each completion's token mean, then the mean over completions
    "dapo": "token-mean",  # the mean over every token of the update
    "bnpo": "token-mean",  # TRL: the tokens of one device's batch; verl: of the whole update
    "dr_grpo": "seq-mean-token-sum-norm",  # token sums / (completions x max_completion_length): loss_scale_factor
    "cispo": "token-mean",  # TRL's cispo normalises as dapo does; verl's policy_loss.loss_mode cispo
}
# TRL's names for what medrlvr sets from a train setting of another name: such a key in ``extra`` is an error naming
# the setting (a key of the same name as a setting is one too, see :func:`check`)
EXTRA_WITH_NAMES = {
    "per_device_train_batch_size": "batch_size",
    "steps_per_generation": "gradient_accumulation_steps",
    "activation_checkpointing": "gradient_checkpointing",  # transformers 5's name for it
    "reward_weights": "rewards",
    "use_vllm": "rollout_engine",
    "vllm_importance_sampling_correction": "rollout_importance_sampling",
    "vllm_importance_sampling_mode": "rollout_importance_sampling",
    "vllm_importance_sampling_clip_max": "rollout_importance_sampling_max",
    "vllm_importance_sampling_clip_min": "rollout_importance_sampling_min",
}


@dataclass
class TrainConfig:
    model: str = setting("smollm2-135m-instruct", help="any model reference")
    train_file: str = setting("", help="train.jsonl written by `medrlvr select`")
    output_dir: str = setting("runs/default/train/ratio", help="where the adapter, checkpoints and metrics go")
    method: str = setting(
        "grpo", help="grpo or ppo (RL with verifiable rewards; ppo learns a critic) or sft", choices=METHODS
    )
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
    stop: list[str] = setting(
        default_factory=list, help='medrlvr rollouts: a completion ends where one of these ends (e.g. "</answer>", '
        "as R1-Zero replications sample); the string stays in the completion"
    )  # fmt: skip
    # DAPO dynamic sampling (off in the papers): drop groups whose rollouts all earn the same reward and refill the
    # batch with groups of further questions, at most max_resample extra generation rounds per step
    # (rollout_engine medrlvr; backend verl: verl's filter_groups).
    dynamic_sampling: bool = setting(
        False, help="DAPO dynamic sampling: refill groups whose rollouts all earn the same reward"
    )
    max_resample: int = setting(3, help="dynamic sampling: extra generation rounds per step at most", ge=0)
    # GRESO (arXiv 2506.02177): a question whose last `after` groups all tied (zero reward variance, no gradient)
    # is skipped before sampling with probability `probability` and another question drawn in its place; with
    # dynamic sampling the questions drawn to refill a batch are checked too. One mapping, both keys required
    # (a recipe key train.skip_zero_variance.after=... overrides one); None: off. medrlvr.train.grpo.rollout.
    skip_zero_variance: dict[str, float] | None = setting(
        None, help="GRESO: {after: N, probability: p}: skip a question whose last N groups all tied with probability "
        "p before sampling (rollout_engine medrlvr). None: off"
    )  # fmt: skip
    # Shuffled options (issue 30): with the gold letter of a question fixed, RL can pay a policy for the golds' letter
    # distribution. On: each rollout group sees its question's options in a permutation seeded by (seed, step,
    # question), the gold letter and every reward column remapped with it; options that speak about the others ("All
    # of the above", "以上都不对", "Both A and B") keep their places (medrlvr.options). completions.jsonl records each
    # permutation. Off by default (the papers train on the data's order); rollout_engine medrlvr, grpo or ppo.
    shuffle_options: bool = setting(
        False, help="each rollout group sees its question's options in a seeded permutation (gold letter and rewards "
        "remapped; anchored options such as 'All of the above' stay in place)"
    )  # fmt: skip
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
        help="trl, or verl (PPO, GRPO, DAPO on GPUs and many nodes: medrlvr.train.verl.launch)",
        choices=("trl", "verl"),
    )
    verl: dict[str, Any] = setting(
        default_factory=dict, help="backend verl: verl_backend.VerlSettings (JSON or key=value)"
    )

    def __post_init__(self) -> None:
        apply_variant(self)  # a named GRPO variant's settings, where none is given explicitly
        check_ranges(
            self
        )  # the fields' declared choices and ranges (a config may be built without medrlvr.config.build)
        check(self)

    # --- GRPO variants, and the rollouts' importance-sampling correction (medrlvr.train.grpo: VARIANTS) ---------------
    variant: str | None = setting(
        None,
        choices=("grpo", "dr_grpo", "dapo", "gspo", "cispo"),
        help="a named GRPO variant: sets its paper's settings (medrlvr.train.grpo.VARIANTS) wherever the recipe leaves "
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
    # --- PPO with a critic (method: ppo; medrlvr.train.ppo), as Med-RLVR trains (arXiv 2502.19655, OpenRLHF) --------
    # Defaults: OpenRLHF's train_ppo_ray.py (critic_learning_rate 9e-6, gamma 1, lambd 1, value_clip 0.5, init_kl_coef
    # 0.01 with the k1 estimator in the reward, freezing_actor_steps -1) and verl's ppo_trainer.yaml (the same gamma,
    # lam and cliprange_value; critic_warmup 0). The KL coefficient is ``beta``; PPO epochs are ``num_iterations`` and
    # the clip range ``epsilon``/``epsilon_high``, as for GRPO. backend verl maps these to the same verl keys.
    critic_learning_rate: float = setting(9e-6, gt=0, help="ppo: the critic's learning rate (OpenRLHF: 9e-6)")
    gamma: float = setting(1.0, ge=0, le=1, help="ppo: GAE discount (1: the last-token reward reaches every token)")
    lam: float = setting(1.0, ge=0, le=1, help="ppo: GAE lambda (1: Monte-Carlo returns; below 1 trusts the critic)")
    value_clip: float = setting(0.5, gt=0, help="ppo: clip range of the critic's update, in the returns' units")
    kl_estimator: str = setting(
        "k1", choices=("k1", "k2", "k3", "abs"), help="ppo: the per-token KL in the reward (k1: log p - log p_ref)"
    )
    whiten_advantages: bool = setting(True, help="ppo: advantages whitened over the rollout batch (OpenRLHF, verl)")
    critic_warmup_steps: int = setting(0, ge=0, help="ppo: first optimizer steps that train the critic only")
    ppo_mini_batches: int = setting(
        1,
        ge=1,
        help="ppo: optimizer steps per rollout batch (batch_size x gradient_accumulation_steps questions each)",
    )


def engine_conflict(config: TrainConfig, engine: str) -> str | None:
    """What the rollout engine ``engine`` cannot honour among ``config``'s settings, or None. One rule for both the
    engine a recipe names (checked here) and the one ``auto`` resolves to on this machine (:mod:`medrlvr.train.grpo`)."""
    if engine == "auto":
        return None
    if config.stop and engine != "medrlvr":
        return f"stop ends medrlvr's rollouts; rollout_engine {engine} does not apply it: unset stop or use medrlvr"
    if config.dynamic_sampling and engine != "medrlvr":
        return (
            f"dynamic_sampling needs rollout_engine medrlvr (TRL's own generation cannot refill a batch), got {engine}"
        )
    if config.shuffle_options and engine != "medrlvr":
        return f"shuffle_options permutes medrlvr's rollouts; rollout_engine {engine} does not: use medrlvr"
    if engine == "medrlvr" and config.qlora:
        return "rollout_engine medrlvr cannot sample from a 4-bit (QLoRA) policy: use trl or vllm"
    if config.rollout_importance_sampling and engine == "trl":
        return ("rollout_importance_sampling needs rollouts that report their log-probs (rollout_engine medrlvr or "
                "vllm): TRL's own generate samples with the trained weights themselves")  # fmt: skip
    return None


def check(config: TrainConfig) -> None:
    """The cross-field rules of the train settings, in one place (a field's type, range and choices are declared on
    the field). A backend's own rules are its ``check`` (:func:`medrlvr.train.check`)."""
    conflict = engine_conflict(config, config.rollout_engine)
    if conflict:
        raise UserError(conflict)
    if config.method in RL_METHODS and config.num_generations < 2:
        raise UserError(
            "num_generations must be at least 2: GRPO compares rollouts within a group (and TRL asks it of PPO)"
        )
    if config.method == "ppo" and (
        config.dynamic_sampling or config.skip_zero_variance or config.control or config.loss_type not in PPO_LOSS_AGG
    ):
        raise UserError(
            "method ppo: dynamic_sampling, skip_zero_variance and control are GRPO's, and its loss_type is one of "
            f"{', '.join(PPO_LOSS_AGG)} (how the per-token loss is averaged); got {config.loss_type}"
        )
    if config.shuffle_options and (config.method not in RL_METHODS or config.backend != "trl"):
        raise UserError("setting 'shuffle_options' permutes the options of RL rollouts: it needs method grpo or ppo "
                        f"and backend trl, got method {config.method}, backend {config.backend}")  # fmt: skip
    unknown = [name for name in config.rewards if name not in REWARDS]
    if unknown:
        raise UserError(f"unknown reward {unknown[0]!r} in 'rewards'; known: {', '.join(REWARDS)}")
    if config.control and (config.method != "grpo" or config.backend != "trl"):
        raise UserError("setting 'control': random_reward needs method grpo and backend trl")
    check_skip_zero_variance(config)
    if config.control and config.dynamic_sampling:
        raise UserError("setting 'control': random_reward with dynamic_sampling would refill on coin flips; "
                        "turn one off")  # fmt: skip
    if config.max_steps == 0 or config.max_steps < -1:
        raise UserError(
            f"setting 'max_steps' must be -1 (train num_train_epochs) or at least 1, got {config.max_steps}"
        )
    named = {**{f: f for f in TrainConfig.__dataclass_fields__ if f not in ("extra", "verl")}, **EXTRA_WITH_NAMES}
    repeated = next((k for k in config.extra if k in named), None)
    if repeated:  # extra would silently win over the named setting
        raise UserError(f"extra.{repeated} is the train setting {named[repeated]}: set that instead")


SKIP_KEYS = ("after", "probability")


def check_skip_zero_variance(config: TrainConfig) -> None:
    """``skip_zero_variance``: both keys, ``after`` a whole number of at least 1, ``probability`` in (0, 1], with the
    rollouts that can skip (medrlvr's) and a reward whose ties mean something (not the random-reward control).
    Sets ``after`` to an int."""
    skip = config.skip_zero_variance
    if skip is None:
        return
    where = "setting 'skip_zero_variance'"
    if set(skip) != set(SKIP_KEYS):
        unknown = sorted(set(skip) - set(SKIP_KEYS))
        said = (
            f"unknown key {unknown[0]!r}" if unknown else f"missing {', '.join(k for k in SKIP_KEYS if k not in skip)}"
        )
        raise UserError(f"{where} takes {{after: N, probability: p}}: {said}")
    after, probability = skip["after"], skip["probability"]
    if float(after) != int(after) or after < 1:
        raise UserError(
            f"{where}: 'after' (groups that all tied before a skip) must be a whole number >= 1, got {after}"
        )
    if not 0 < probability <= 1:
        raise UserError(f"{where}: 'probability' must be above 0 and at most 1, got {probability}")
    config.skip_zero_variance = {"after": int(after), "probability": float(probability)}
    if config.rollout_engine not in ("auto", "medrlvr"):
        raise UserError(f"{where} needs rollout_engine medrlvr (it draws the questions it samples), got "
                        f"{config.rollout_engine}")  # fmt: skip
    if config.control:
        raise UserError(f"{where} with control random_reward would skip on coin flips; turn one off")
    if config.shuffle_options:  # a question's tie history is kept by its prompt, which a permutation changes
        raise UserError(f"{where} and shuffle_options cannot be combined yet (the skip history follows a question's "
                        "prompt text, which shuffled options change every step); turn one off")  # fmt: skip


class TrainError(UserError):
    """Training cannot start or did not train: the message says why, with the sizes or settings involved."""


def config_values(path: str | Path | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The train settings of a YAML file (its ``train:`` section, or the whole mapping) with ``key=value``
    overrides: how ``medrlvr train --config`` and a study's ``train.launch`` children read their settings."""
    import yaml

    values: Any = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"--config {path}: no such file")
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        values = values.get("train", values) if isinstance(values, dict) else values
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of train settings")
    return apply_overrides(values, list(overrides), str(path or "overrides"))


def load_config(path: str | Path | None = None, overrides: Sequence[str] | None = None) -> TrainConfig:
    """A TrainConfig from YAML (values only) with ``key=value`` overrides (values parsed as YAML)."""
    return build(TrainConfig, config_values(path, overrides or ()), str(path or "overrides"), error=UserError)
