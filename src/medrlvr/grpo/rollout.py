"""GRPO rollouts through medrlvr's engine on the live policy, and DAPO's dynamic sampling, for TRL's GRPOTrainer.

Why our own. TRL samples GRPO rollouts with transformers' ``generate`` (or vLLM, on GPUs that have it). On a CPU
that is the whole cost of a step (25 s per demo step here), and on a GPU without vLLM it decodes at a few hundred
tokens/s. medrlvr's transformers engine (:mod:`medrlvr.engines.hf`: length-sorted prefill, shared prefill of a
group's prompt, a preallocated KV cache, a decode attention that reads it in place, finished rows dropped) is
several times faster, so it does the sampling here, through TRL's ``rollout_func`` hook: TRL still computes the
rewards, advantages and loss. TRL has no dynamic sampling (its issue #3708 is open), and ``rollout_func`` is the one
place where a batch can be rebuilt before TRL scores it, so that lives here too.

Live weights. Sampling runs on a copy of the policy in the engine's dtype (bf16 where the hardware has it) that is
refreshed from the trained weights before every generation: for LoRA the copy's layers are set to
``base + delta`` with PEFT's own ``get_delta_weight``, for full fine-tuning every trainable tensor is copied. So
each step samples from the weights being trained, never from a stale copy; ``RolloutModel.sync`` is the only way
the copy changes.

Dynamic sampling (DAPO, arXiv 2503.14476). A group whose rollouts all earn the same reward has zero advantage and
gives no gradient. With ``dynamic_sampling`` on, such groups are dropped and replaced by groups of further questions
(drawn from the training set with a seed fixed by the step, so a resumed run draws what an uninterrupted one
would) until the batch is full or ``max_resample`` extra generation rounds are spent; if the budget runs out the
batch is filled with tied groups and the step says so. The rows TRL then scores carry the replacing questions'
columns (answer, options, id, ...), passed back through ``rollout_func``'s extra fields.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..engines import Sampling

# --- the policy copy that samples ---------------------------------------------------------------------------


def _lora_layers(model) -> dict[str, Any]:
    """name -> PEFT LoRA layer (any layer with a base layer and a delta weight), by the name of its base module."""
    layers = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer") and getattr(module, "lora_A", None):
            layers[name] = module
    return layers


def _plain_name(name: str) -> str:
    """A PEFT module/parameter name as it is in the unwrapped model (``base_model.model.`` and the
    ``modules_to_save`` wrapper removed)."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".modules_to_save.default", "").replace(".original_module", "")


class RolloutModel:
    """A copy of the policy for sampling, synced from the trained weights before each use.

    The copy is a fresh model of the policy's class built from its config, not a ``deepcopy``: trainers patch
    instance attributes of the policy (TRL replaces ``forward`` with a closure over the policy's own bound
    method), and a deepcopy would carry that closure along and quietly run the policy instead of the copy."""

    def __init__(self, policy, dtype, device: str, attn_implementation: str | None = None):
        import torch

        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        kwargs = {"dtype": dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            model = type(base)._from_config(copy.deepcopy(base.config), **kwargs)
        except (ValueError, ImportError, KeyError):  # a model that cannot take our attention keeps its own
            kwargs.pop("attn_implementation", None)
            model = type(base)._from_config(copy.deepcopy(base.config), **kwargs)
        self.model = model.to(device).eval().requires_grad_(False)
        self.dtype, self.device = dtype, device
        self.params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        with torch.no_grad():
            for name, buffer in policy.named_buffers():  # rotary frequencies and the like, in their own dtype
                target = _plain_name(name).replace(".base_layer", "")
                if target in buffers:
                    module_name, _, attr = target.rpartition(".")
                    module = self.model.get_submodule(module_name) if module_name else self.model
                    setattr(module, attr, buffer.detach().to(device).clone())
        self.syncs = 0
        self.sync(policy, everything=True)

    def sync(self, policy, everything: bool = False) -> None:
        """Set the copy to the policy's current weights: LoRA layers to ``base + delta`` (PEFT's own
        ``get_delta_weight``), every other trainable tensor copied; ``everything`` copies the frozen ones too."""
        import torch

        with torch.no_grad():
            lora = _lora_layers(policy)
            done = set()
            for name, layer in lora.items():
                adapters = [a for a in layer.active_adapters if a in layer.lora_A]
                weight = layer.base_layer.weight.detach().to(torch.float32)
                for adapter in adapters:
                    weight = weight + layer.get_delta_weight(adapter).to(torch.float32)
                target = f"{_plain_name(name)}.weight"
                self.params[target].copy_(weight)
                done.add(target)
            for name, param in policy.named_parameters():
                if "lora_" in name or not (everything or param.requires_grad):
                    continue
                target = _plain_name(name).replace(".base_layer", "")
                if target in done:
                    continue
                if target not in self.params:
                    raise KeyError(f"the rollout copy has no parameter for the policy's {name!r}")
                self.params[target].copy_(param.detach())
        self.syncs += 1


# --- dynamic sampling ---------------------------------------------------------------------------------------


@dataclass
class StepLog:
    groups_generated: int = 0
    groups_kept: int = 0
    rounds: int = 0
    tied_before: float = 0.0  # share of the first round's groups with one reward for all rollouts
    tied_after: float = 0.0  # share of the groups handed to TRL that are tied
    budget_exhausted: bool = False

    def metrics(self) -> dict[str, float]:
        return {
            "dynamic_sampling/groups_generated": float(self.groups_generated),
            "dynamic_sampling/groups_kept": float(self.groups_kept),
            "dynamic_sampling/rounds": float(self.rounds),
            "dynamic_sampling/frac_reward_zero_std_before": self.tied_before,
            "dynamic_sampling/frac_reward_zero_std_after": self.tied_after,
            "dynamic_sampling/budget_exhausted": float(self.budget_exhausted),
        }


def group_is_tied(rewards: Sequence[float]) -> bool:
    """True when every rollout of a group earned the same total reward (no advantage, no gradient)."""
    finite = [r for r in rewards if not math.isnan(r)]
    return not finite or max(finite) - min(finite) <= 1e-9


@dataclass
class Scorer:
    """The weighted sum of the training rewards, as TRL adds them (``sum_then_normalize``), for telling tied groups
    from the others before TRL scores the batch."""

    funcs: Sequence[Callable[..., list]]
    weights: Sequence[float]

    def __call__(self, completions: list[str], columns: dict[str, list]) -> list[float]:
        totals = [0.0] * len(completions)
        for func, weight in zip(self.funcs, self.weights):
            if not weight:
                continue
            values = func(completions=completions, **columns)
            for i, value in enumerate(values):
                if value is not None and not math.isnan(value):
                    totals[i] += weight * value
        return totals


# --- the rollout function -----------------------------------------------------------------------------------


@dataclass
class Rollouts:
    """TRL's ``rollout_func``: ``(prompts, trainer) -> {prompt_ids, completion_ids, logprobs, **columns}``.

    ``prompts`` arrive as TRL's sampler gives them: each question's prompt ``num_generations`` times in a row.
    Prompts are text (the chat template already applied, the prefill appended: :func:`medrlvr.train.prompt_text`),
    so TRL's tokenization and ours are the same call. ``rows`` maps each prompt text to its dataset row (answer,
    options, id, ...), which dynamic sampling needs to score rollouts and to hand TRL the replacing questions."""

    sampling: Sampling
    num_generations: int
    rows: dict[str, dict[str, Any]]
    dtype: str = "auto"
    batch_size: int = 64
    dynamic: bool = False
    max_resample: int = 0
    scorer: Scorer | None = None
    decode: Callable[[list[int]], str] | None = None  # token ids -> the completion text TRL passes to rewards
    seed: int = 0
    last: StepLog = field(default_factory=StepLog)
    model: RolloutModel | None = None
    engine: Any = None

    # -- the copy and the engine --

    def _engine(self, trainer):
        from ..engines.hf import TransformersEngine
        from ..modeling import pick_dtype, register_decode_attention

        policy = trainer.accelerator.unwrap_model(trainer.model)
        if self.model is None:
            device = str(trainer.accelerator.device)
            self.model = RolloutModel(policy, pick_dtype(self.dtype, device), device, register_decode_attention())
            tokenizer = copy.deepcopy(trainer.processing_class)
            self.engine = TransformersEngine(
                None,
                model_obj=self.model.model,
                tokenizer=tokenizer,
                dtype=self.dtype,
                device=device,
                batch_size=self.batch_size,
            )
        self.model.sync(policy)  # before every generation: sample from the weights being trained
        return self.engine

    def _generate(self, engine, prompts: list[str], seed: int) -> tuple[list[list[int]], list[list[int]], list]:
        """Tokenize as TRL does (``processing_class(text=...)``), sample ``num_generations`` per distinct prompt,
        and return per row (in TRL's repeated order) prompt ids, completion ids and log-probs."""
        distinct = list(dict.fromkeys(prompts))
        ids = engine.tokenizer(text=distinct)["input_ids"]
        index = {p: k for k, p in enumerate(distinct)}
        per_prompt = max(Counter(prompts).values())
        sampling = Sampling(**{**self.sampling.__dict__, "seed": seed})
        out = engine.generate_ids(ids, n=per_prompt, sampling=sampling, logprobs=True)
        prompt_ids, completion_ids, logprobs = [], [], []
        used = {p: 0 for p in distinct}
        for p in prompts:
            k = index[p]
            rollout = out[k][used[p]]
            used[p] += 1
            prompt_ids.append(list(ids[k]))
            completion_ids.append(rollout.token_ids)
            logprobs.append(rollout.logprobs)
        return prompt_ids, completion_ids, logprobs

    def __call__(self, prompts: list[str], trainer) -> dict[str, Any]:
        engine = self._engine(trainer)
        step = int(getattr(trainer.state, "global_step", 0))
        # the seed depends on the step, not on how many calls this process made: a resumed run samples as an
        # uninterrupted one would
        seed = self.seed * 1_000_003 + step * 7_919
        prompt_ids, completion_ids, logprobs = self._generate(engine, prompts, seed)
        if not self.dynamic:
            self.last = StepLog()
            return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}
        result = self._dynamic(engine, prompts, prompt_ids, completion_ids, logprobs, step, seed)
        for name, value in self.last.metrics().items():
            _log(trainer, name, value)
        return result

    # -- dynamic sampling --

    def _columns(self, prompts: list[str]) -> dict[str, list]:
        """The dataset columns (answer, options, id, ...) of each prompt's row, as TRL hands them to rewards."""
        keys = [k for k in next(iter(self.rows.values())) if k != "prompt"]
        return {k: [self.rows[p].get(k) for p in prompts] for k in keys}

    def _score_groups(self, prompts, completion_ids) -> list[list[float]]:
        texts = [self.decode(ids) for ids in completion_ids]
        totals = self.scorer(texts, self._columns(prompts))
        G = self.num_generations
        return [totals[i : i + G] for i in range(0, len(totals), G)]

    def _dynamic(self, engine, prompts, prompt_ids, completion_ids, logprobs, step, seed) -> dict[str, Any]:
        G = self.num_generations
        n_groups = len(prompts) // G
        log = StepLog(groups_generated=n_groups)
        kept: list[tuple] = []  # (prompt text, prompt ids, completion ids, logprobs) per kept group
        tied: list[tuple] = []

        def sort(batch_prompts, p_ids, c_ids, lps, first: bool) -> None:
            scores = self._score_groups(batch_prompts, c_ids)
            n_tied = 0
            for g, rewards in enumerate(scores):
                rows = slice(g * G, (g + 1) * G)
                group = (batch_prompts[rows], p_ids[rows], c_ids[rows], lps[rows])
                if group_is_tied(rewards):
                    n_tied += 1
                    tied.append(group)
                elif len(kept) < n_groups:
                    kept.append(group)
            if first:
                log.tied_before = n_tied / max(1, len(scores))

        sort(prompts, prompt_ids, completion_ids, logprobs, first=True)
        rng = random.Random(f"{self.seed}:{step}")
        in_batch = set(prompts)
        pool = [p for p in self.rows if p not in in_batch]
        while len(kept) < n_groups and log.rounds < self.max_resample and pool:
            log.rounds += 1
            missing = n_groups - len(kept)
            fresh = rng.sample(pool, min(len(pool), missing))
            taken = set(fresh)
            pool = [p for p in pool if p not in taken]
            batch_prompts = [p for p in fresh for _ in range(G)]
            p_ids, c_ids, lps = self._generate(engine, batch_prompts, seed + 104_729 * log.rounds)
            log.groups_generated += len(fresh)
            sort(batch_prompts, p_ids, c_ids, lps, first=False)
        log.groups_kept = len(kept)
        filler = tied[: n_groups - len(kept)]
        if filler:  # budget spent: fill with tied groups (no gradient), and say so
            log.budget_exhausted = True
            kept += filler
        log.tied_after = len(filler) / max(1, len(kept))
        self.last = log
        out_prompts = [p for group in kept for p in group[0]]
        # with the replacing questions' own columns for TRL's rewards (they override the original rows' columns)
        return {
            "prompt_ids": [ids for group in kept for ids in group[1]],
            "completion_ids": [ids for group in kept for ids in group[2]],
            "logprobs": [lp for group in kept for lp in group[3]],
            **self._columns(out_prompts),
        }


def _log(trainer, name: str, value: float) -> None:
    """Log a scalar through TRL's metric buffer (averaged per logging step, written to metrics.jsonl)."""
    if hasattr(trainer, "_log_metric"):
        trainer._log_metric(name, value)
    else:  # older TRL
        trainer._metrics["train"][name].append(value)
