"""The strict answer grammar of the training rewards: a span pays only when it is one clean option reference.

The flexible reader (:func:`medrlvr.extract.resolve_choice`) reads a span for what it means and refuses what its word
lists call a negation or a hedge, and lists leak: "A ✗", "¬A", "A is a distractor", "A scheidet aus", "A est fausse"
and a right-to-left override that displays as "not A" were all paid for the letter they reject. A reward is what a
GRPO policy climbs, so the training rewards turn the rule round: they pay what this grammar accepts, and nothing
else. Evaluation keeps the flexible reader beside the strict one, as lm-evaluation-harness reports strict and
flexible matches side by side.

:func:`strict_choice` reads one answer span (the content of the one ``<answer>`` block, a ``\\boxed{}``, or the line
after an answer cue), in this order:

1. **One option's text exactly as written** is that option (CMMLU has an option "A：", which NFKC makes "A:"; a
   dataset's text may hold an invisible character of its own).
2. **Clean characters.** A span holding a direction control (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)
   is None: it can display as something other than what is read ("\\u202eA ton" displays as "not A"). So is a span
   with an invisible character (zero-width space or joiner, word joiner, soft hyphen, BOM ...) between two visible
   ones ("n\\u200bot A"): it hides a word. Invisible characters at the ends or next to white space are dropped.
3. The span is then normalised as the flexible reader does (:func:`medrlvr.extract.choice.prepare`): NFKC (``Ｂ`` is
   ``B``), look-alike Cyrillic and Greek capitals as Latin, markdown (``**``, ``__``, backticks), ``$`` and LaTeX
   that only formats (``\\text{}``, ``\\textbf{}``, ``\\boxed{}``) dropped, a strike-out (``~~B~~``, ``\\sout``,
   ``B̶``) and ``\\neq`` read as "not", white space collapsed. What is left must be, whole::

       span      := frame* reference suffix? end?
       frame     := "The answer is", "The correct option is", "Answer:", "Final answer:", "答案是", "答案：",
                    "正确选项是", "故选", "Die Antwort ist", "Antwort:", "La réponse est", "Réponse :",
                    "La respuesta es", "Respuesta:", "La risposta è", "A resposta é", "Het antwoord is",
                    "Antwoord:" ... (language.FRAMES_IS, FRAMES_COLON, FRAMES_CJK; "### " may open one)
       suffix    := "is correct", "is the correct answer", "ist richtig", "est correcte", "项", "正确" ...
                    (language.SUFFIXES, SUFFIXES_CJK)
       reference := letter                      "B", an option letter
                  | text                        one option's text, whole, naming exactly one option
                  | keyword? bracketed letter    "(B)", "[B]", "【B】", "B)", "option B", "Choice (a)", "选项B"
                  | keyword? letter sep text     "B. Heparin", "(B) Heparin", "B (Heparin)": that letter's text
                  | text (letter)               "Heparin (B)"
                  | a pair of quotes or brackets around a reference
       end       := . ! 。 : (any of them, never ?), or an end-of-sequence token a decoder left ("</s>")

   Frames, suffixes and wrappers come off one at a time, at most ``MAX_PEELS`` of them. A lowercase letter is a
   letter only when no option's text is itself a single letter (MedMCQA); case does not matter in frames, keywords
   and texts.
4. After an answer cue (``line=True``: "The answer is B because ..."), a reason ("because", "since", "weil",
   "porque", "因为" ...: ``language.REASONS``) ends the answer, and the span is read up to it. Nothing else is cut:
   "The answer is B. Or C." and "The answer is C. Warfarin inhibits ..." are read whole, and refused.

Anything else is None: a second option, a word outside a frame ("avoid A", "A is implausible", "A valt af"), a
symbol ("A ✗", "≠ A", "¬A"), a question mark, a strike-out, a negation. Every regular expression here is anchored
at an end of a span of at most ``MAX_SPAN`` characters and has no nested quantifier, and a span is peeled at most
``MAX_PEELS`` times: linear time. :func:`strict_choice` never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

from . import language
from .choice import _soft, normalize_options, prepare
from .spans import MAX_SPAN

MAX_PEELS = 4  # frames, suffixes and wrappers taken off one span ("Answer: The correct option is **(B)**" is 3)

# Direction controls: what displays is not what is read
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Invisible characters between two visible ones hide a word; at the ends or next to a space they are dropped
# (prepare() deletes them)
_HIDDEN = re.compile("(?<=\\S)[\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff]+(?=\\S)")

_FRAME = re.compile(
    r"(?:#+ ?)?(?:"
    + "|".join(f"(?i:{p})" for p in language.FRAMES_IS.values())
    + r")(?!\w)(?: ?:)?|(?:#+ ?)?(?:"
    + "|".join(f"(?i:{p})" for p in language.FRAMES_COLON.values())
    + r") ?:|"
    + "|".join(language.FRAMES_CJK)
)
_SUFFIX = re.compile(
    r"(?: (?i:" + "|".join(language.SUFFIXES.values()) + r")| ?(?:" + "|".join(language.SUFFIXES_CJK) + r"))$"
)
_SUFFIX_WINDOW = 64  # the longest suffix is shorter: the search for one looks at the span's last characters only
_END = ".!。:"
# An end-of-sequence token that a decoder left in the text says nothing ("The answer is B</s>")
_EOS = re.compile(r"(?:</s>|<eos>|<end_of_turn>|<\|[a-z_]{1,20}\|>)$")
_KEYWORD = "|".join(language.OPTION_WORDS)
_BRACKETED = r"\((?P<p>\w)\)|\[(?P<s>\w)\]|【(?P<c>\w)】|(?P<b>\w)\)?"
# a letter, then nothing or a separator and its text ("B. Heparin", "(B) -PCR", "B (Heparin)")
_LETTER = re.compile(rf"(?:(?i:{_KEYWORD}) ?[:#]? ?)?(?:{_BRACKETED})(?P<text>[ .:\-–—].*)?")
_TEXT_LETTER = re.compile(r"(?P<text>.+?) ?(?:\((?P<p>\w)\)|\[(?P<s>\w)\])")
_SEPARATORS = ".:-–—"
_PAIRS = {"()", "[]", "【】", '""', "''", "“”", "‘’", "«»", "「」", "『』"}


class Table(NamedTuple):
    """One set of options, as the grammar compares them (built once per set)."""

    letters: tuple[str, ...]
    written: dict[str, str]  # letter -> text as written (NFKC, casefolded, spaces collapsed)
    plain: dict[str, str]  # letter -> text prepared as a span is, casefolded, without end marks
    lowercase: bool  # a lowercase letter can be a letter: no option's text is a single letter


@lru_cache(maxsize=512)
def _table(items: tuple[tuple[str, str], ...]) -> Table:
    plain = {k: _strip_end(prepare(v)).casefold() for k, v in items}  # a span's end marks are stripped too
    return Table(
        letters=tuple(k for k, _ in items),
        written={k: _soft(v) for k, v in items},
        plain=plain,
        lowercase=not any(len(t) == 1 and t.isalpha() for t in plain.values()),
    )


def _strip_end(s: str, end: str = _END) -> str:
    """Trailing white space and closing marks ("The answer is B.." is B: the form "B." ends a sentence)."""
    return s.rstrip().rstrip(end).rstrip()


def _one(hits: list[str]) -> str | None:
    return hits[0] if len(hits) == 1 else None


def _letter(m: re.Match, table: Table) -> str | None:
    """The option a letter match names: a real option letter (lowercase only where it can be one), whose text, if
    written after it, is that option's text."""
    groups = m.groupdict()
    letter = groups["p"] or groups["s"] or groups.get("c") or groups.get("b") or ""
    if not (letter.isascii() and letter.isalpha()) or letter.upper() not in table.letters:  # not "ı" for I
        return None
    if letter.islower() and not table.lowercase:
        return None
    text = m.group("text")
    if text is not None and table.plain[letter.upper()] not in _texts(text):
        return None
    return letter.upper()


def _texts(written: str) -> set[str]:
    """What an option's text after its letter may be: the rest, without a separator ("B. Heparin"), without a pair
    of brackets or quotes around it ("B (Heparin)"), casefolded; the rest as it is too ("(B) -PCR", "C. (1,6)")."""
    text = written.strip()
    found = {text}
    if text[:1] in _SEPARATORS:
        found.add(text[1:].strip())
    found.update(t[1:-1].strip() for t in list(found) if len(t) > 2 and t[0] + t[-1] in _PAIRS)
    return {t.casefold() for t in found}


def _reference(s: str, table: Table) -> str | None:
    """The option a whole string names, or None (the ``reference`` rule of the module docstring)."""
    for _ in range(MAX_PEELS):
        s = s.strip()
        if not s:
            return None
        if s in table.letters:  # before texts: CMMLU's option "A：" prepares to "A:", and "A" is the letter
            return s
        found = _one([k for k, t in table.plain.items() if t and t == s.casefold()])
        if found is None:
            m = _LETTER.fullmatch(s) or _TEXT_LETTER.fullmatch(s)
            found = _letter(m, table) if m else None
        if found is not None:
            return found
        if len(s) < 2 or s[0] + s[-1] not in _PAIRS:
            return None
        s = _strip_end(s[1:-1])  # "(B.)"
    return None


def _read(s: str, table: Table) -> str | None:
    """``frame* reference suffix? end?``: take frames off the start and a suffix off the end until what is left is a
    reference."""
    for _ in range(MAX_PEELS + 1):
        s = s.strip()
        found = _reference(s, table)
        if found is not None:
            return found
        frame = _FRAME.match(s)
        if frame and frame.end():
            s = s[frame.end() :]
            continue
        suffix = _SUFFIX.search(s, max(0, len(s) - _SUFFIX_WINDOW))
        if suffix is None:
            return None
        s = s[: suffix.start()]
    return None


def strict_choice(
    span: str, options: Mapping[str, str | None] | Sequence[str] | None, line: bool = False
) -> str | None:
    """The option letter a span is, by the grammar of the module docstring, or None. ``line=True`` is for the line
    after an answer cue: a reason ends it ("B because A is not ...").

    >>> opts = {"A": "Aspirin", "B": "Heparin"}
    >>> [strict_choice(s, opts) for s in ["B", "The answer is (B).", "B. Heparin", "heparin", "A ✗", "avoid A"]]
    ['B', 'B', 'B', 'B', None, None]
    """
    if not isinstance(span, str) or len(span) > MAX_SPAN:
        return None
    opts = normalize_options(options)
    if not opts:
        return None
    table = _table(tuple(opts.items()))
    if len(span.strip()) > 1:  # an option's text exactly as written (its invisible characters are the dataset's)
        found = _one([k for k, t in table.written.items() if t and t == _soft(span)])
        if found is not None:
            return found
    if _BIDI.search(span) or _HIDDEN.search(span):
        return None
    text = prepare(span)
    eos = _EOS.search(text, max(0, len(text) - 32))
    text = text[: eos.start()] if eos else text
    found = _read(_strip_end(text), table)
    if found is not None or not line:
        return found
    reason = language.REASON.search(text)
    return _read(_strip_end(text[: reason.start()].rstrip(" ,;-–—")), table) if reason else None
