"""Inference engines behind one interface.

An engine turns prompts into completions (``generate``) and scores continuations (``loglikelihood``). A prompt
is either a plain string (completed as is: base models) or a list of chat messages (rendered with the model's
chat template, or sent to a chat endpoint).

- ``transformers`` (default): CPU or GPU, batched with left padding, bf16 where the hardware has it.
- ``llamacpp``: a GGUF file in-process through llama-cpp-python (``pip install medrlvr[llamacpp]``).
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, TGI, a hosted API).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import setting
from ..prompts import Prompt


@dataclass(frozen=True)
class Sampling:
    """How to sample. ``temperature=0`` is greedy; ``top_k=0`` and ``top_p=1`` keep the whole vocabulary. ``seed``
    makes a call repeatable on the same engine. ``stop`` ends a completion at the first stop string, which is cut
    off (as OpenAI-compatible servers do) unless ``include_stop``: then it ends the text (R1-Zero's ``</answer>``)."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    top_k: int = 0
    include_stop: bool = False

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0: no top-k), got {self.top_k}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    text: str
    tokens: int  # generated tokens, the stop string's included
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    prompt_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    chat: bool  # whether the model takes chat prompts (it has a chat template); else plain completion

    def generate(
        self, prompts: Sequence[Prompt], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order."""

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]]) -> list[tuple[float, bool]]:
        """For each (context, continuation): the log-probability of the continuation given the context, and
        whether it is the greedy continuation."""

    def close(self) -> None: ...


def truncate_at_stop(text: str, stop: Sequence[str], include: bool = False) -> tuple[str, bool]:
    """Cut ``text`` before the first stop string, as OpenAI-compatible servers do (``include``: after it). Returns
    the text and whether a stop string was found."""
    found = [(i, s) for s in stop if s for i in [text.find(s)] if i != -1]
    if not found:
        return text, False
    cut, first = min(found, key=lambda f: (f[0], -len(f[1])))
    return text[: cut + len(first) if include else cut], True


def takes_chat(engine: object) -> bool:
    """Whether to give ``engine`` chat prompts: its own answer, and chat for engines that do not say."""
    return bool(getattr(engine, "chat", True))


# name -> (module of this package, class). A new engine: its own module here, a class taking (model, **options)
# with the methods of ``Engine``, one line in this dict, a test in tests/test_engines.py on a fake or tiny model.
ENGINES: dict[str, tuple[str, str]] = {
    "transformers": ("hf", "TransformersEngine"),
    "llamacpp": ("llamacpp", "LlamaCppEngine"),
    "openai": ("openai_api", "OpenAIEngine"),
}


@dataclass
class EngineSettings:
    """The settings every stage that runs a model has first (the filter's and the evaluation's)."""

    model: str = setting(help="model reference: packaged name, .gguf file, checkpoint dir (a LoRA adapter directory "
                         "loads its base under it), hub id, or served name")  # fmt: skip
    engine: str = setting("transformers", choices=ENGINES, help="what runs the model")
    engine_options: dict[str, Any] = setting(
        default_factory=dict, help="engine keyword arguments, as JSON or key=value (openai: base_url, ...)"
    )


def get_engine(name: str, model: str | None = None, **options: Any) -> Engine:
    """An engine by name. ``model`` is any model reference (see :mod:`medrlvr.models`); for ``openai`` it is the
    served model's name and ``base_url`` says where the server is. Its module is imported only now (torch,
    llama-cpp-python and httpx load with the engine that needs them)."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(model, **options)
