"""GRPO (DeepSeekMath, arXiv 2402.03300) as medrlvr trains it, over TRL's GRPOTrainer, in the order it runs:

1. config   -- :func:`grpo_settings`: every GRPO setting the paper depends on, passed to TRL's GRPOConfig;
2. trainer  -- :func:`grpo_trainer`: the rewards (weighted, plus zero-weight ones that only log) and the rollout
               engine wired into the trainer;
3. rollouts -- :mod:`medrlvr.train.grpo.rollout`: sampling through medrlvr's engine on a live copy of the policy, and
               DAPO's dynamic sampling (TRL's ``rollout_func`` hook);
4. loss     -- :mod:`medrlvr.train.grpo.loss`: the completion log-probabilities computed on the completion positions
               only (TRL's fused head covers the whole sequence on CPUs).

:mod:`medrlvr.train` builds the model, the dataset and the arguments every trainer shares, and calls
:func:`grpo_trainer` for ``method: grpo``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ...rewards import REWARDS, completion_text
from ..config import engine_conflict

if TYPE_CHECKING:
    from ..config import TrainConfig

REFLECTION = re.compile(
    r"(?i)\b(wait|let me (?:re-?check|double[- ]check|verify|reconsider)|on second thought|"
    r"hmm|i made a mistake|re-?evaluate)\b"
)

# --- 1. config ------------------------------------------------------------------------------------------------


def resolve_rollout_engine(config: TrainConfig, on_gpu: bool) -> str:
    """``auto`` -> medrlvr's engine with dynamic sampling, skip_zero_variance or shuffled options (only it refills a
    batch, skips a question before sampling or permutes a group's options); TRL's generate or vLLM for a
    4-bit (QLoRA) policy (the rollout copy cannot unpack it); else vllm on a GPU with vLLM installed, else
    medrlvr's engine."""
    if config.rollout_engine != "auto":
        return config.rollout_engine
    if config.dynamic_sampling or config.skip_zero_variance or config.shuffle_options:
        return "medrlvr"
    if on_gpu:
        import importlib.util

        if importlib.util.find_spec("vllm") is not None:
            return "vllm"
    return "trl" if config.qlora else "medrlvr"


# TRL settings medrlvr's rollouts do not apply: passing them through ``extra`` is an error, not silence
NOT_FOR_MEDRLVR_ROLLOUTS = ("generation_kwargs", "min_p", "repetition_penalty", "use_transformers_paged",
                            "cache_implementation")  # fmt: skip


def check_engine_settings(config: TrainConfig, engine: str) -> None:
    """One-line errors for settings the rollout engine ``auto`` resolved to on this machine cannot honour (the
    rules are :func:`medrlvr.train.config.engine_conflict`, which also checks an engine the recipe names)."""
    conflict = engine_conflict(config, engine)
    if conflict:
        raise UserError(conflict)
    ignored = next((k for k in NOT_FOR_MEDRLVR_ROLLOUTS if k in config.extra), None) if engine == "medrlvr" else None
    if ignored:
        raise UserError(f"extra.{ignored} is not applied by rollout_engine medrlvr: unset it or use trl/vllm")


def grpo_settings(config: TrainConfig, reward_weights: Sequence[float], engine: str) -> dict[str, Any]:
    """GRPOConfig's arguments that medrlvr sets, every GRPO setting the paper depends on among them (see the
    TrainConfig comments): none is left to TRL's default of the day."""
    return dict(
        per_device_train_batch_size=config.batch_size * config.num_generations,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        min_p=None,
        repetition_penalty=1.0,
        beta=config.beta,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high if config.epsilon_high is not None else config.epsilon,
        num_iterations=config.num_iterations,
        mask_truncated_completions=config.mask_truncated_completions,
        multi_objective_aggregation="sum_then_normalize",
        importance_sampling_level=config.importance_sampling_level,
        top_entropy_quantile=config.top_entropy_quantile,
        # TRL computes the sampler-vs-trainer gap (and the ratio) where the sampler reports log-probs; whether the
        # loss is weighted by it is MedrlvrGRPOTrainer.correct_sampling (see medrlvr.train.grpo.loss)
        vllm_importance_sampling_correction=engine in ("medrlvr", "vllm"),
        vllm_importance_sampling_mode=config.rollout_importance_sampling or "token_truncate",
        vllm_importance_sampling_clip_max=config.rollout_importance_sampling_max,
        vllm_importance_sampling_clip_min=config.rollout_importance_sampling_min,
        # one rollout batch feeds ppo_mini_batches optimizer steps (PPO's mini-batches; 1: GRPO's on-policy step)
        steps_per_generation=config.gradient_accumulation_steps * config.ppo_mini_batches,
        reward_weights=list(reward_weights),
        use_vllm=engine == "vllm",
        vllm_mode=config.vllm_mode,
        shuffle_dataset=True,
    )


# --- 2. the trainer: rewards and rollouts wired in -------------------------------------------------------------


def self_reflection_reward(completions, **kwargs) -> list[float]:
    """1.0 for a completion that re-checks itself ("wait", "let me re-check", ...). Logged with weight 0.

    >>> self_reflection_reward(["<think>B. Wait, let me re-check: A.</think>", "<think>B.</think>"])
    [1.0, 0.0]
    """
    return [1.0 if REFLECTION.search(completion_text(c)) else 0.0 for c in completions]


class CompletionSampler:
    """A zero-weight reward that writes completions of each generation step to a JSON Lines file, up to
    ``per_step`` per call, one row each: ``step`` (the optimizer step they train: the trainer's global step + 1,
    as ``metrics.jsonl`` numbers the step whose rewards they earned), ``call`` (this process's generation call),
    the question's ``id``, ``gold`` answer and ``options`` (letter -> text) as the rollout saw them, the
    ``permutation`` of its options with ``shuffle_options`` (the original letters in their new places), its
    ``prompt`` the first time the id (in that permutation) is written, and the ``completion``. Rewards are not known
    inside a reward function: they are not written."""

    __name__ = "completion_sampler"

    def __init__(self, path: Path, per_step: int):
        self.path, self.per_step, self.calls = path, per_step, 0
        self.seen: set[Any] = set()

    def __call__(
        self,
        completions,
        prompts=None,
        answer=None,
        id=None,
        options=None,
        trainer_state=None,
        permutation=None,
        **kwargs,
    ) -> list[float]:
        self.calls += 1
        step = trainer_state.global_step + 1 if trainer_state is not None else self.calls
        with open(self.path, "a", encoding="utf-8") as f:
            for i, c in enumerate(completions[: self.per_step]):
                row: dict[str, Any] = {"step": step, "call": self.calls, "id": id[i] if id else None}
                row["gold"] = answer[i] if answer else None
                if options:
                    row["options"] = json.loads(options[i]) if isinstance(options[i], str) else options[i]
                if permutation is not None:
                    row["permutation"] = permutation[i]
                seen = (row["id"], row.get("permutation"))
                if prompts and seen not in self.seen:
                    row["prompt"] = prompts[i]
                    self.seen.add(seen)
                row["completion"] = completion_text(c)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return [0.0] * len(completions)


def with_prefill_text(func: Callable[..., list[float]], prefill: str | None) -> Callable[..., list[float]]:
    """A reward that reads ``prefill + completion``: the prefill is part of the completion the policy is judged on
    ("<think>" opens the format that format_reward and xml_count_reward check)."""
    if not prefill:
        return func

    def wrapped(completions, **kwargs):
        return func([prefill + completion_text(c) for c in completions], **kwargs)

    wrapped.__name__ = getattr(func, "__name__", "reward")  # TRL logs rewards/<name>/mean
    wrapped.__doc__ = func.__doc__
    return wrapped


def reward_functions(config: TrainConfig, out: Path) -> tuple[list[Callable], list[Callable], list[float]]:
    """(every reward TRL calls, the scored ones, their weights): the recipe's rewards, then two with weight 0
    that only log (self-reflection, the completion sample)."""
    names = list(config.rewards)
    scored = [with_prefill_text(REWARDS[n], config.prefill) for n in names]
    weights = [float(config.rewards[n]) for n in names]
    if config.overlong_buffer:  # DAPO's soft overlong punishment (TRL's; it reads completion_ids)
        from trl.rewards import get_soft_overlong_punishment

        scored.append(get_soft_overlong_punishment(config.max_completion_length, config.overlong_buffer))
        weights.append(1.0)
    logged = [self_reflection_reward, CompletionSampler(out / "completions.jsonl", config.sample_completions)]
    logged = [with_prefill_text(f, config.prefill) for f in logged]
    if config.control == "random_reward":  # coin flips are trained on; the real rewards are only logged
        from .control import RandomRewardControl

        control = RandomRewardControl(scored, weights, config.seed)
        return [control, *scored, *logged], [control], [1.0] + [0.0] * len(scored)
    return scored + logged, scored, weights


def grpo_trainer(config: TrainConfig, model, tokenizer, dataset, peft_config, common: dict[str, Any], callbacks,
                 on_gpu: bool, trainer_class: type | None = None):  # fmt: skip
    """medrlvr's GRPOTrainer (``trainer_class``: a subclass of it) with the rollouts ``config.rollout_engine``
    names; ``common`` holds the arguments every medrlvr trainer shares (output_dir, learning rate, ...)."""
    from trl import GRPOConfig

    from .loss import MedrlvrGRPOTrainer

    funcs, scored, weights = reward_functions(config, Path(common["output_dir"]))
    engine = resolve_rollout_engine(config, on_gpu)
    check_engine_settings(config, engine)
    # `extra`: anything TRL takes, over medrlvr's choices
    args = GRPOConfig(**{**common, **grpo_settings(config, weights + [0.0, 0.0], engine), **config.extra})
    rollout_func = None  # TRL's own generate, or vLLM
    if engine == "medrlvr":
        rollout_func = _medrlvr_rollouts(config, args, dataset, tokenizer, scored, weights)
    trainer = (trainer_class or MedrlvrGRPOTrainer)(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        rollout_func=rollout_func,
    )
    trainer.sampler_logprobs = engine in ("medrlvr", "vllm")  # sampling/* metrics every step
    trainer.correct_sampling = trainer.sampler_logprobs and config.rollout_importance_sampling is not None
    return trainer


def _medrlvr_rollouts(config: TrainConfig, args, dataset, tokenizer, scored, weights):
    """TRL's ``rollout_func`` sampling through medrlvr's engine (:mod:`medrlvr.train.grpo.rollout`)."""
    import os

    from ...engines import Sampling
    from ..dataset import OptionShuffle
    from .rollout import Rollouts, Scorer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is TRL's documented hook
    return Rollouts(
        sampling=Sampling(
            max_new_tokens=args.max_completion_length,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k or 0,
            stop=tuple(config.stop),
            include_stop=True,
        ),
        num_generations=args.num_generations,
        rows={row["prompt"]: dict(row) for row in dataset},
        dtype=config.rollout_dtype,
        batch_size=config.rollout_batch_size,
        dynamic=config.dynamic_sampling,
        max_resample=config.max_resample,
        scorer=Scorer(scored, weights),
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        seed=config.seed,
        skip_after=int((config.skip_zero_variance or {}).get("after", 0)),
        skip_probability=float((config.skip_zero_variance or {}).get("probability", 0.0)),
        shuffle=OptionShuffle(list(dataset), tokenizer, config) if config.shuffle_options else None,
    )
