"""The OpenAI-compatible engine: any server that speaks ``/v1/completions`` and ``/v1/chat/completions`` (vLLM,
SGLang, llama.cpp's server, TGI, a hosted API). This is how a study filters and evaluates with big models on GPU
servers.

Requests run on a bounded thread pool; failed requests (connection errors, timeouts, 429 and 5xx) are retried
with exponential backoff and jitter. The API key is read from the environment (``OPENAI_API_KEY`` unless
``api_key_env`` names another variable; ``api_key_env=None`` sends none) and never appears in a log line or an
error message, even when a server echoes the request's headers back. A request that fails for good raises
:class:`ServerError`, one line that names the URL and what went wrong.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import UserError
from . import Completion, Prompt, Sampling, truncate_at_stop

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(UserError):
    """An OpenAI-compatible server refused or could not be reached; the message is one line, without the key."""


class OpenAIEngine:
    name = "openai"
    chat = True  # chat endpoints apply the served model's template

    def __init__(
        self,
        model: str | None,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.5,
    ):
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip("/")
        self._api_key_env = api_key_env
        self.model_name = model or ""
        self.concurrency, self.timeout, self.retries, self.backoff = concurrency, timeout, retries, backoff

    def _key(self) -> str | None:
        return os.environ.get(self._api_key_env) if self._api_key_env else None

    def _scrub(self, text: str) -> str:
        """``text`` on one line, short, and without the key (a server may echo the Authorization header). The key
        is removed before the text is cut short, so no piece of it is left at the cut."""
        key = self._key()
        if key:
            text = text.replace(key, "***")
        text = " ".join(text.split())
        return text if len(text) <= 200 else text[:197] + "..."

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps({"model": self.model_name, **payload}).encode()
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    shown = self._scrub(raw[: 1 << 20].decode(errors="replace"))
                    raise ServerError(f"{url}: the answer is not JSON: {shown}") from None
            except urllib.error.HTTPError as e:
                detail = self._scrub(e.read(1 << 20).decode(errors="replace"))
                if e.code not in RETRY_STATUS or attempt == self.retries:
                    hint = ""
                    if e.code in (401, 403):
                        hint = (
                            f" (the key from ${self._api_key_env} was refused)"
                            if key
                            else " (no API key was sent: set OPENAI_API_KEY, and give this server's address with "
                            "--base-url or OPENAI_BASE_URL: only that address gets the key)"
                        )
                    raise ServerError(f"{url}: HTTP {e.code}{hint}: {detail or e.reason}") from None
                problem = f"HTTP {e.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                if attempt == self.retries:
                    reason = self._scrub(str(getattr(e, "reason", e)))
                    raise ServerError(
                        f"{url}: cannot reach the server ({reason}) after {self.retries + 1} attempts; "
                        "is it running at this address? (--base-url or OPENAI_BASE_URL)"
                    ) from None
                problem = type(e).__name__
            delay = self.backoff * 2**attempt * (0.5 + random.random())
            log.warning("%s: %s, retrying in %.1fs (%d/%d)", url, problem, delay, attempt + 1, self.retries)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _choices(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        out = self._post(path, payload)
        if not isinstance(out, dict) or not isinstance(out.get("choices"), list):
            shown = self._scrub(json.dumps(out))
            raise ServerError(f"{self.base_url}{path}: the answer has no 'choices' list: {shown}")
        return out

    def _one(self, prompt: Prompt, n: int, sampling: Sampling, seed: int) -> list[Completion]:
        payload: dict[str, Any] = dict(
            max_tokens=sampling.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p, n=n, seed=seed
        )
        if sampling.stop and not sampling.include_stop:  # servers drop the stop string: kept, it is cut here
            payload["stop"] = list(sampling.stop)
        if isinstance(prompt, str):
            out = self._choices("/completions", {"prompt": prompt, **payload})
            texts = [c.get("text", "") for c in out["choices"]]
        else:
            out = self._choices("/chat/completions", {"messages": prompt, **payload})
            texts = [(c.get("message") or {}).get("content") or "" for c in out["choices"]]
        choices = out["choices"]
        usage = out.get("usage") or {}
        per = max(1, len(choices))
        completions = []
        for text, choice in zip(texts, choices):
            text, _ = truncate_at_stop(text, sampling.stop, sampling.include_stop)
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            completions.append(
                Completion(text, usage.get("completion_tokens", 0) // per, reason, usage.get("prompt_tokens", 0))
            )
        if len(completions) < n:  # servers without n>1: ask again for the rest
            completions += self._one(prompt, n - len(completions), sampling, seed + len(completions))
        return completions

    def generate(
        self, prompts: Sequence[Prompt], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._one, p, n, sampling, sampling.seed + i * n) for i, p in enumerate(prompts)]
            return [f.result() for f in futures]

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]]) -> list[tuple[float, bool]]:
        """Through ``/v1/completions`` with ``echo`` and ``logprobs`` (vLLM and llama.cpp's server support it);
        chat contexts need a server-side template and are not supported here."""

        def score(pair: tuple[Prompt, str]) -> tuple[float, bool]:
            context, continuation = pair
            if not isinstance(context, str):
                raise ServerError("loglikelihood through an OpenAI-compatible server takes plain-text contexts")
            out = self._choices(
                "/completions",
                {"prompt": context + continuation, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0},
            )
            lp = (out["choices"][0] if out["choices"] else {}).get("logprobs")
            if not isinstance(lp, dict) or "text_offset" not in lp:
                raise ServerError(f"{self.base_url}/completions: no echoed logprobs (does the server support echo?)")
            offsets, tokens, logprobs = lp["text_offset"], lp["token_logprobs"], lp.get("top_logprobs") or []
            start = len(context)
            total, greedy = 0.0, True
            for i, offset in enumerate(offsets[: len(tokens)]):
                if offset < start or offset >= len(context) + len(continuation) or tokens[i] is None:
                    continue
                total += tokens[i]
                top = logprobs[i] if i < len(logprobs) and logprobs[i] else {}
                if top and max(top.values()) > tokens[i] + 1e-6:
                    greedy = False
            return total, greedy

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(score, pairs))

    def close(self) -> None:
        pass
