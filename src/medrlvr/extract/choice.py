"""Reading one answer span for the option it names, or None (the rules are in the package docstring)."""

from __future__ import annotations

import itertools
import numbers
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

from ..records import LETTERS
from . import language
from .language import WORD
from .spans import MAX_SPAN

# An answer names its option once or twice ("B. Heparin (B)"); a span that names options more often than this is
# repetition, not an answer ("Answer: A or Answer: A or ...").
MAX_MENTIONS = 8
PUNCT = " \t\n.,;:!?*`'\"()[]{}$\\"
_MARK = "\x00"  # brackets an option's index where its text stood; removed from the input first
# LaTeX that means "not": kept as a word so that \boxed{\neq A} is a negation, not the letter A
_LATEX_NOT = re.compile(r"\\(?:neq|ne|not|lnot|neg|notin)(?![A-Za-z])")
# LaTeX that only formats: dropped, with its braces (\text{\textbf{B}} is B)
_LATEX_FORMAT = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|mathsf|mathtt|operatorname|mbox|emph|"
    r"underline|boxed|fbox|bf|it|rm|left|right|displaystyle|quad|qquad)(?![A-Za-z])"
)
_FORMAT_CHARS = str.maketrans("", "", "{}$`*")
# Invisible characters (zero-width spaces and joiners, soft hyphens, bidirectional marks) and Cyrillic or Greek
# letters that look like Latin ones would hide a word from the reader: "n\u200bot A" and "nоt A" (Cyrillic о)
# display as "not A".
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТХУІЈаеорсухіјΑΒΕΖΗΙΚΜΝΟΡΤΥΧο",
    "ABEKMHOPCTXYIJaeopcyxijABEZHIKMNOPTYXo",
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff",
)
_FRAC = re.compile(r"(-\s*)?\\[dt]?frac\s*\{\s*(-?\d{1,30})\s*\}\s*\{\s*(-?\d{1,30})\s*\}")


def prepare(span: str, numbers: bool = False, frac=None) -> str:
    """One span as plain text: NFKC (full-width letters and digits become ASCII), look-alike letters as Latin,
    invisible characters dropped, a strike-out read as "not", LaTeX and markdown dropped, white space collapsed.
    For numbers, ``\\frac{a}{b}`` becomes its value (``frac`` renders it) first."""
    span = unicodedata.normalize("NFKC", span).translate(_LOOKALIKES).replace(_MARK, "").replace("\u2212", "-")
    span = language.STRIKE.sub(" not ", span)
    span = _LATEX_NOT.sub(" not ", span)
    if numbers:
        span = _FRAC.sub(frac, span).replace("{,}", ",").replace("\\,", "").replace("\\!", "")
    span = _LATEX_FORMAT.sub(" ", span).replace("__", "").translate(_FORMAT_CHARS)
    return " ".join(span.split())


# A capital letter standing alone ("B", "选B"); "I think" is the pronoun. A hyphen joins ("B-cell" is a word).
_UPPER = re.compile(
    rf"(?<!{WORD})(?<![\x00'’-])(?:([A-HJ])|(I)(?!\s+(?:think|believe|am|would|guess|feel|will|have|had|was|can|"
    r"could|do|did|should|must|need|chose|choose|pick|picked|select|say|agree|conclude|suspect|know|recall|see)\b))"
    rf"(?!{WORD}|[\x00'’]|-\w)"
)
# Lowercase letters only where a letter is meant: after a keyword, in brackets, or not before another word
_LOWER_KEYWORD = re.compile(r"(?i:\b(?:option|choice|letter)s?)\s*[:#.]?\s*[(\[]?([a-j])(?![\w'’])")
_LOWER_BRACKET = re.compile(r"(?<![\w'’])[(\[]?([a-j])[)\]]")
_LOWER = re.compile(
    r"(?<![\w\x00'’.-])([a-j])(?![\w\x00'’]|-\w|\.\w)"
    r"(?!\s+(?!(?:or|and|nor|is|are|was|were|vs|versus|seems|could|might|may|also|too|then|plus)\b)[^\W\d_])"
)
_OPTION_MARK = re.compile(r"\x00(\d*)\x00")  # an empty mark is a text two options share
_NAMED_MARK = re.compile(r"\x00\d+\x00")


class Options(NamedTuple):
    """What a question's options need for reading spans, built once per set of options."""

    letters: tuple[str, ...]
    soft: dict[str, str]  # letter -> text as written (casefolded, spaces collapsed)
    norm: dict[str, str]  # letter -> text prepared and stripped of punctuation
    finder: re.Pattern | None  # whole option texts inside a span, one named group per option
    alternation: str  # the finder's option texts, for the finder of text in an unspaced script
    lowercase: bool  # lowercase letters can be letters (no option's text is a single letter)


@lru_cache(maxsize=512)
def options_for(items: tuple[tuple[str, str], ...]) -> Options:
    letters = tuple(k for k, _ in items)
    prepared = tuple(prepare(v).strip(PUNCT) for _, v in items)
    folded = [t.casefold() for t in prepared]
    # A text shared by two options (after cleaning: "!(a == b)" and "a == b") names neither, but it is still
    # masked ("n"), so that its words are not read as letters or negations.
    findable = [
        (f"{'o' if folded.count(t.casefold()) == 1 else 'n'}{i}", t) for i, t in enumerate(prepared) if len(t) >= 2
    ]
    # the longest text wins where two overlap ("Vitamin A" in "Vitamin A deficiency")
    findable.sort(key=lambda it: -len(it[1]))
    # whole texts: not inside a longer word (\w: any script; the finder for text with kana, ideographs or Hangul,
    # which are written without spaces, is compiled on first need: "答案是阿司匹林")
    alternation = "|".join(f"(?P<{name}>{re.escape(t)})" for name, t in findable)
    finder = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE) if findable else None
    return Options(
        letters=letters,
        soft={k: _soft(v) for k, v in items},
        norm={k: t.casefold() for k, t in zip(letters, prepared)},
        finder=finder,
        alternation=alternation,
        lowercase=not any(len(t) == 1 and t.isalpha() for t in prepared),
    )


_UNSPACED = re.compile(f"[{language.CJK}]")


@lru_cache(maxsize=512)
def _unspaced_finder(alternation: str) -> re.Pattern:
    """Option texts that may touch kana, ideographs or Hangul: a word boundary is any character outside a spaced
    script's words. Compiling that class costs milliseconds (its ranges), so it is only built for such text."""
    return re.compile(rf"(?<!{WORD})(?:{alternation})(?!{WORD})", re.IGNORECASE)


def _finder(opts: Options, text: str) -> re.Pattern:
    """The options' finder for ``text``: without kana, ideographs or Hangul in it, ``\\w`` boundaries are the same
    boundaries and far cheaper to compile."""
    return _unspaced_finder(opts.alternation) if _UNSPACED.search(text) else opts.finder


def _soft(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).rstrip(".")


def as_text(value: object) -> str | None:
    """A dataset value as text: a string, UTF-8 bytes, or a number (numpy scalars too); None for anything else
    (None, NaN, containers, objects), so that no value's ``__str__`` is ever called."""
    if isinstance(value, str):
        return str.__str__(value)  # a plain str, also for numpy's str_
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        text = str(value)
        return None if text.lstrip("+-").lower() in ("nan", "snan") else text  # a missing value (pandas)
    return None


def normalize_options(options: Mapping[str, str | None] | Sequence[str] | None) -> dict[str, str]:
    """Options as letter -> text, whatever form a dataset column gives them in: a mapping, or a sequence (a numpy
    array too) read as A, B, C ... Entries that are not text (None in a padded struct column) are dropped."""
    if isinstance(options, Mapping):
        pairs = ((as_text(k), as_text(v)) for k, v in options.items())
        return {k.strip().upper(): v for k, v in pairs if k is not None and k.strip() and v is not None}
    if (
        isinstance(options, (bytes, bytearray))
        or not isinstance(options, Iterable)
        or getattr(options, "ndim", 1) == 0
    ):
        return {}
    texts = (as_text(v) for v in itertools.islice(options, len(LETTERS)))
    return {letter: v for letter, v in zip(LETTERS, texts) if v is not None}


def _mentions(masked: str, opts: Options) -> list[str]:
    """Every option letter a masked span names, once per naming: texts (already replaced by marks), capitals,
    lowercase letters (a lowercase letter may be counted twice: "option b" is a keyword and a lone letter)."""
    found = [opts.letters[int(i)] for i in _OPTION_MARK.findall(masked) if i]
    found += [m.group(1) or m.group(2) for m in _UPPER.finditer(masked)]
    if opts.lowercase:
        for pattern in (_LOWER_KEYWORD, _LOWER_BRACKET, _LOWER):
            found += [x.upper() for x in pattern.findall(masked) if x.upper() in opts.letters]
    return found


def _mark(m: re.Match) -> str:
    """An option's text -> its index between marks; a text two options share -> an empty mark."""
    return f" {_MARK}{m.lastgroup[1:] if m.lastgroup[0] == 'o' else ''}{_MARK} "


def _first_mention(masked: str, opts: Options) -> int | None:
    """Where the first option named in a masked span ends (a cue's answer clause is read on from there)."""
    patterns = (_NAMED_MARK, _UPPER) + ((_LOWER_KEYWORD, _LOWER_BRACKET, _LOWER) if opts.lowercase else ())
    ends = [m.end() for m in (p.search(masked) for p in patterns) if m]
    return min(ends) if ends else None


def _whole(span: str, text: str, opts: Options) -> str | None:
    """The option a whole span is: one option's text exactly as written (CMMLU has an option "A：", which NFKC
    would make the letter A), else one letter, else one option's text after cleaning."""
    soft, bare = _soft(span), text.strip(PUNCT)
    written = [letter for letter, t in opts.soft.items() if t and t == soft]
    if len(written) == 1 and len(span.strip()) > 1:
        return written[0]
    if len(bare) == 1 and bare in opts.letters:
        return bare
    for compare, table in ((soft, opts.soft), (bare.casefold(), opts.norm)):
        hits = [letter for letter, t in table.items() if t and t == compare]
        if len(hits) == 1:
            return hits[0]
    if len(bare) == 1 and opts.lowercase and bare.upper() in opts.letters:
        return bare.upper()
    return None


def resolve_choice(span: str, options: Mapping[str, str], line: bool = False) -> str | None:
    """One answer span -> an option letter or None (the rules are in the package docstring).

    ``line=True`` is for a span cut from running text ("the answer is B because ..."): it is read up to the end
    of its first clause.
    """
    if not isinstance(span, str) or len(span) > MAX_SPAN:
        return None
    opts = options_for(tuple(normalize_options(options).items()))
    text = prepare(span)
    whole = _whole(span, text, opts)
    if whole is not None and not language.STRIKE.search(span):
        return whole
    masked = _finder(opts, text).sub(_mark, text) if opts.finder else text
    if line:
        first = _first_mention(masked, opts)
        if first is None:
            return None
        end = language.CLAUSE_END.search(masked, first)
        masked = masked[: end.start()] if end else masked
    if language.NEGATION.search(masked) or language.DANGLING.search(masked):
        return None
    found = _mentions(masked, opts)
    if len(found) > MAX_MENTIONS:
        return None
    letters = set(found)
    return letters.pop() if len(letters) == 1 and found[0] in opts.letters else None
