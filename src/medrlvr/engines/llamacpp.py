"""The llama.cpp engine: a GGUF file in-process through llama-cpp-python (``pip install medrlvr[llamacpp]``).

One stream at a time through llama-cpp-python's high-level API; chat prompts use the chat template stored in
the GGUF. Log-likelihoods come from the logits of one evaluation of context + continuation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..models import ModelError, resolve
from . import Completion, Prompt, Sampling, truncate_at_stop


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, model: str, *, n_ctx: int = 4096, n_threads: int | None = None, verbose: bool = False):
        try:
            import llama_cpp
        except ImportError:
            raise ModelError("the llamacpp engine needs llama-cpp-python: pip install 'medrlvr[llamacpp]'") from None
        ref = resolve(model)
        if ref.kind != "gguf":
            raise ModelError(f"the llamacpp engine reads GGUF files; {model} is a {ref.kind} model")
        self.model_name = ref.name
        threads = n_threads or os.cpu_count() or 1
        self.llm = llama_cpp.Llama(
            model_path=ref.location,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=verbose,
        )
        self._scorer = None
        self._n_ctx, self._threads, self._path, self._verbose = n_ctx, threads, ref.location, verbose

    @property
    def chat(self) -> bool:
        return bool(self.llm.metadata.get("tokenizer.chat_template"))

    def generate(
        self, prompts: Sequence[Prompt], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        results = []
        for i, prompt in enumerate(prompts):
            completions = []
            for j in range(n):
                seed = sampling.seed + i * n + j  # one seed per sample: repeatable, and samples differ
                kwargs = dict(
                    max_tokens=sampling.max_new_tokens,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=sampling.top_k,
                    min_p=0.0,
                    repeat_penalty=1.0,
                    seed=seed,
                    stop=None if sampling.include_stop else list(sampling.stop) or None,  # kept: cut here
                )
                if isinstance(prompt, str):
                    out = self.llm.create_completion(prompt, **kwargs)
                    text = out["choices"][0]["text"]
                else:
                    out = self.llm.create_chat_completion(messages=prompt, **kwargs)
                    text = out["choices"][0]["message"]["content"] or ""
                text, _ = truncate_at_stop(text, sampling.stop, sampling.include_stop)
                reason = "length" if out["choices"][0]["finish_reason"] == "length" else "stop"
                usage = out.get("usage", {})
                completions.append(
                    Completion(text, usage.get("completion_tokens", 0), reason, usage.get("prompt_tokens", 0))
                )
            results.append(completions)
        return results

    def _render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.model_name} has no chat template (a base model?): give it plain prompts")
        vocab = self.llm
        formatter = Jinja2ChatFormatter(
            template,
            eos_token=vocab.detokenize([vocab.token_eos()]).decode(errors="ignore"),
            bos_token=vocab.detokenize([vocab.token_bos()]).decode(errors="ignore"),
        )
        return formatter(messages=prompt).prompt

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]]) -> list[tuple[float, bool]]:
        import llama_cpp
        import numpy as np

        if self._scorer is None:  # a second context that keeps the logits of every position
            self._scorer = llama_cpp.Llama(
                model_path=self._path,
                n_ctx=self._n_ctx,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                logits_all=True,
                verbose=self._verbose,
            )
        llm = self._scorer
        results = []
        for context, continuation in pairs:
            text = self._render(context)
            ctx = llm.tokenize(text.encode(), add_bos=True, special=True)
            cont = llm.tokenize(continuation.encode(), add_bos=False, special=False)
            llm.reset()
            llm.eval(ctx + cont)
            logits = np.asarray(llm.scores[len(ctx) - 1 : len(ctx) + len(cont) - 1], dtype=np.float64)
            logits -= logits.max(-1, keepdims=True)
            logprobs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            total = float(sum(logprobs[i, t] for i, t in enumerate(cont)))
            greedy = bool(all(logprobs[i].argmax() == t for i, t in enumerate(cont)))
            results.append((total, greedy))
        return results

    def close(self) -> None:
        for llm in (self.llm, self._scorer):
            if llm is not None:
                llm.close()
