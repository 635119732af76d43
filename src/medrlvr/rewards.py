"""Rewards for RLVR, in TRL's form ``fn(completions, **dataset_columns) -> list[float | None]`` and verl's
``compute_score(data_source, solution_str, ground_truth, extra_info=None)``.

The three rewards of Open-Medical-R1 (section 3.1): format, accuracy and XML count. Completions may be
plain strings or chat messages (``[{"role": "assistant", "content": ...}]``), and a reward that cannot score a row
returns None, which is not 0.0: the accuracy reward for a row with no gold answer. TRL 1.x turns None into NaN and
sums rewards with ``nansum`` (a row every reward leaves None is warned about); verl's ``compute_score`` has no None
and scores 0.0.

**Only a clean answer pays.** The accuracy reward, the choice reward and verl's ``compute_score`` read a multiple-
choice answer with the strict answer grammar (:mod:`medrlvr.extract.grammar`): the ``<answer>`` content must be one
option reference ("B", "(B)", "B. Heparin", "Heparin", "option b") with at most an answer frame of the benchmarks'
languages around it ("The answer is B", "答案是B", "Antwort: B", "B is correct"). A direction control anywhere in
it, or an invisible character inside a word, pays 0; so does anything else: a word outside the frame, a second
option, a symbol ("A ✗"), and a second ``<answer>`` or ``</answer>`` tag anywhere in the completion. A completion
without answer tags is read the same way from its ``\\boxed{}``, or from the line after its answer cue up to a
reason ("The answer is B because ..."). This replaced refusing what a list of negations matches, which leaked:
"A is a distractor", "A scheidet aus" and "¬A" were paid for the letter they reject. Numbers (GSM8K) are read as
before, from one answer block. Evaluation keeps its own readings, flexible and strict side by side
(:mod:`medrlvr.evaluate`).

No reward raises on any input a model or a dataset can produce (bytes, numpy arrays and scalars, chat
messages, None, huge text): inputs are normalised first (:func:`completion_text`, :func:`as_text`), so the
readers only ever see strings. An exception inside a reward is a bug and propagates; it is never read as 0.0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .extract import (
    as_text,
    canonical_number,
    extract_answer,
    extract_choice,
    extract_number,
    normalize_options,
)  # fmt: skip
from .records import LETTERS

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
TRAILING_PENALTY_PER_CHAR = 0.001  # xml_count: text after </answer> costs this much per character ...
TRAILING_PENALTY_MAX = 0.25  # ... up to one tag's worth
_MAX_JSON = 100_000  # an options column longer than this is not options (and json.loads recurses on nesting)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, UTF-8 bytes, or the non-user messages of a chat completion, joined
    (a message's content a string, or a list of ``{"type": "text", "text": ...}`` parts). Anything else is the
    empty string, which scores 0.0."""
    if isinstance(completion, Mapping):
        return _content(completion.get("content"))
    if isinstance(completion, (list, tuple)):  # one level: a chat is a list of messages, not of chats
        messages = (m for m in completion if not isinstance(m, Mapping) or m.get("role") != "user")
        return "".join(_content(m.get("content") if isinstance(m, Mapping) else m) for m in messages)
    return _content(completion)


def _content(content: Any) -> str:
    if isinstance(content, (list, tuple)):
        return "".join(as_text(part.get("text")) or "" for part in content if isinstance(part, Mapping))
    return as_text(content) or "" if isinstance(content, (str, bytes, bytearray)) else ""


def _column(values: Any, i: int) -> Any:
    """Row ``i`` of a dataset column; a bare string or mapping is the value of every row."""
    if values is None or isinstance(values, (str, bytes, bytearray, Mapping)):
        return values
    try:
        return values[i]
    except (IndexError, TypeError, KeyError):  # shorter than the batch, or not indexable
        return None


def _options(value: Any) -> dict[str, str]:
    if isinstance(value, (bytes, bytearray)):
        value = as_text(value)
    if isinstance(value, str):  # a JSON-encoded column (parquet, verl extra_info)
        if len(value) > _MAX_JSON:
            return {}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    if isinstance(value, (Mapping, list, tuple)) or hasattr(value, "tolist"):  # a numpy array too
        return normalize_options(value)
    return {}


def gold_text(gold: Any) -> str | None:
    """The gold answer as text, or None when the row has none (missing, blank, NaN, not text): cannot score."""
    text = as_text(gold)
    return text.strip() or None if text is not None else None


def is_correct(text: str, gold: str, options: Any = None) -> bool:
    """Whether a completion's answer, read as the training rewards read it (``grammar=True``: one answer block, and
    for letters the strict answer grammar), equals the gold answer (a letter, or a number for GSM8K)."""
    opts = _options(options)
    if not opts and len(gold) == 1 and gold.upper() in LETTERS:
        # A letter answer with no options column: take the letters up to the gold's as the options.
        opts = {letter: "" for letter in LETTERS[: max(4, LETTERS.index(gold.upper()) + 1)]}
    if opts:
        return extract_answer(text, opts, grammar=True) == gold.upper()
    answer = extract_answer(text, grammar=True)
    return answer is not None and answer == canonical_number(gold)


def _as_list(completions: Any) -> list[Any]:
    """The batch as a list: None is empty; one string, bytes or message is a batch of one; any iterable (a
    numpy array too, whose truth value would raise) is listed; anything else is one unreadable completion."""
    if completions is None:
        return []
    if isinstance(completions, (str, bytes, bytearray, Mapping)) or not isinstance(completions, Iterable):
        return [completions]
    if getattr(completions, "ndim", 1) == 0:  # a 0-d numpy array: iterating it raises
        return [completions.item()]
    return list(completions)


def _score(score: Callable[[str, int], float | None], completions: Any) -> list[float | None]:
    """One score per completion, each read from its text. Nothing is caught: a reward that fails is a bug."""
    return [score(completion_text(c), i) for i, c in enumerate(_as_list(completions))]


def accuracy_reward(
    completions: Sequence[Any], answer: Sequence[Any] | None = None, options: Any = None, **kwargs: Any
) -> list[float | None]:
    """1.0 iff the answer, read strictly (:func:`is_correct`), equals the gold ``answer`` column, else 0.0; None for
    a row without a gold answer (cannot score, which TRL leaves out of the sum).

    >>> accuracy_reward(["<answer>B</answer>", "<answer>B ✗</answer>", "B"], answer=["B", "B", None])
    [1.0, 0.0, None]
    """

    def score(text: str, i: int) -> float | None:
        gold = gold_text(_column(answer, i))
        if gold is None:
            return None
        return 1.0 if is_correct(text, gold, _column(options, i)) else 0.0

    return _score(score, completions)


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

    return _score(score, completions)


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

    return _score(score, completions)


def choice_reward(completions: Sequence[Any], options: Any = None, **kwargs: Any) -> list[float]:
    """1.0 iff the one ``<answer>`` block commits to exactly one of the question's options (right or wrong; a number
    for questions without options), read by the strict answer grammar, so only a clean answer pays. Not one
    of the paper's rewards: the format reward alone is met by ``<answer> DNA here </answer>``, which answers
    nothing, and a small model climbs that first (seen on SmolLM2-135M); the CPU demo adds this one.

    >>> choice_reward(["<answer>B</answer>", "<answer>B or C</answer>", "<answer>DNA</answer>"],
    ...               options=['{"A": "RNA", "B": "Iron", "C": "Zinc"}'] * 3)
    [1.0, 0.0, 0.0]
    """

    def score(text: str, i: int) -> float:
        opts = _options(_column(options, i))
        if opts:
            found = extract_choice(text, opts, ("answer_tag",), grammar=True)
        else:
            found = extract_number(text, ("answer_tag",), grammar=True)
        return 1.0 if found.answer is not None else 0.0

    return _score(score, completions)


REWARDS: dict[str, Callable[..., list[float | None]]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "xml_count": xml_count_reward,
    "choice": choice_reward,
}


def get_reward(name: str) -> Callable[..., list[float | None]]:
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}") from None


def compute_score(data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None) -> float:
    """verl's custom reward (``custom_reward_function.path`` = this file's module, ``name`` = compute_score):
    the accuracy reward (a clean answer only), with the options read from ``extra_info["options"]`` when present.
    verl wants a float for every row, so a row without a gold answer scores 0.0 here."""
    gold = gold_text(ground_truth)
    options = extra_info.get("options") if isinstance(extra_info, Mapping) else None
    return 1.0 if gold is not None and is_correct(completion_text(solution_str), gold, options) else 0.0
