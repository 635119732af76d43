"""The transformers engine: batched generation with left padding and log-likelihood scoring.

Where the time goes on a CPU (SmolLM2-135M, 64 MedQA prompts of about 390 tokens, 128 new tokens): prefill is
a few large matrix products and runs near the machine's GEMM speed, about twice as fast in bf16 as in fp32 on
CPUs with AVX512-BF16 or AMX. Decoding is many small steps, and transformers' default cache grows by
``torch.cat`` every step, re-copying the whole cache: with batch 64 that copy was two thirds of a decode step.
:func:`medrlvr.engines.cache.growing_cache` preallocates and writes in place, and
:func:`medrlvr.engines.cache.decode_attention` reads it without copying. Prompts are sorted by length before batching
so that a batch pads little, and a prefix every prompt of a batch shares (the R1-Zero system prompt: 112 of a demo
prompt's ~170 tokens) is prefilled once. In fp32 (CPUs without bf16) decoding is bound by reading the weights
(540 MB per step for SmolLM2-135M): wide decode batches pay for themselves, which is why the demo decodes a
filter's whole pool at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..modeling import pick_dtype, render_prompt, unfreeze_for_inference
from ..models import ModelError, checkpoint_dir, resolve
from . import Completion, Prompt, Sampling, truncate_at_stop
from .cache import (
    cache_argument,
    growing_cache,
    register_decode_attention,
    shared_prefix,
)
from .loglik import LOGLIK_TOKENS, LOGLIK_TOKENS_ELSEWHERE, LoglikScoring

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """One sampled continuation as tokens: what GRPO trains on."""

    token_ids: list[int]  # the end-of-sequence token included when the model wrote it
    logprobs: list[float] | None = None  # per token, under the sampling distribution


class TransformersEngine(LoglikScoring):
    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 64,
        batch_tokens: int = 32768,
        loglik_tokens: int | None = None,
        share_prefixes: bool = True,
        prefix_in_place: bool = True,
        prefill_batch_size: int = 8,
        growing_cache: bool = True,
        decode_attention_kernel: bool = True,
        sort_by_length: bool = True,
        trust_remote_code: bool = False,
        model_obj: Any = None,
        tokenizer: Any = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens  # rows x (prompt + new tokens) of one decode batch: bounds its KV cache
        # padded tokens of one log-likelihood forward pass (default: sized for the device)
        self.loglik_tokens = loglik_tokens or LOGLIK_TOKENS.get(self.device, LOGLIK_TOKENS_ELSEWHERE)
        self.share_prefixes = share_prefixes  # log-likelihood: run a prefix that contexts share once
        self.prefix_in_place = prefix_in_place  # ... and on a CPU attend to it in place (else: copied into each row)
        self.prefill_batch_size = prefill_batch_size
        self.growing_cache = growing_cache
        self.sort_by_length = sort_by_length
        if model_obj is not None:  # an already built model (tests, the trainer's policy)
            self.model, self.tokenizer, self.model_name = model_obj, tokenizer, model or "in-memory"
        else:
            ref = resolve(model)
            path = checkpoint_dir(ref)
            adapter = adapter or (path if (Path(path) / "adapter_config.json").exists() else None)
            if adapter and adapter == path:  # a LoRA adapter directory: load its base model under it
                path = json.loads((Path(adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
                path = checkpoint_dir(path)
            self.model_name = ref.name
            self.tokenizer = AutoTokenizer.from_pretrained(adapter or path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=self.dtype,
                trust_remote_code=trust_remote_code,
                attn_implementation=register_decode_attention() if decode_attention_kernel else None,
            )
            if adapter:
                from peft import PeftModel

                # PEFT leaves the merged weights frozen: as from_pretrained leaves them instead
                self.model = unfreeze_for_inference(PeftModel.from_pretrained(self.model, adapter).merge_and_unload())
            self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self._cache_arg = cache_argument(self.model)

    # -- prompts -----------------------------------------------------------------------------------------

    @property
    def chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: Prompt) -> str:
        """A chat prompt through the model's chat template; a plain prompt as is."""
        if not isinstance(prompt, str) and not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"{self.model_name} has no chat template (a base model?): give it plain prompts")
        return render_prompt(self.tokenizer, prompt)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # Chat templates already hold the BOS token; plain prompts get the tokenizer's usual special tokens.
        return [self.tokenizer(t, add_special_tokens=not self._templated(t))["input_ids"] for t in texts]

    def _templated(self, text: str) -> bool:
        bos = self.tokenizer.bos_token
        return bool(bos) and text.startswith(bos)

    # -- generation --------------------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Prompt], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        ids = self._encode([self.render(p) for p in prompts])
        eos = self._eos_ids()
        rollouts = self.generate_ids(ids, n=n, sampling=sampling)
        return [
            [self._completion(r.token_ids, len(ids[i]), eos, sampling) for r in per] for i, per in enumerate(rollouts)
        ]

    def generate_ids(
        self, prompt_ids: Sequence[Sequence[int]], n: int = 1, sampling: Sampling = Sampling(), logprobs: bool = False
    ) -> list[list[Rollout]]:
        """``n`` continuations of each tokenized prompt, as token ids (the end-of-sequence token included when the
        model wrote it) and, with ``logprobs=True``, each token's log-probability under the sampling distribution
        (logits / temperature; plain logits when greedy). GRPO rollouts use this (:mod:`medrlvr.train.grpo.rollout`)."""
        ids = [list(p) for p in prompt_ids]
        if any(not p for p in ids):
            raise ValueError("an empty prompt has nothing to continue")
        jobs = [(i, j) for i in range(len(ids)) for j in range(n)]
        order = (
            sorted(range(len(jobs)), key=lambda k: -len(ids[jobs[k][0]]))
            if self.sort_by_length
            else list(range(len(jobs)))
        )
        results: dict[int, Rollout] = {}
        lengths = [len(ids[i]) for i, _ in jobs]
        for index, chunk in enumerate(self._batches(order, lengths, sampling.max_new_tokens, group=n)):
            batch = [ids[jobs[k][0]] for k in chunk]
            # one random stream per batch, each from its own seed: batches do not repeat each other's draws
            out = self._generate_batch(batch, sampling, sampling.seed + 1_000_003 * index, logprobs)
            for k, rollout in zip(chunk, out):
                results[k] = rollout
        grouped: list[list[Rollout]] = [[] for _ in ids]
        for k, (i, _) in enumerate(jobs):
            grouped[i].append(results[k])
        return grouped

    def _batches(self, order: list[int], lengths: list[int], new_tokens: int, group: int = 1) -> list[list[int]]:
        """Rows (longest first) in batches of at most ``batch_size`` and ``batch_tokens`` cache positions, and a
        new batch when a row is under half the batch's width: every row of a batch is padded to its longest, so
        one 1,100-token MMLU passage in a batch of 40 300-token questions made a 2 GB cache (measured).

        ``order`` holds each prompt's ``group`` rows (its ``n`` samples) together; a prompt's rows go into one batch
        where they fit in it, since :meth:`_prefill` runs a prompt once per batch that holds it (a group split over
        two batches would be prefilled twice)."""
        batches: list[list[int]] = []
        width = 0
        for position, k in enumerate(order):
            length = lengths[k]
            # at a prompt's first row, ask room for all its rows; a group larger than a batch fills batches whole
            rows = group if group > 1 and position % group == 0 and group <= self.batch_size else 1
            if batches and (
                len(batches[-1]) + rows <= self.batch_size
                and (len(batches[-1]) + rows) * (max(width, length) + new_tokens) <= self.batch_tokens
                and (not self.sort_by_length or 2 * length >= width)
            ):
                batches[-1].append(k)
                width = max(width, length)
            else:
                batches.append([k])
                width = length
        return batches

    def _generate_batch(self, batch: list[list[int]], sampling: Sampling, seed: int, want_logprobs: bool):
        """Sample continuations for one batch: prefill, then a decode loop that drops finished rows."""
        import torch

        width = max(map(len, batch))
        B = len(batch)
        shared = shared_prefix(batch) if self.growing_cache else 0  # every prompt keeps its last token
        ids, mask, positions = self._left_pad(batch, shared)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        eos = self._eos_ids()
        out: list[list[int]] = [[] for _ in range(B)]
        logps: list[list[float]] = [[] for _ in range(B)]
        finished = [False] * B
        rows = torch.arange(B, device=self.device)  # which original row each live row is
        with torch.inference_mode():
            capacity = width + sampling.max_new_tokens
            cache = self._prefill(batch, width, capacity, shared) if self.growing_cache else None
            if cache is None:  # one padded prefill with transformers' own cache
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
                feed, feed_mask = ids, mask
            else:
                feed, feed_mask = ids[:, -1:], mask
            positions = positions[:, -feed.shape[1] :]
            finished_since_compact = 0
            for step in range(sampling.max_new_tokens):
                logits = self.model(
                    input_ids=feed,
                    attention_mask=feed_mask,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_arg: cache},
                ).logits[:, -1]
                next_tokens = sample_next(logits, sampling, generator)
                chosen = _chosen_logprobs(logits, next_tokens, sampling.temperature) if want_logprobs else None
                done = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
                for i, (row, token) in enumerate(zip(rows.tolist(), next_tokens.tolist())):
                    if finished[row]:  # finished earlier, awaiting compaction
                        done[i] = True
                        continue
                    out[row].append(token)
                    if want_logprobs:
                        logps[row].append(chosen[i])
                    if token in eos or (sampling.stop and self._hit_stop(out[row], sampling.stop)):
                        finished[row] = True
                        done[i] = True
                        finished_since_compact += 1
                if bool(done.all()) or step == sampling.max_new_tokens - 1:
                    break
                feed_mask = torch.cat([feed_mask, torch.ones_like(feed_mask[:, :1])], dim=1)
                positions = positions[:, -1:] + 1
                feed = next_tokens[:, None]
                # Drop finished rows once enough have finished to repay copying the cache.
                if finished_since_compact and finished_since_compact * 8 >= len(rows):
                    keep = (~done).nonzero().squeeze(-1)
                    cache.batch_select_indices(keep)
                    rows, feed, feed_mask, positions = rows[keep], feed[keep], feed_mask[keep], positions[keep]
                    finished_since_compact = 0
        return [Rollout(out[r], logps[r] if want_logprobs else None) for r in range(B)]

    def _prefill(self, batch: list[list[int]], width: int, capacity: int = 0, shared: int = 0):
        """Fill a growing cache with every prompt but its last token, in length-sorted micro-batches.

        A decode batch wants to be wide, but prefilling one wide batch pads every prompt to the longest: on
        MedQA prompts half of that compute is padding. Micro-batches of similar length pad little; their caches
        are then laid side by side, left-padded to the common width, and decoding goes on from the last token.
        Positions come from each prompt's own mask, so they match a single padded prefill. A prompt that several
        rows share (GRPO's group of rollouts, a filter's k samples) is prefilled once and copied to each row.

        A prefix all prompts share (``shared`` tokens: the R1-Zero system prompt is 112 of a demo prompt's ~170)
        runs once too: the cache holds it in its first ``shared`` columns for every row, then each row's rest,
        left-padded (the layout :meth:`_left_pad` gives the decode mask)."""
        import torch

        cache = growing_cache(self.model, capacity)
        if cache is None or width < 2:
            return None
        head = None
        if shared:  # the shared prefix, once, into the first columns of every row
            head = growing_cache(self.model, shared)
            ids = torch.tensor([batch[0][:shared]], device=self.device)
            positions = torch.arange(shared, device=self.device)[None]
            self.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=positions, use_cache=True,
                       logits_to_keep=1, **{self._cache_arg: head})  # fmt: skip
            for grow, cached in zip(cache.layers, head.layers):
                grow.reserve(cached.keys, cached.values, len(batch), width - 1)
                grow.write(cached.keys, cached.values, 0)
        rows_of: dict[tuple[int, ...], list[int]] = {}
        for r, seq in enumerate(batch):
            rows_of.setdefault(tuple(seq[shared:-1]), []).append(r)
        distinct = sorted(rows_of, key=len)
        for start in range(0, len(distinct), self.prefill_batch_size):
            keys = distinct[start : start + self.prefill_batch_size]
            seqs = [list(key) for key in keys]
            w = max(map(len, seqs))
            if w == 0:  # every prompt of this micro-batch is the shared prefix and its last token
                continue
            ids, mask, positions = self._left_pad(seqs)
            part = growing_cache(self.model, shared + w)
            if head is not None:
                for grown, cached in zip(part.layers, head.layers):
                    grown.reserve(cached.keys, cached.values, len(keys), shared)
                    grown.write(cached.keys, cached.values, 0)
                mask = torch.cat([torch.ones(len(keys), shared, dtype=mask.dtype, device=self.device), mask], dim=1)
                positions = positions + shared
            self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_arg: part},
            )
            source = [t for t, key in enumerate(keys) for _ in rows_of[key]]
            target = [r for key in keys for r in rows_of[key]]
            source_index = torch.tensor(source, device=self.device)
            target_index = torch.tensor(target, device=self.device)
            for grow, cached in zip(cache.layers, part.layers):
                if not grow.is_initialized:
                    grow.reserve(cached.keys, cached.values, len(batch), width - 1)
                grow.write(cached.keys[source_index, :, -w:], cached.values[source_index, :, -w:], width - 1 - w,
                           rows=target_index)  # fmt: skip
        return cache

    def _left_pad(self, seqs: list[list[int]], shared: int = 0):
        """Token ids, attention mask and position ids for left-padded rows. Positions count each row's own
        tokens from 0, as ``generate`` computes them, so a row's numbers do not depend on its batch. With
        ``shared``, the padding goes after the first ``shared`` tokens (all rows' common prefix, which
        :meth:`_prefill` lays in the cache's first columns)."""
        import torch

        width = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([q[:shared] + [pad] * (width - len(q)) + q[shared:] for q in seqs], device=self.device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(q)) + [1] * (len(q) - shared) for q in seqs],
                            device=self.device)  # fmt: skip
        return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

    def _eos_ids(self) -> set[int]:
        config_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        return {t for t in [self.tokenizer.eos_token_id, *_as_list(config_eos)] if t is not None}

    def _hit_stop(self, tokens: list[int], stop: Sequence[str]) -> bool:
        tail = self.tokenizer.decode(tokens[-16:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    def _completion(self, new: list[int], prompt_tokens: int, eos: set[int], sampling: Sampling) -> Completion:
        end = next((i for i, t in enumerate(new) if t in eos), None)
        tokens = new[:end] if end is not None else new
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        text, stopped = truncate_at_stop(text, sampling.stop, sampling.include_stop)
        finish = "stop" if end is not None or stopped else "length"
        return Completion(text, len(tokens) + (end is not None), finish, prompt_tokens)

    def close(self) -> None:
        self.model = None
        with contextlib.suppress(Exception):
            import gc

            gc.collect()


def sample_next(logits, sampling: Sampling, generator):
    """One token per row. Greedy at temperature 0. Otherwise inverse-CDF sampling on the softmax (one uniform
    draw per row), which costs a few milliseconds where ``torch.multinomial`` on a 49k vocabulary and batch 64
    took 60 ms a step; top-p sorts only when it is below 1."""
    import torch

    if sampling.temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / sampling.temperature
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = logits.topk(sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    order = None
    if sampling.top_p < 1:
        probs, order = probs.sort(dim=-1, descending=True)
        cumulative = probs.cumsum(-1)
        probs = probs.masked_fill(cumulative - probs > sampling.top_p, 0.0)
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * cdf[:, -1:]
    picked = torch.searchsorted(cdf, u).clamp(max=probs.shape[-1] - 1)
    if order is not None:
        picked = order.gather(-1, picked)
    return picked.squeeze(-1)


def _chosen_logprobs(logits, tokens, temperature: float) -> list[float]:
    """Each row's log-probability of its chosen token under the sampling distribution (plain logits when greedy)."""
    import torch

    scale = temperature if temperature > 0 else 1.0
    return torch.log_softmax(logits.float() / scale, dim=-1).gather(-1, tokens[:, None]).squeeze(-1).tolist()


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
