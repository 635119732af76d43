"""Answer extraction: one pure function, shared by the training rewards and by evaluation.

Multiple choice, in order; the first pattern that matches anywhere decides (later ones are not consulted):

1. ``answer_tag``   -- the content of ``<answer>...</answer>`` (the R1-Zero format, Open-Medical-R1 Fig. 2)
2. ``boxed``        -- the content of ``\\boxed{...}`` (the filter format, Fig. 1)
3. ``answer_is``    -- "the answer is (B)", "answer is: B"
4. ``answer_colon`` -- a line "Answer: B" / "Final answer: B"

Rules that hold for every pattern:

- Reasoning is not an answer: text inside ``<think>...</think>`` (or after an unclosed ``<think>``, or before a
  lone ``</think>`` when the prompt opened the tag) is removed before matching.
- Only the question's own option letters count; a letter that is not an option gives ``None``.
- The text of an option counts as that option ("Aspirin" for "B. Aspirin").
- A hedge gives ``None``: two different letters in one answer ("A or B"), or several matches of the deciding
  pattern that disagree (two answer tags with different letters).
- Unparseable gives ``None``; never a guess. More than ``MAX_MATCHES`` matches of the deciding pattern is
  unparseable too (a completion that repeats answer cues is spamming, not answering).

Numbers (GSM8K): ``answer_tag``, then ``#### 42``, then ``boxed``, then "answer is 42", then the last number in
the text. Numbers compare by value (``18``, ``18.0``, ``$18`` and ``18 dollars`` agree).

Every scan here is linear in the length of the text: tags and braces are found with ``str.find`` and the few
regular expressions have no nested quantifiers, so a 100 KB adversarial completion costs milliseconds.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Iterable, Mapping, NamedTuple, Sequence

from .records import LETTERS

PATTERNS = ("answer_tag", "boxed", "answer_is", "answer_colon")
STRICT_PATTERNS = ("answer_tag", "boxed")  # the formats the two prompts ask for
NUMBER_PATTERNS = ("answer_tag", "hashes", "boxed", "answer_is", "last_number")

_MAX_SPAN = 2000  # an answer longer than this is not an answer (some law options run to 1,500 characters)
# More matches of one pattern than this is spam, not an answer: the completion is unparseable. It also bounds
# the work on adversarial text (100 KB of "the answer is " would otherwise be thousands of spans to read).
MAX_MATCHES = 16


class Extraction(NamedTuple):
    answer: str | None
    pattern: str | None  # the pattern that decided, even when it decided None (a hedge)


# --- text helpers -----------------------------------------------------------------------------------------


def strip_think(text: str) -> str:
    """Drop reasoning: ``<think>...</think>`` blocks, text after an unclosed ``<think>`` up to the first
    ``<answer>`` (an answer tag ends reasoning: answers written after an unclosed ``<think>`` still count, so they
    cannot hide a hedge), text before a lone ``</think>``."""
    close = text.rfind("</think>")
    if close != -1 and text.find("<think>") == -1:
        text = text[close + len("</think>") :]
    out, pos = [], 0
    last_close = text.rfind("</think>")  # past it no block closes: no rescans of the tail (linear time)
    while True:
        start = text.find("<think>", pos)
        if start == -1:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        end = text.find("</think>", start) if start < last_close else -1
        if end == -1:
            answer = text.find("<answer>", start)
            if answer == -1:
                break
            pos = answer
            continue
        pos = end + len("</think>")
    return "".join(out)


def tag_blocks(text: str, tag: str) -> list[str]:
    """Contents of every closed ``<tag>...</tag>`` block, outermost first-come."""
    open_, close = f"<{tag}>", f"</{tag}>"
    blocks, pos = [], 0
    while len(blocks) <= MAX_MATCHES:
        start = text.find(open_, pos)
        if start == -1:
            return blocks
        end = text.find(close, start + len(open_))
        if end == -1:
            return blocks
        inner = text[start + len(open_) : end]
        # "<answer><answer>B</answer>": the innermost open tag starts the block
        last_open = inner.rfind(open_)
        blocks.append(inner[last_open + len(open_) :] if last_open != -1 else inner)
        pos = end + len(close)
    return blocks


def boxed_blocks(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}``, with nested braces matched."""
    blocks, pos = [], 0
    while len(blocks) <= MAX_MATCHES:
        hits = [i for i in (text.find("\\boxed", pos), text.find("\\fbox", pos)) if i != -1]
        if not hits:
            return blocks
        start = min(hits)
        brace = start + (6 if text.startswith("\\boxed", start) else 5)
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace >= len(text) or text[brace] != "{":
            pos = brace
            continue
        depth, i = 0, brace
        while i < len(text):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if depth != 0:  # unbalanced to the end: nothing further can close
            return blocks
        blocks.append(text[brace + 1 : i])
        pos = i + 1
    return blocks


_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|operatorname)\s*\{([^{}]*)\}")
_LEAD = re.compile(r"(?i:option|choice)?\s*[(\[]?([A-Za-z])(?![A-Za-z0-9])[)\]]?[\s.:)\-]*(.*)", re.S)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'])([A-J])(?![A-Za-z0-9'])")
_HEDGE_AFTER = re.compile(r"\s*(?:,|/|&|(?i:or|and))\s*[(\[]?[A-J](?![A-Za-z0-9])")
_ANSWER_IS = re.compile(r"(?i:answer)\s+(?i:is|would\s+be|should\s+be)\s*:?[ \t]*")
_ANSWER_COLON = re.compile(r"(?m)^[ \t*#>_-]*(?i:final\s+|correct\s+)?(?i:answer)[ \t*_]*[:：][ \t]*")
_PUNCT = " \t\n.,;:!?*`'\"()[]{}$"


def _clean(span: str) -> str:
    span = _LATEX_WRAP.sub(r"\1", span)
    return span.replace("**", "").replace("__", "").replace("`", "").replace("$", "").strip()


def _soft(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".")


def _norm(text: str) -> str:
    """Compare texts after the same cleaning on both sides (markdown, $, LaTeX text wrappers, case, spaces)."""
    return " ".join(_clean(text).casefold().split()).strip(_PUNCT)


def normalize_options(options: Mapping[str, str | None] | Sequence[str] | None) -> dict[str, str]:
    """Options as letter -> text, whatever form a dataset column gives them in (None entries dropped)."""
    if not options:
        return {}
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items() if v is not None and str(k).strip()}
    return {letter: str(v) for letter, v in zip(LETTERS, options) if v is not None}


def resolve_choice(span: str, options: Mapping[str, str], line: bool = False) -> str | None:
    """One answer span -> an option letter or None.

    ``line=True`` is for a span cut from running text ("the answer is B because ..."): only the leading
    letter and an immediate hedge ("B or C") are read, not the words after it.
    """
    span = (span[:_MAX_SPAN] if line else span).strip()
    if not span or len(span) > _MAX_SPAN:
        return None
    bare = span.strip(_PUNCT)
    if len(bare) == 1 and bare in options:
        return bare  # an option letter means that letter, even where options are letters (MedMCQA: "a", "c", "bc")
    # The whole span is an option's text: compare as written first, then after cleaning, and take a match only
    # when it is unique ("*p" and "p" are different options in CMMLU's C questions).
    for compare in (_soft, _norm):
        hits = [letter for letter, text in options.items() if compare(text) and compare(text) == compare(span)]
        if len(hits) == 1:
            return hits[0]
    span = _clean(span)
    if not span:
        return None
    texts = {letter: _norm(text) for letter, text in options.items()}
    norm = _norm(span)
    m = _LEAD.match(span)
    if m:
        letter, rest = m.group(1), m.group(2)
        if letter.islower() and (rest.strip() or len(span) > 3):
            letter = ""  # a lowercase letter counts only alone: "\boxed{b}", not "a drug"
        letter = letter.upper()
        if letter and letter not in options and not rest.strip():
            return None  # a bare letter that is not an option
        if letter in options:
            nrest = _norm(rest)
            text = texts.get(letter, "")
            if not nrest or (text and (nrest == text or text.startswith(nrest) or nrest.startswith(text))):
                return letter
            if line:
                return None if _HEDGE_AFTER.match(rest) else letter
            others = {x for x in _STANDALONE.findall(rest) if x in options and x != letter}
            return None if others else letter
    if line:
        return _by_text(norm, texts, line)
    found = {x for x in _STANDALONE.findall(span) if x in options}
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    return _by_text(norm, texts, line)


def _by_text(norm: str, texts: Mapping[str, str], line: bool) -> str | None:
    """The one option whose text the span holds (at the start, for a line); None for none or several."""
    hits = [
        letter
        for letter, text in texts.items()
        if len(text) >= 2 and (norm.startswith(text) if line else re.search(rf"(?<!\w){re.escape(text)}(?!\w)", norm))
    ]
    return hits[0] if len(hits) == 1 else None


def _line_spans(pattern: re.Pattern, text: str) -> list[str]:
    """What follows each match of a cue ("answer is", "####") to the end of its line, at most 200 characters.
    The cue alone is matched so that two cues on one line are both seen ("answer is A. No, the answer is B")."""
    spans = []
    for m in pattern.finditer(text):
        if len(spans) > MAX_MATCHES:
            break
        start = m.end()
        end = text.find("\n", start, start + 200)
        if end != -1 and not text[start:end].strip(" \t:*"):  # "The correct answer is:\nC. ..." reads the next line
            start = end + 1
            end = text.find("\n", start, start + 200)
        spans.append(text[start : end if end != -1 else start + 200])
    return spans


def _decide(spans: Iterable[str], resolve) -> str | None:
    """The one answer all spans agree on; None as soon as one is unreadable or two disagree."""
    spans = list(spans)
    if len(spans) > MAX_MATCHES:
        return None
    answer = None
    for span in dict.fromkeys(spans):  # identical spans are read once
        current = resolve(span)
        if current is None or (answer is not None and current != answer):
            return None
        answer = current
    return answer


# --- multiple choice --------------------------------------------------------------------------------------


def extract_choice(
    text: str, options: Mapping[str, str | None] | Sequence[str], patterns: Sequence[str] = PATTERNS
) -> Extraction:
    """The option letter a completion commits to, and the pattern that decided (see the module docstring)."""
    opts = normalize_options(options)
    if not isinstance(text, str) or not opts:
        return Extraction(None, None)
    body = strip_think(text)
    for name in patterns:
        if name == "answer_tag":
            spans, line = tag_blocks(body, "answer"), False
        elif name == "boxed":
            spans, line = boxed_blocks(body), False
        elif name == "answer_is":
            spans, line = _line_spans(_ANSWER_IS, body), True
        elif name == "answer_colon":
            spans, line = _line_spans(_ANSWER_COLON, body), True
        else:
            raise ValueError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}")
        if spans:
            return Extraction(_decide(spans, lambda s, line=line: resolve_choice(s, opts, line)), name)
    return Extraction(None, None)


# --- numbers ----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FRAC = re.compile(r"\\d?frac\{(-?\d+)\}\{(-?\d+)\}")
_HASHES = re.compile(r"####[ \t]*")
_OR = re.compile(r"(?i)\bor\b")


def parse_number(span: str) -> str | None:
    """The number a short span states, as a canonical string ("1,234.50" -> "1234.5"), or None."""
    span = _clean(span)
    m = _FRAC.search(span)
    if m and int(m.group(2)) != 0:
        value = Decimal(int(m.group(1))) / Decimal(int(m.group(2)))
        return canonical_number(str(value))
    numbers = [canonical_number(n) for n in _NUMBER.findall(span)]
    numbers = [n for n in numbers if n is not None]
    if not numbers or (_OR.search(span) and len(set(numbers)) > 1):
        return None
    return numbers[-1]


def canonical_number(text: str) -> str | None:
    text = str(text).replace("$", "").replace(",", "").replace(" ", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    value = value.normalize()
    return f"{value:f}" if value != value.to_integral_value() else str(int(value))


def extract_number(text: str, patterns: Sequence[str] = NUMBER_PATTERNS) -> Extraction:
    if not isinstance(text, str):
        return Extraction(None, None)
    body = strip_think(text)
    for name in patterns:
        if name == "answer_tag":
            spans = tag_blocks(body, "answer")
        elif name == "hashes":
            spans = _line_spans(_HASHES, body)
        elif name == "boxed":
            spans = boxed_blocks(body)
        elif name == "answer_is":
            spans = _line_spans(_ANSWER_IS, body)
        elif name == "last_number":
            numbers = _NUMBER.findall(body[-_MAX_SPAN * 4 :])
            spans = numbers[-1:]
        else:
            raise ValueError(f"unknown pattern {name!r}; known: {', '.join(NUMBER_PATTERNS)}")
        if spans:
            return Extraction(_decide((s[:_MAX_SPAN] for s in spans), parse_number), name)
    return Extraction(None, None)


def extract_answer(
    text: str, options: Mapping[str, str | None] | Sequence[str] | None = None, strict: bool = False
) -> str | None:
    """The answer a completion commits to: an option letter when ``options`` are given, else a number.

    ``strict=True`` reads only the formats the prompts ask for (answer tag, boxed; for numbers also ``####``).
    """
    if normalize_options(options):
        return extract_choice(text, options, STRICT_PATTERNS if strict else PATTERNS).answer
    return extract_number(text, ("answer_tag", "hashes", "boxed") if strict else NUMBER_PATTERNS).answer
