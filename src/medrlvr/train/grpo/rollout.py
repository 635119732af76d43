"""GRPO rollouts through medrlvr's engine on the live policy, and DAPO's dynamic sampling, for TRL's GRPOTrainer.

Why our own. TRL samples GRPO rollouts with transformers' ``generate`` (or vLLM, on GPUs that have it). On a CPU
that is the whole cost of a step (25 s per demo step here), and on a GPU without vLLM it decodes at a few hundred
tokens/s. medrlvr's transformers engine (:mod:`medrlvr.engines.hf`: length-sorted prefill, shared prefill of a
group's prompt, a preallocated KV cache, a decode attention that reads it in place, finished rows dropped) is
several times faster, so it does the sampling here, through TRL's ``rollout_func`` hook: TRL still computes the
rewards, advantages and loss. TRL has no dynamic sampling (its issue #3708 is open), and ``rollout_func`` is the one
place where a batch can be rebuilt before TRL scores it, so that lives here too.

Live weights. Sampling runs on a copy of the policy in the engine's dtype (bf16 where the hardware has it) that is
refreshed from the trained weights before every generation: for LoRA the copy runs the adapter unmerged, as PEFT
does in the policy (a bf16 base plus an fp32 low-rank path), for full fine-tuning every trainable tensor is copied.
So each step samples from the weights being trained, never from a stale copy; ``RolloutModel.sync`` is the only
way the copy changes.

Dynamic sampling (DAPO, arXiv 2503.14476). A group whose rollouts all earn the same reward has zero advantage and
gives no gradient. With ``dynamic_sampling`` on, such groups are dropped and replaced by groups of further questions
(drawn from the training set with a seed fixed by the step, so a resumed run draws what an uninterrupted one
would) until the batch is full or ``max_resample`` extra generation rounds are spent; if the budget runs out the
batch is filled with tied groups and the step says so. The rows TRL then scores carry the replacing questions'
columns (answer, options, id, ...), passed back through ``rollout_func``'s extra fields.

Skipping before sampling (GRESO, arXiv 2506.02177). A question whose groups tied once tends to tie again (GRESO
measures strong temporal consistency of zero-variance prompts), so with ``skip_zero_variance: {after: N,
probability: p}`` a question whose last N groups all tied is skipped with probability p before any rollout is
generated, and another question of the training set takes its place (drawn with a seed fixed by the step, itself
checked the same way). It composes with dynamic sampling: the questions drawn to refill a batch are checked too, so
fewer tied groups are generated only to be dropped. Each group's tie is recorded per question (the last N) and
saved with every checkpoint (``rollout_state-rank{R}.json``, :meth:`Rollouts.state_dict`), so a resumed run
skips what an uninterrupted one would. Per step: ``skip_zero_variance/questions_skipped``, ``/rollouts_saved`` (the
skipped questions' rollouts: skipped x num_generations), ``/rollouts_generated`` (every rollout sampled this step,
dynamic sampling's rounds included) and ``/questions_tied_out`` (questions whose last N groups all tied).
Shuffled options (``shuffle_options``). Each question of a step is asked in a seeded permutation of its options
(``shuffle``: :class:`medrlvr.train.dataset.OptionShuffle`) before it is sampled: its group's rollouts are sampled,
trained and rewarded on the permuted prompt, and the rows TRL scores carry that prompt, the remapped ``answer`` and
``options`` and the ``permutation`` (which the completion log writes). Questions dynamic sampling draws are permuted
the same way.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...engines import Sampling

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


def _low_rank_ready(layer) -> bool:
    """A PEFT LoRA layer the copy can run unmerged: a plain Linear (no DoRA, no transposed Conv1D weight)."""
    import torch

    base = layer.base_layer
    dora = any(getattr(layer, "use_dora", {}).get(a, False) for a in layer.active_adapters)
    return type(base) is torch.nn.Linear and not dora and not getattr(layer, "fan_in_fan_out", False)


def _low_rank_linear_class():
    import torch

    class LowRankLinear(torch.nn.Module):
        """``base_layer(x) + x A^T B^T`` with ``B`` already scaled: LoRA as PEFT runs it in the policy (the
        adapter in its own dtype, fp32, added to the base layer's output and rounded once), not merged into a
        bf16 weight, where an update smaller than half a bf16 step rounds back to the base. (The adapter in bf16
        too was measured: cosine 0.98 instead of 1.00 to the policy's change after one step, for no speed gained
        at decode batch sizes, where these products are tiny.)"""

        def __init__(self, base_layer):
            super().__init__()
            self.base_layer = base_layer
            self.lora_a = self.lora_b = None  # set by RolloutModel.sync; plain tensors, not parameters

        def forward(self, x):
            out = self.base_layer(x)
            if self.lora_a is None:
                return out
            low_rank = (x.to(self.lora_a.dtype) @ self.lora_a.T) @ self.lora_b.T
            return (out + low_rank).to(out.dtype)

    return LowRankLinear


def check_rollout_support(model) -> None:
    """One clear line for a policy the rollout copy cannot reproduce: 4-bit (QLoRA) bases pack their weights."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        raise ValueError(
            "rollout_engine medrlvr cannot sample from a quantized (QLoRA) policy: use rollout_engine trl or vllm"
        )


def rollout_attention(config, requested: str | None) -> str | None:
    """The copy's attention: medrlvr's decode kernel, except for models with an attention logit soft-cap (Gemma-2),
    which neither that kernel nor SDPA applies: they run transformers' eager attention, which does."""
    text = getattr(config, "text_config", None) or config
    if getattr(text, "attn_logit_softcapping", None):
        return "eager"
    return requested


class RolloutModel:
    """A copy of the policy for sampling, synced from the trained weights before each use.

    The copy is a fresh model of the policy's class built from its config, not a ``deepcopy``: trainers patch
    instance attributes of the policy (TRL replaces ``forward`` with a closure over the policy's own bound
    method), and a deepcopy would carry that closure along and quietly run the policy instead of the copy. It takes
    the policy's ``generation_config`` (its end tokens: an instruct model may end a turn on several).

    Frozen weights (LoRA's base) in the sampling dtype are not copied: the copy holds the policy's own tensors
    (they never change), so a bf16 LoRA policy and its copy hold the base once.

    LoRA layers stay unmerged in the copy (:func:`_low_rank_linear_class`), as PEFT runs them in the policy: the
    base weight in the sampling dtype, the adapter in fp32. Merging into a bf16 weight rounded small updates away
    (measured: cosine 0.61 between the copy's and the policy's change in log-probs after one step at lr 2e-5;
    ``tests/test_rollout.py``). Layers PEFT does not run as a plain Linear (DoRA, Conv1D, embeddings) are merged."""

    def __init__(self, policy, dtype, device: str, attn_implementation: str | None = None):
        import torch

        check_rollout_support(policy)
        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        kwargs = {"dtype": dtype}
        attn_implementation = rollout_attention(base.config, attn_implementation)
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            model = type(base)._from_config(copy.deepcopy(base.config), **kwargs)
        except (ValueError, ImportError, KeyError):  # a model that cannot take our attention keeps its own
            kwargs.pop("attn_implementation", None)
            model = type(base)._from_config(copy.deepcopy(base.config), **kwargs)
        if getattr(base, "generation_config", None) is not None:
            model.generation_config = copy.deepcopy(base.generation_config)
        self.low_rank: dict[str, Any] = {}  # copy module name -> LowRankLinear
        wrapper = _low_rank_linear_class()
        for name, layer in _lora_layers(policy).items():
            if _low_rank_ready(layer):
                plain = _plain_name(name)
                self.low_rank[plain] = wrapper(model.get_submodule(plain))
                model.set_submodule(plain, self.low_rank[plain])
        from ...modeling import unfreeze_for_inference

        self.model = unfreeze_for_inference(model.to(device).eval())  # it only samples, under inference_mode
        self.dtype, self.device = dtype, device
        self.params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        with torch.no_grad():
            for name, buffer in policy.named_buffers():  # rotary frequencies and the like, in their own dtype
                target = self._target(name, buffers)
                if target in buffers:
                    module_name, _, attr = target.rpartition(".")
                    module = self.model.get_submodule(module_name) if module_name else self.model
                    setattr(module, attr, buffer.detach().to(device).clone())
        self.syncs = 0
        self.sync(policy, everything=True)

    @staticmethod
    def _target(name: str, tensors: dict) -> str:
        """The copy's name for a policy tensor: kept under ``base_layer`` where the copy wraps the layer too."""
        plain = _plain_name(name)
        return plain if plain in tensors else plain.replace(".base_layer", "")

    def sync(self, policy, everything: bool = False) -> None:
        """Set the copy to the policy's current weights: unmerged LoRA layers take the active adapters' A and
        scaled B, other LoRA layers ``base + delta`` (PEFT's own ``get_delta_weight``), every other trainable tensor
        is copied; ``everything`` copies the frozen ones too."""
        import torch

        with torch.no_grad():
            done = set()
            for name, layer in _lora_layers(policy).items():
                adapters = [a for a in layer.active_adapters if a in layer.lora_A]
                plain = _plain_name(name)
                if plain in self.low_rank:
                    self._set_low_rank(self.low_rank[plain], layer, adapters)
                    continue
                weight = layer.base_layer.weight.detach().to(torch.float32)
                for adapter in adapters:
                    weight = weight + layer.get_delta_weight(adapter).to(torch.float32)
                target = f"{plain}.weight"
                self.params[target].copy_(weight)
                done.add(target)
            for name, param in policy.named_parameters():
                if "lora_" in name or not (everything or param.requires_grad):
                    continue
                target = self._target(name, self.params)
                if target in done:
                    continue
                if target not in self.params:
                    raise KeyError(f"the rollout copy has no parameter for the policy's {name!r}")
                mine = self.params[target]
                if not param.requires_grad and (mine.dtype, mine.shape, mine.device) == (
                    param.dtype,
                    param.shape,
                    param.device,
                ):  # a frozen weight (LoRA's base) never changes: the copy holds the policy's own tensor
                    mine.data = param.detach()
                    continue
                mine.copy_(param.detach())
        self.syncs += 1

    def _set_low_rank(self, module, layer, adapters: list[str]) -> None:
        """Several active adapters are one low-rank path of the summed ranks: [B1 s1 | B2 s2] [A1; A2]."""
        import torch

        if not adapters:
            module.lora_a = module.lora_b = None
            return
        a = [layer.lora_A[k].weight.detach() for k in adapters]
        b = [layer.lora_B[k].weight.detach() * layer.scaling[k] for k in adapters]
        module.lora_a = torch.cat(a).to(self.device).clone()
        module.lora_b = torch.cat(b, dim=1).to(self.device).clone()


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


@dataclass
class SkipLog:
    questions_skipped: int = 0
    rollouts_saved: int = 0
    rollouts_generated: int = 0
    questions_tied_out: int = 0

    def metrics(self) -> dict[str, float]:
        return {f"skip_zero_variance/{name}": float(value) for name, value in self.__dict__.items()}


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

    def __call__(self, completions: list[str], columns: dict[str, list], completion_ids=None) -> list[float]:
        totals = [0.0] * len(completions)
        for func, weight in zip(self.funcs, self.weights):
            if not weight:
                continue
            values = func(completions=completions, completion_ids=completion_ids, **columns)
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
    skip_after: int = 0  # skip_zero_variance's N (0: off)
    skip_probability: float = 0.0  # and its p
    shuffle: Callable[[str, int], tuple[str, dict[str, Any]]] | None = (
        None  # (prompt, step) -> permuted prompt, columns
    )
    last: StepLog = field(default_factory=StepLog)
    last_skip: SkipLog = field(default_factory=SkipLog)
    history: dict[str, list[bool]] = field(default_factory=dict)  # prompt -> its last skip_after groups tied or not
    step_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # this step's permuted prompts -> their rows
    model: RolloutModel | None = None
    engine: Any = None

    # -- the copy and the engine --

    def _engine(self, trainer):
        from ...engines.cache import register_decode_attention
        from ...engines.hf import TransformersEngine
        from ...modeling import pick_dtype

        policy = trainer.accelerator.unwrap_model(trainer.model)
        if self.model is None:
            import torch

            device = str(trainer.accelerator.device)
            # Building the copy initialises a model, which draws from torch's global RNG; a resumed run builds it
            # at another step than an uninterrupted one, and that draw would shift every later dropout mask
            with torch.random.fork_rng(devices=[] if device == "cpu" else None):
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

    @property
    def own_prompts(self) -> bool:
        """Whether the rows handed back carry prompts of their own (questions replacing tied or skipped ones,
        permuted options), which
        :class:`medrlvr.train.grpo.loss.MedrlvrGRPOTrainer` then gives the rewards and the completion log."""
        return self.dynamic or self.skip_after > 0 or self.shuffle is not None

    def _permuted(self, prompts: list[str], step: int) -> list[str]:
        """``prompts`` with each question's options in this step's permutation (the same for a group's rows);
        the permuted prompts' rows go to ``step_rows``."""
        if self.shuffle is None:
            return prompts
        new = {}
        for p in dict.fromkeys(prompts):
            text, columns = self.shuffle(p, step)
            new[p] = text
            self.step_rows[text] = {**self.rows[p], **columns, "prompt": text}
        return [new[p] for p in prompts]

    def __call__(self, prompts: list[str], trainer) -> dict[str, Any]:
        engine = self._engine(trainer)
        step = int(getattr(trainer.state, "global_step", 0))
        rank = int(getattr(trainer.accelerator, "process_index", 0))
        # the seed depends on the step and the process, not on how many calls this process made: a resumed run
        # samples as an uninterrupted one would, and each rank samples (and draws further questions) on its own
        seed = self.seed * 1_000_003 + step * 7_919 + rank * 104_723
        skip = SkipLog()
        if self.skip_after:
            prompts = self._skip(prompts, random.Random(f"skip:{self.seed}:{step}:{rank}"), skip)
        self.step_rows = {}
        originals = prompts
        prompts = self._permuted(prompts, step)
        prompt_ids, completion_ids, logprobs = self._generate(engine, prompts, seed)
        skip.rollouts_generated = len(prompts)
        if not self.dynamic:
            self.last = StepLog()
            result = {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}
            if self.skip_after:
                self._remember(prompts, self._score_groups(prompts, completion_ids))
            if self.skip_after or self.shuffle is not None:  # replaced questions, permuted prompts: their columns
                result |= {"prompt": prompts, **self._columns(prompts)}
        else:
            result = self._dynamic(engine, prompts, prompt_ids, completion_ids, logprobs, step, seed, rank, skip,
                                   originals)  # fmt: skip
            for name, value in self.last.metrics().items():
                _log(trainer, name, value)
        if self.skip_after:
            skip.rollouts_saved = skip.questions_skipped * self.num_generations
            skip.questions_tied_out = sum(self._tied_out(p) for p in self.history)
            self.last_skip = skip
            for name, value in skip.metrics().items():
                _log(trainer, name, value)
        return result

    # -- skipping before sampling (GRESO) --

    def _tied_out(self, prompt: str) -> bool:
        """Whether ``prompt``'s last ``skip_after`` groups all tied."""
        seen = self.history.get(prompt)
        return bool(seen) and len(seen) >= self.skip_after and all(seen[-self.skip_after :])

    def _skips(self, prompt: str, rng: random.Random) -> bool:
        """Skip ``prompt`` now: its last groups all tied, and the coin (``skip_probability``) says so."""
        return self._tied_out(prompt) and rng.random() < self.skip_probability

    def _skip(self, prompts: list[str], rng: random.Random, log: SkipLog) -> list[str]:
        """TRL's batch (each question ``num_generations`` times in a row) with the questions to skip replaced by
        questions drawn from the rest of the training set, themselves checked; a question for which no
        replacement is left is sampled after all."""
        G = self.num_generations
        groups = prompts[::G]
        in_batch = set(groups)
        spare = [p for p in self.rows if p not in in_batch]
        rng.shuffle(spare)
        out = []
        for prompt in groups:
            if self._skips(prompt, rng):
                while spare and self._skips(spare[-1], rng):
                    spare.pop()
                    log.questions_skipped += 1
                if spare:
                    log.questions_skipped += 1
                    prompt = spare.pop()
            out.append(prompt)
        return [p for p in out for _ in range(G)]

    def _remember(self, prompts: list[str], scores: list[list[float]]) -> None:
        """Record whether each scored group (``prompts`` in groups of ``num_generations``) tied."""
        if not self.skip_after:
            return
        for g, rewards in enumerate(scores):
            seen = self.history.setdefault(prompts[g * self.num_generations], [])
            seen.append(group_is_tied(rewards))
            del seen[: -self.skip_after]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the rollouts: each question's recent ties (by id), for skip_zero_variance."""
        ids = {p: str(row.get("id", p)) for p, row in self.rows.items()}
        return {"skip_after": self.skip_after, "history": {ids[p]: seen for p, seen in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        prompts = {str(row.get("id", p)): p for p, row in self.rows.items()}
        self.history = {prompts[i]: list(seen) for i, seen in state.get("history", {}).items() if i in prompts}

    # -- dynamic sampling --

    def _columns(self, prompts: list[str]) -> dict[str, list]:
        """The dataset columns (answer, options, id, ...) of each prompt's row, as TRL hands them to rewards."""
        keys = [k for k in next(iter(self.rows.values())) if k != "prompt"]
        if self.shuffle is not None:
            keys.append("permutation")
        rows = [self.step_rows.get(p) or self.rows[p] for p in prompts]
        return {k: [row.get(k) for row in rows] for k in keys}

    def _score_groups(self, prompts, completion_ids) -> list[list[float]]:
        texts = [self.decode(ids) for ids in completion_ids]
        totals = self.scorer(texts, self._columns(prompts), completion_ids)
        G = self.num_generations
        return [totals[i : i + G] for i in range(0, len(totals), G)]

    def _dynamic(self, engine, prompts, prompt_ids, completion_ids, logprobs, step, seed, rank=0,
                 skip: SkipLog | None = None, originals=None) -> dict[str, Any]:  # fmt: skip
        G = self.num_generations
        n_groups = len(prompts) // G
        log = StepLog(groups_generated=n_groups)
        kept: list[tuple] = []  # (prompt text, prompt ids, completion ids, logprobs) per kept group
        tied: list[tuple] = []

        def sort(batch_prompts, p_ids, c_ids, lps, first: bool) -> None:
            scores = self._score_groups(batch_prompts, c_ids)
            self._remember(batch_prompts, scores)
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
        rng = random.Random(f"{self.seed}:{step}:{rank}")
        in_batch = set(originals or prompts)
        pool = [p for p in self.rows if p not in in_batch]
        while len(kept) < n_groups and log.rounds < self.max_resample and pool:
            log.rounds += 1
            missing = n_groups - len(kept)
            fresh = rng.sample(pool, min(len(pool), missing))
            taken = set(fresh)
            pool = [p for p in pool if p not in taken]
            if self.skip_after:  # questions that tied out are skipped here too, before any rollout
                skip_rng = random.Random(f"skip:{self.seed}:{step}:{rank}:{log.rounds}")
                kept_fresh = [p for p in fresh if not self._skips(p, skip_rng)]
                if skip is not None:
                    skip.questions_skipped += len(fresh) - len(kept_fresh)
                fresh = kept_fresh
                if not fresh:
                    continue
            batch_prompts = self._permuted([p for p in fresh for _ in range(G)], step)
            p_ids, c_ids, lps = self._generate(engine, batch_prompts, seed + 104_729 * log.rounds)
            log.groups_generated += len(fresh)
            if skip is not None:
                skip.rollouts_generated += len(batch_prompts)
            sort(batch_prompts, p_ids, c_ids, lps, first=False)
        log.groups_kept = len(kept)
        filler = tied[: n_groups - len(kept)]
        if filler:  # budget spent: fill with tied groups (no gradient), and say so
            log.budget_exhausted = True
            kept += filler
        log.tied_after = len(filler) / max(1, len(kept))
        self.last = log
        out_prompts = [p for group in kept for p in group[0]]
        # with the replacing questions' own columns for TRL's rewards (they override the original rows' columns),
        # their prompt among them (MedrlvrGRPOTrainer._calculate_rewards hands it to rewards and the completion log)
        return {
            "prompt_ids": [ids for group in kept for ids in group[1]],
            "completion_ids": [ids for group in kept for ids in group[2]],
            "logprobs": [lp for group in kept for lp in group[3]],
            "prompt": out_prompts,
            **self._columns(out_prompts),
        }


def _log(trainer, name: str, value: float) -> None:
    """Log a scalar through TRL's metric buffer (averaged per logging step, written to metrics.jsonl)."""
    if hasattr(trainer, "_log_metric"):
        trainer._log_metric(name, value)
    else:  # older TRL
        trainer._metrics["train"][name].append(value)
