"""Reading numbers (GSM8K): the one number a span states, compared by value."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from . import language
from .choice import prepare
from .spans import LINE, MAX_SPAN

MAX_DIGITS = 60  # a longer number is not an answer, and int() refuses to print past 4,300 digits

# A run of digits and commas, perhaps with decimals; whether the commas group thousands is decided in Python.
# "^" before a digit is an exponent ("cm^2"), a letter or digit before it makes it part of a word ("CO2").
_NUMBER_RUN = re.compile(r"(?<![\w.^])(-?)(\d[\d,]*(?:\.\d+)?|\.\d+)")
_HEDGE_BEFORE = re.compile(
    r"\d\s*(?:[,/&+-]|\b(?:or|and|to|nor)\b)\s*(?:(?:maybe|perhaps|possibly|probably)\s+)?[(\[]?\s*-?$", re.IGNORECASE
)


def canonical_number(text: str) -> str | None:
    text = str(text).replace("$", "").replace(",", "").replace(" ", "").strip()
    if len(text) > MAX_DIGITS:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value.adjusted()) > MAX_DIGITS:  # "1e999999999" would print a billion digits
        return None
    value = value.normalize()
    return f"{value:f}" if value != value.to_integral_value() else str(int(value))


def _frac_value(m: re.Match) -> str:
    num, den = int(m.group(2)), int(m.group(3))
    if den == 0:
        return " undefined "
    value = Decimal(-num if m.group(1) else num) / Decimal(den)
    return f" {canonical_number(str(value)) or 'undefined'} "


def _prepare_numbers(span: str) -> str:
    return prepare(span, numbers=True, frac=_frac_value)


def _run_numbers(sign: str, run: str) -> list[str | None]:
    """The numbers one digit run states: "1,234.5" is one, "18,19" two. Canonical strings; None for junk."""
    run = run.rstrip(",")
    head, dot, tail = run.partition(".")
    groups = head.split(",")
    if len(groups) == 1 or (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
        return [canonical_number(sign + "".join(groups) + dot + tail)]
    parts = [g for g in groups if g]
    parts[-1] += dot + tail
    return [canonical_number((sign if i == 0 else "") + p) for i, p in enumerate(parts)]


def resolve_number(span: str, line: bool = False) -> str | None:
    """The one number a span states, as a canonical string ("1,234.50" -> "1234.5"), or None."""
    if not isinstance(span, str) or len(span) > MAX_SPAN:
        return None
    text = _prepare_numbers(span)
    if line:
        first = _NUMBER_RUN.search(text)
        if first is None:
            return None
        end = language.CLAUSE_END.search(text, first.end())
        text = text[: end.start()] if end else text
    text = text.rpartition("=")[2]  # an equation states its result last
    if language.NEGATION.search(text) or language.DANGLING.search(text):
        return None
    numbers = {n for m in _NUMBER_RUN.finditer(text) for n in _run_numbers(m.group(1), m.group(2))}
    return numbers.pop() if len(numbers) == 1 and None not in numbers else None


def parse_number(span: str) -> str | None:
    """The number a short span states, as a canonical string ("1,234.50" -> "1234.5"), or None."""
    return resolve_number(span)


def last_number(body: str) -> tuple[bool, str | None]:
    """Whether the text holds a number, and its last number unless a hedge or a negation is next to it ("18 or
    19", "not 18")."""
    window = _prepare_numbers(body[-MAX_SPAN:])
    last = None
    for last in _NUMBER_RUN.finditer(window):  # noqa: B007 (the loop leaves the last match in `last`)
        pass
    if last is None:
        return False, None
    numbers = set(_run_numbers(last.group(1), last.group(2)))
    before = window[max(0, last.start() - 40) : last.start()]
    before = re.split(r"[.!?;](?:\s|$)", before)[-1]  # the sentence it ends
    after = window[last.end() :]
    end = language.CLAUSE_END.search(after)
    after = after[: end.start()] if end else after[:LINE]
    if (
        len(numbers) != 1
        or None in numbers
        or _HEDGE_BEFORE.search(before)
        or language.NEGATION.search(before + after)
    ):
        return True, None
    return True, numbers.pop()
