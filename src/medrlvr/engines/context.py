"""Bounding prompts by the model's context: a question longer than the model can read is not sent.

A 5 MB question once reached the transformers engine, which tokenized it, took 10 GB and then asked for a 1 TB
attention mask. :class:`ContextGuard` wraps an engine, measures each prompt (the engine's own tokenizer, after a
cheap length check in characters), and sends only the prompts that fit: ``prompt tokens + max_new_tokens`` (or
the continuation, for log-likelihoods) within the context. The rest get an empty completion with
``finish_reason="too_long"``; filter and evaluation count them and say how many.

The context is the smaller of the tokenizer's ``model_max_length`` and the model config's
``max_position_embeddings`` (transformers), ``n_ctx`` (llama.cpp), or whatever an engine's own
``context_length()`` says; an engine that says nothing (a remote server) is not checked here: the server refuses
what it cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import Completion, Prompt, Sampling

# No tokenizer in use packs more than this many characters into one token on average, so a prompt longer than
# this many characters per token of context is too long without tokenizing it (tokenizing 5 MB is the problem).
MAX_CHARS_PER_TOKEN = 64
# Tokenizers with no limit report a huge sentinel (int(1e30)) as model_max_length.
NO_LIMIT = 10**8


def context_length(engine: Any) -> int | None:
    """The most tokens ``engine``'s model reads at once, or None when the engine does not say."""
    own = getattr(engine, "context_length", None)
    if callable(own):
        return own()
    limits = []
    tokenizer = getattr(engine, "tokenizer", None)
    n = getattr(tokenizer, "model_max_length", None)
    if isinstance(n, int) and 0 < n < NO_LIMIT:
        limits.append(n)
    config = getattr(getattr(engine, "model", None), "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        n = getattr(text_config, "max_position_embeddings", None)
        if isinstance(n, int) and n > 0:
            limits.append(n)
    llm = getattr(engine, "llm", None)
    if llm is not None and callable(getattr(llm, "n_ctx", None)):
        limits.append(int(llm.n_ctx()))
    return min(limits) if limits else None


def _chars(prompt: Prompt) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m.get("content") or "") for m in prompt)


def prompt_tokens(engine: Any, prompt: Prompt) -> int | None:
    """Tokens of ``prompt`` as ``engine`` would feed it (chat template applied), or None if it cannot tell."""
    own = getattr(engine, "count_tokens", None)
    if callable(own):
        return own(prompt)
    tokenizer = getattr(engine, "tokenizer", None)
    render = getattr(engine, "render", None)
    if tokenizer is not None and callable(render):
        return len(tokenizer(render(prompt), add_special_tokens=False)["input_ids"]) + 1  # + BOS, if any
    llm, render = getattr(engine, "llm", None), getattr(engine, "_render", None)
    if llm is not None and callable(render):
        return len(llm.tokenize(render(prompt).encode(), add_bos=True, special=True))
    return None


class ContextGuard:
    """``engine`` with prompts that do not fit its context held back. After each call, ``too_long`` maps the index
    of every prompt held back to its length in tokens (or a lower bound). Everything else is the engine's."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.limit = context_length(engine)
        self.too_long: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def overflow(self, prompt: Prompt, room: int) -> int | None:
        """The prompt's length if it and ``room`` more tokens do not fit the context; None if they fit."""
        if self.limit is None:
            return None
        budget = self.limit - room
        chars = _chars(prompt)
        if chars > MAX_CHARS_PER_TOKEN * self.limit:
            return chars // MAX_CHARS_PER_TOKEN  # certainly too long; a lower bound, found without tokenizing
        tokens = prompt_tokens(self.engine, prompt)
        return tokens if tokens is not None and tokens > budget else None

    def generate(self, prompts: Sequence[Prompt], n: int = 1, sampling: Sampling | None = None, **kwargs):
        sampling = sampling or Sampling()
        self.too_long = {}
        for i, p in enumerate(prompts):
            if (tokens := self.overflow(p, sampling.max_new_tokens)) is not None:
                self.too_long[i] = tokens
        fits = [i for i in range(len(prompts)) if i not in self.too_long]
        outputs = self.engine.generate([prompts[i] for i in fits], n=n, sampling=sampling, **kwargs) if fits else []
        out: list[list[Completion]] = [[Completion("", 0, "too_long", t)] * n for t in self._lengths(len(prompts))]
        for i, completions in zip(fits, outputs):
            out[i] = completions
        return out

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]], **kwargs) -> list[tuple[float, bool]]:
        """Pairs held back score ``-inf``; callers check ``too_long`` and do not read them as answers."""
        self.too_long = {}
        measured: dict[Any, int | None] = {}  # the options of a question share one context: measure it once
        for i, (context, continuation) in enumerate(pairs):
            key = (context if isinstance(context, str) else repr(context), len(continuation))
            if key not in measured:
                measured[key] = self.overflow(context, max(1, len(continuation)))  # characters >= tokens
            if measured[key] is not None:
                self.too_long[i] = measured[key]
        fits = [i for i in range(len(pairs)) if i not in self.too_long]
        scores = self.engine.loglikelihood([pairs[i] for i in fits], **kwargs) if fits else []
        out = [(float("-inf"), False)] * len(pairs)
        for i, score in zip(fits, scores):
            out[i] = score
        return out

    def _lengths(self, count: int) -> list[int]:
        return [self.too_long.get(i, 0) for i in range(count)]
