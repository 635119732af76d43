"""The one record type every benchmark becomes at load time.

Everything downstream (prompts, filter, select, train, evaluate) consumes :class:`Record` and nothing else,
so a new benchmark only needs an adapter from its rows to this type.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import UserError

LETTERS = string.ascii_uppercase[:10]  # A-J: MMLU-Pro and MedXpertQA have up to ten options


@dataclass(frozen=True, eq=False)
class Record:
    """One question. Equality and hash go by ``id`` (ids are unique within a benchmark).

    ``options`` maps letters (A, B, ... consecutive from A) to option text; it is empty for GSM8K, whose
    ``answer`` is the final number as a string. For multiple choice, ``answer`` is one of the letters.
    ``explanation`` is the data's own rationale where it has one (used as the SFT target).
    """

    id: str
    question: str
    options: Mapping[str, str]
    answer: str
    subject: str = ""
    source: str = ""
    split: str = ""
    explanation: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"field '{name}' must be a non-empty string, got {value!r}")
        for name in ("subject", "source", "split"):
            if not isinstance(getattr(self, name), str):
                raise UserError(f"field '{name}' must be a string (or left out), got {getattr(self, name)!r}")
        if not isinstance(self.options, Mapping):
            raise UserError(f"field 'options' must be a mapping of letters to option text, got {self.options!r}")
        options = dict(self.options)
        if not options and self.answer.strip() in LETTERS:  # a letter answer with nothing to choose from
            raise UserError(
                f"field 'options' is empty but the answer is the letter {self.answer!r}; give 2 to 10 options"
            )
        if options:
            if not 2 <= len(options) <= 10:
                raise UserError(f"field 'options' must hold 2 to 10 options, got {len(options)}")
            expected = list(LETTERS[: len(options)])
            if list(options) != expected:
                raise UserError(f"field 'options' must be lettered {''.join(expected)}, got {''.join(options)}")
            for letter, text in options.items():
                if not isinstance(text, str) or not text.strip():
                    raise UserError(f"field 'options' has an empty option {letter}")
            if self.answer not in options:
                raise UserError(f"field 'answer' is {self.answer!r}, not one of the options {''.join(options)}")
        # A read-only view keeps the record truly frozen.
        object.__setattr__(self, "options", MappingProxyType(options))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.options)

    @property
    def answer_text(self) -> str:
        """The gold option's text (the number itself for GSM8K)."""
        return self.options[self.answer] if self.options else self.answer

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        missing = [k for k in ("id", "question", "options", "answer") if k not in data]
        if missing:
            raise UserError(f"field '{missing[0]}' is missing")
        return cls(**known)
