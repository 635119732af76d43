"""A scripted fake engine: answers come from a table, so labels and selections can be asserted exactly."""

from __future__ import annotations

from medrlvr.engines import Completion, Sampling, truncate_at_stop


class ScriptedEngine:
    """``script[question text fragment] = [response for sample 0, sample 1, ...]``; unknown questions get
    "I don't know". Records every call so tests can check chunking and seeds."""

    name = "scripted"

    def __init__(self, script: dict[str, list[str]], fail_after_calls: int | None = None):
        self.script = script
        self.calls: list[tuple[int, int]] = []  # (prompts, seed)
        self.fail_after_calls = fail_after_calls

    def _lookup(self, prompt) -> list[str]:
        # the question is in the last user turn (an assistant turn after it is a prefill)
        text = prompt if isinstance(prompt, str) else [m for m in prompt if m["role"] == "user"][-1]["content"]
        for fragment, responses in self.script.items():
            if fragment in text:
                return responses
        return ["I don't know"]

    def generate(self, prompts, n=1, sampling=Sampling()):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise KeyboardInterrupt("scripted interruption")
        self.calls.append((len(prompts), sampling.seed))
        self.prompts = getattr(self, "prompts", []) + list(prompts)
        out = []
        for p in prompts:
            responses = self._lookup(p)
            texts = [truncate_at_stop(responses[j % len(responses)], sampling.stop, sampling.include_stop)[0]
                     for j in range(n)]  # as the engines end an answer at a stop string  # fmt: skip
            out.append([Completion(text, 10 + j, "stop", 5) for j, text in enumerate(texts)])
        return out

    def loglikelihood(self, pairs):
        return [(0.0, True) for _ in pairs]

    def close(self):
        pass
