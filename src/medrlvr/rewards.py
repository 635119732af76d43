"""Rewards for RLVR, in TRL's form ``fn(completions, **dataset_columns) -> list[float]`` and verl's
``compute_score(data_source, solution_str, ground_truth, extra_info=None)``.

The three rewards of Open-Medical-R1 (section 3.1): format, accuracy and XML count. Completions may be
plain strings or chat messages (``[{"role": "assistant", "content": ...}]``). No reward ever raises: a
completion that cannot be read scores 0.0 (bytes are read as UTF-8), and nothing pays for a hedge or a negation
(see :mod:`medrlvr.extract`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .extract import canonical_number, extract_answer, extract_choice, extract_number, normalize_options
from .records import LETTERS

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
TRAILING_PENALTY_PER_CHAR = 0.001  # xml_count: text after </answer> costs this much per character ...
TRAILING_PENALTY_MAX = 0.25  # ... up to one tag's worth


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, UTF-8 bytes, or the assistant messages of a chat completion, joined.
    Anything else is the empty string (which scores 0.0)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (bytes, bytearray)):
        return bytes(completion).decode("utf-8", errors="replace")
    if isinstance(completion, Mapping):
        content = completion.get("content")
        return content if isinstance(content, str) else ""
    if isinstance(completion, (list, tuple)):
        parts = [completion_text(m) for m in completion if not isinstance(m, Mapping) or m.get("role") != "user"]
        return "".join(parts)
    return ""


def _column(values: Any, i: int) -> Any:
    if values is None or isinstance(values, (str, bytes, Mapping)):
        return values
    try:
        return values[i]
    except (IndexError, TypeError, KeyError):
        return None


def _options(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # a JSON-encoded column (parquet, verl extra_info)
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, (Mapping, list, tuple)):
        return normalize_options(value)
    return {}


def is_correct(text: str, gold: Any, options: Any = None) -> bool:
    """Whether a completion's extracted answer equals the gold answer (a letter, or a number for GSM8K)."""
    if isinstance(gold, (bytes, bytearray)):
        gold = bytes(gold).decode("utf-8", errors="replace")
    gold = str(gold).strip() if gold is not None else ""
    if not gold:
        return False
    opts = _options(options)
    if not opts and len(gold) == 1 and gold.upper() in LETTERS:
        # A letter answer with no options column: take the letters up to the gold's as the options.
        opts = {letter: "" for letter in LETTERS[: max(4, LETTERS.index(gold.upper()) + 1)]}
    if opts:
        return extract_answer(text, opts) == gold.upper()
    answer = extract_answer(text)
    return answer is not None and answer == canonical_number(gold)


def _as_list(completions: Any) -> list[Any]:
    """The batch as a list: None is empty; one string, bytes or message is a batch of one; any iterable (a
    numpy array too, whose truth value would raise) is listed; anything else is one unreadable completion."""
    if completions is None:
        return []
    if isinstance(completions, (str, bytes, bytearray, Mapping)):
        return [completions]
    try:
        return list(completions)
    except Exception:
        return [completions]


def _safe(score: Callable[[str, int], float], completions: Sequence[Any]) -> list[float]:
    out = []
    for i, completion in enumerate(_as_list(completions)):
        try:
            out.append(float(score(completion_text(completion), i)))
        except Exception:
            out.append(0.0)
    return out


def accuracy_reward(
    completions: Sequence[Any], answer: Sequence[Any] | None = None, options: Any = None, **kwargs: Any
) -> list[float]:
    """1.0 iff the extracted answer equals the gold ``answer`` column, else 0.0.

    >>> accuracy_reward(["<think>...</think><answer>B</answer>", "<answer>A or B</answer>"], answer=["B", "B"])
    [1.0, 0.0]
    """
    return _safe(lambda text, i: is_correct(text, _column(answer, i), _column(options, i)), completions)


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1.0 iff the completion is one ``<think>...</think>`` then one ``<answer>...</answer>``, nothing else
    but white space around and between them.

    >>> format_reward(["<think>x</think>\\n<answer>B</answer>", "<answer>B</answer>"])
    [1.0, 0.0]
    """

    def score(text: str, i: int) -> float:
        if any(text.count(tag) != 1 for tag in TAGS):
            return 0.0
        t0, t1, a0, a1 = (text.find(tag) for tag in TAGS)
        ok = (
            t0 < t1 < a0 < a1
            and not text[:t0].strip()
            and not text[t1 + len("</think>") : a0].strip()
            and not text[a1 + len("</answer>") :].strip()
        )
        return 1.0 if ok else 0.0

    return _safe(score, completions)


def xml_count_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.25 for each of the four tags that occurs exactly once, less 0.001 per character after ``</answer>``
    (at most 0.25), never below 0.

    >>> xml_count_reward(["<think>x</think><answer>B</answer>", "<think>x</think>"])
    [1.0, 0.5]
    """

    def score(text: str, i: int) -> float:
        total = sum(0.25 for tag in TAGS if text.count(tag) == 1)
        end = text.rfind("</answer>")
        if end != -1:
            trailing = len(text[end + len("</answer>") :].strip())
            total -= min(TRAILING_PENALTY_MAX, TRAILING_PENALTY_PER_CHAR * trailing)
        return max(0.0, total)

    return _safe(score, completions)


def choice_reward(completions: Sequence[Any], options: Any = None, **kwargs: Any) -> list[float]:
    """1.0 iff the ``<answer>`` tag commits to exactly one of the question's options (right or wrong; a number for
    questions without options), read by the shared extractor's strict rule, so no hedge or negation pays. Not one
    of the paper's rewards: the format reward alone is met by ``<answer> DNA here </answer>``, which answers
    nothing, and a small model climbs that first (seen on SmolLM2-135M); the CPU demo adds this one.

    >>> choice_reward(["<answer>B</answer>", "<answer>B or C</answer>", "<answer>DNA</answer>"],
    ...               options=['{"A": "RNA", "B": "Iron", "C": "Zinc"}'] * 3)
    [1.0, 0.0, 0.0]
    """

    def score(text: str, i: int) -> float:
        opts = _options(_column(options, i))
        found = extract_choice(text, opts, ("answer_tag",)) if opts else extract_number(text, ("answer_tag",))
        return 1.0 if found.answer is not None else 0.0

    return _safe(score, completions)


REWARDS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "xml_count": xml_count_reward,
    "choice": choice_reward,
}


def get_reward(name: str) -> Callable[..., list[float]]:
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}") from None


def compute_score(data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None) -> float:
    """verl's custom reward (``custom_reward_function.path`` = this file's module, ``name`` = compute_score):
    the accuracy reward, with the options read from ``extra_info["options"]`` when present."""
    try:
        options = extra_info.get("options") if isinstance(extra_info, Mapping) else None
        return 1.0 if is_correct(completion_text(solution_str), ground_truth, options) else 0.0
    except Exception:
        return 0.0
