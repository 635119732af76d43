"""Answer extraction: one pure function, shared by the training rewards and by evaluation.

An answer is read for what it means, not searched for substrings: a reward that pays for "not A" or
"A or maybe C" teaches a GRPO policy to hedge (Open-Medical-R1, Med-RLVR).

**Where the answer is.** Multiple choice, in order; the first pattern that matches anywhere decides, even when it
decides ``None`` (later ones are not consulted):

1. ``answer_tag``   -- the content of ``<answer>...</answer>`` (the R1-Zero format, Open-Medical-R1 Fig. 2)
2. ``boxed``        -- the content of ``\\boxed{...}`` / ``\\fbox{...}`` (the filter format, Fig. 1)
3. ``answer_is``    -- "the answer is (B)", "the correct option is B", "the best choice would be B"
4. ``answer_colon`` -- a line "Answer: B" / "Final answer: B" (or the next line, when the cue ends its line)

``strict=True`` reads only ``answer_tag`` and ``boxed``, the formats the prompts ask for. A tag or box holds an
answer span as a whole; for a cue (3, 4) the span is the rest of its line (at most 2,000 characters), read up to
the end of its first clause: a reason ("because", "since", "as", "given", "due", "which") or a sentence end
("." "!" "?" ";") ends it -- unless what follows the full stop carries on the answer ("Or C.", "C is also
possible", "(C)."). Several matches of the deciding pattern must all agree.

**What counts as naming an option** (text is NFKC-normalised first, so ``Ｂ`` is ``B``; Cyrillic and Greek letters
that look Latin are read as Latin and invisible characters are dropped, so "nоt A" with a Cyrillic о is "not A";
markdown, ``$``, and LaTeX wrappers such as ``\\text{}`` are dropped):

- a capital letter A-J standing alone ("B", "(B)", "B.", "**B**", "option B"); a capital ``I`` followed by "think",
  "believe" ... is the pronoun;
- a lowercase letter where it can only be a letter: after "option", "choice" or "letter" ("option b"),
  in brackets ("(b)", "b)"), alone ("b"), or before "or", "and", punctuation or the end ("b or c") -- never
  before another word ("a drug"). Not at all when some option's text is itself a single letter (MedMCQA), where
  a bare lowercase letter is that option's text;
- an option's text, whole and case-insensitive, between word boundaries ("heparin" for "B. Heparin"); never part
  of one ("Clop", "Aspirins"), never the letter at its start (``D C`` is two letters, not "D. Clopidogrel"). Texts
  shorter than two characters, or shared by two options, name nothing inside a longer span (the words of a shared
  text are not read as letters or negations either: "a[i] == max" holds no letter I).

**When the span gives None** (unparseable is its own outcome, never a guess):

- it names no option, or a letter that is not an option;
- *a hedge*: it names two different options, in any form ("A or maybe C", "A/B", "A (or D)", "(A) (B)", "A and C",
  "D C", "A. Heparin", "Aspirin or warfarin", "b or c"); or matches of the deciding pattern disagree; or the span
  stops on a joining word ("Answer: A or"), a hedge cut off;
- *a negation or elimination* anywhere in the span: "not A", "A is incorrect / wrong / false / unlikely", "A isn't
  right", "anything but A", "everything except A", "other than A", "rule out A", "eliminate A", "neither A nor
  B", ``\\neq A``. Words inside an option's text do not count ("None of the above", PubMedQA's "no"). "A is
  incorrect" is read as a rejection even when the question asks which statement is incorrect: answer with the
  letter;
- it is longer than ``_MAX_SPAN`` (2,000) characters, it names options more than ``_MAX_MENTIONS`` (8) times, or
  the deciding pattern matched more than ``MAX_MATCHES`` times (repetition is spam, not an answer).

The whole span is a special case first: exactly a letter ("b", "(C)") or exactly one option's text is that option.

**Reasoning is not an answer:** text inside ``<think>...</think>`` (or after an unclosed ``<think>`` up to the
first ``<answer>``, or before a lone ``</think>`` when the prompt opened the tag) is removed before matching.

**Numbers** (GSM8K): ``answer_tag``, then ``#### 42``, then ``boxed``, then "answer is 42", then the last number in
the text. A span states one number: "$1,234.50", "18 dollars", "18.0", ``\\frac{1}{2}`` (0.5), "-7", "25%" parse;
units and trailing words are fine ("18 apples are left"). An equation states its result last ("3 × 6 = 18" is
18). Two different numbers ("18/19", "18, 19", "18,19", "18 or 19", "18 and 19", "18-19") or a negation ("not 18",
"18 is wrong") give None. Commas group thousands only in threes ("1,234"). The last number of a text is refused
when a hedge ("18 or 19") or a negation ("not 18") is next to it. Numbers compare by value (``18``, ``18.0``,
``$18`` and ``18 dollars`` agree).

**Linear time on any input.** Tags, boxes and cues are found with ``str.find`` and single-pass regular
expressions (no nested quantifiers, no rescans); each pattern reads at most ``MAX_MATCHES + 1`` spans of at most
2,000 characters, so the span reading is bounded whatever the length of the completion. ``medrlvr bench
rewards`` checks 100 KB adversarial completions against a 50 ms budget.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import NamedTuple

from .records import LETTERS

PATTERNS = ("answer_tag", "boxed", "answer_is", "answer_colon")
STRICT_PATTERNS = ("answer_tag", "boxed")  # the formats the two prompts ask for
NUMBER_PATTERNS = ("answer_tag", "hashes", "boxed", "answer_is", "last_number")

_MAX_SPAN = 2000  # an answer longer than this is not an answer (some law options run to 1,500 characters)
_LINE = _MAX_SPAN  # a cue's answer is read from at most this many characters after it (a whole long option)
# More matches of one pattern than this is spam, not an answer: the completion is unparseable. It also bounds
# the work on adversarial text (100 KB of "the answer is " would otherwise be thousands of spans to read).
MAX_MATCHES = 16
# An answer names its option once or twice ("B. Heparin (B)"); a span that names options more often than this is
# repetition, not an answer ("Answer: A or Answer: A or ...").
_MAX_MENTIONS = 8
_MAX_DIGITS = 60  # a longer number is not an answer, and int() refuses to print past 4,300 digits


class Extraction(NamedTuple):
    answer: str | None
    pattern: str | None  # the pattern that decided, even when it decided None (a hedge)


# --- finding the answer spans -----------------------------------------------------------------------------


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


# One regex finds the next box that opens a brace; "\boxed " without a brace is skipped at C speed (the old
# loop called str.find for both commands per box, rescanning to the end: quadratic on 100 KB of "\boxed ").
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox) *\{")
_BRACE = re.compile(r"[{}]")


def boxed_blocks(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}``, with nested braces matched.

    A box that does not close within ``_MAX_SPAN`` characters is returned cut to ``_MAX_SPAN + 1`` characters
    (too long to be an answer, so it reads as unparseable) and ends the scan, as an unclosed box at the end does:
    whatever follows may be inside it."""
    blocks, pos = [], 0
    while len(blocks) <= MAX_MATCHES:
        m = _BOX_OPEN.search(text, pos)
        if m is None:
            return blocks
        start = m.end()
        limit = min(len(text), start + _MAX_SPAN + 1)
        end = text.find("}", start, limit)
        if end != -1 and text.find("{", start, end) != -1:  # nested braces: count them
            depth, end = 1, -1
            for b in _BRACE.finditer(text, start, limit):
                depth += 1 if b.group() == "{" else -1
                if depth == 0:
                    end = b.start()
                    break
        if end == -1:
            if limit < len(text):
                blocks.append(text[start:limit])
            return blocks
        blocks.append(text[start:end])
        pos = end + 1
    return blocks


_IS = r"\s+(?i:is|would\s+be|should\s+be|must\s+be)\b\s*:?[ \t]*"
# One regex per cue word: a case-insensitive literal prefix lets the regex engine skip ahead (an alternation of
# cue words tried at every position cost 7 ms per 100 KB).
_ANSWER_IS = re.compile(r"(?i:answer)" + _IS)
_OPTION_IS = re.compile(r"(?i:option)" + _IS)  # "the correct option is A" ...
_CHOICE_IS = re.compile(r"(?i:choice)" + _IS)
_JUDGED = re.compile(r"(?i:correct|right|best|final)\s+$")  # ... but not "this option is wrong"
_ANSWER_COLON = re.compile(r"(?m)^[ \t*#>_-]*(?i:final\s+|correct\s+)?(?i:answer)[ \t*_]*[:：][ \t]*")
_HASHES = re.compile(r"####[ \t]*")


def _cue_ends(text: str, patterns: Sequence[re.Pattern]) -> Iterable[int]:
    """Where each cue ends, in text order. "option is" and "choice is" count only after "correct", "right",
    "best" or "final"."""

    def ends(pattern: re.Pattern) -> Iterable[tuple[int, int]]:
        for m in pattern.finditer(text):
            judged = pattern is _OPTION_IS or pattern is _CHOICE_IS
            if not judged or _JUDGED.search(text, max(0, m.start() - 16), m.start()):
                yield m.start(), m.end()

    return (end for _, end in heapq.merge(*(ends(p) for p in patterns)))


def _line_spans(patterns: Sequence[re.Pattern], text: str) -> list[str]:
    """What follows each cue ("answer is", "####") to the end of its line, at most ``_LINE`` characters.
    The cue alone is matched so that two cues on one line are both seen ("answer is A. No, the answer is B")."""
    spans = []
    for start in _cue_ends(text, patterns):
        if len(spans) > MAX_MATCHES:
            break
        end = text.find("\n", start, start + _LINE)
        if end != -1 and not text[start:end].strip(" \t:*"):  # "The correct answer is:\nC. ..." reads the next line
            start = end + 1
            end = text.find("\n", start, start + _LINE)
        spans.append(text[start : end if end != -1 else start + _LINE])
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


# --- reading a span ---------------------------------------------------------------------------------------

_PUNCT = " \t\n.,;:!?*`'\"()[]{}$\\"
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


def _prepare(span: str, numbers: bool = False) -> str:
    """One span as plain text: NFKC (full-width letters and digits become ASCII), look-alike letters as Latin,
    invisible characters dropped, LaTeX and markdown dropped, white space collapsed. For numbers,
    ``\\frac{a}{b}`` becomes its value first."""
    span = unicodedata.normalize("NFKC", span).translate(_LOOKALIKES).replace(_MARK, "").replace("\u2212", "-")
    span = _LATEX_NOT.sub(" not ", span)
    if numbers:
        span = _FRAC.sub(_frac_value, span).replace("{,}", ",").replace("\\,", "").replace("\\!", "")
    span = _LATEX_FORMAT.sub(" ", span).replace("__", "").translate(_FORMAT_CHARS)
    return " ".join(span.split())


def _frac_value(m: re.Match) -> str:
    num, den = int(m.group(2)), int(m.group(3))
    if den == 0:
        return " undefined "
    value = Decimal(-num if m.group(1) else num) / Decimal(den)
    return f" {canonical_number(str(value)) or 'undefined'} "


_NEGATION = re.compile(
    r"(?i)\b(?:not|no|never|none|neither|nor|cannot|\w+n['’]t|isnt|arent|cant|dont|doesnt|wont|"
    r"except|excepting|excluding|excludes?|excluded|eliminat\w*|rul(?:e|es|ed|ing)\s+out|"
    r"(?:any(?:thing|one)?|every(?:thing)?|all)\s+but|other\s+than|rather\s+than|instead\s+of|besides|"
    r"incorrect\w*|wrong\w*|false\w*|untrue|invalid|inaccurate|unlikely|impossible|reject\w*|disprov\w*)\b"
)
# A capital letter standing alone; "I think" is the pronoun. A hyphen joins ("B-cell" is a word).
_UPPER = re.compile(
    r"(?<![\w\x00'’-])(?:([A-HJ])|(I)(?!\s+(?:think|believe|am|would|guess|feel|will|have|had|was|can|could|do|"
    r"did|should|must|need|chose|choose|pick|picked|select|say|agree|conclude|suspect|know|recall|see)\b))"
    r"(?![\w\x00'’]|-\w)"
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
# Words that carry an answer on past a full stop ("A. Or C.") or leave it unfinished ("A or")
_CONTINUE_WORDS = r"or|maybe|perhaps|possibly|probably|alternatively|and|also|but|though|although|actually|wait|hmm"
# Verbs that make the next sentence a statement about an option ("A. C is also possible", "A. Aspirin can be
# ruled out"): such a sentence is read with the answer.
_ABOUT_VERBS = (
    r"or|and|is|are|was|were|be|can|cannot|could|should|would|must|might|may|will|also|too|seems|appears|has|does|"
    r"\w+n['’]t"
)
_AFTER_OPTION = _ABOUT_VERBS + r"|vs|versus|nor|plus|" + _CONTINUE_WORDS
# Where a cue's answer clause ends: a reason, or a full stop that starts a new sentence. What follows a full stop
# carries the answer on unless it is a capital or a digit ("A. or C", "A. (C)", "A. vs B"), and so does a new
# sentence that opens with a joining word or with an option that a verb or a full stop follows ("A. Or C.",
# "A. C is also possible", "A. C.").
_CLAUSE_END = re.compile(
    r"(?i:\b(?:because|since|as(?!\s+(?:well|follows)\b)|given|due|which|whereas|explanation|rationale|reason)\b)"
    r"|[.!?;](?=\s|$)(?!\s*(?:[^A-Z0-9\x00\s]"
    r"|(?i:" + _CONTINUE_WORDS + r"|otherwise|either|nor|else|" + _ABOUT_VERBS + r")\b"
    r"|(?:[A-J]|\x00\d+\x00|\d[\d,.]*)(?:\s*(?:[^\w\s\x00]|$)|\s+(?i:" + _AFTER_OPTION + r")\b)))"
)
# An answer that stops on a joiner was cut off in the middle of a hedge ("Answer: A or")
_DANGLING = re.compile(r"(?i:\b(?:or|and|nor|vs|versus|maybe|perhaps|possibly|either)|[/&+])[^\w\x00]*$")


class _Options(NamedTuple):
    """What a question's options need for reading spans, built once per set of options."""

    letters: tuple[str, ...]
    soft: dict[str, str]  # letter -> text as written (casefolded, spaces collapsed)
    norm: dict[str, str]  # letter -> text prepared and stripped of punctuation
    finder: re.Pattern | None  # whole option texts inside a span, one named group per option
    lowercase: bool  # lowercase letters can be letters (no option's text is a single letter)


@lru_cache(maxsize=512)
def _options(items: tuple[tuple[str, str], ...]) -> _Options:
    letters = tuple(k for k, _ in items)
    prepared = tuple(_prepare(v).strip(_PUNCT) for _, v in items)
    folded = [t.casefold() for t in prepared]
    # A text shared by two options (after cleaning: "!(a == b)" and "a == b") names neither, but it is still
    # masked ("n"), so that its words are not read as letters or negations.
    findable = [
        (f"{'o' if folded.count(t.casefold()) == 1 else 'n'}{i}", t) for i, t in enumerate(prepared) if len(t) >= 2
    ]
    # the longest text wins where two overlap ("Vitamin A" in "Vitamin A deficiency")
    findable.sort(key=lambda it: -len(it[1]))
    finder = (
        re.compile(
            r"(?<!\w)(?:" + "|".join(f"(?P<{name}>{re.escape(t)})" for name, t in findable) + r")(?!\w)",
            re.IGNORECASE,
        )
        if findable
        else None
    )
    return _Options(
        letters=letters,
        soft={k: _soft(v) for k, v in items},
        norm={k: t.casefold() for k, t in zip(letters, prepared)},
        finder=finder,
        lowercase=not any(len(t) == 1 and t.isalpha() for t in prepared),
    )


def _soft(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).rstrip(".")


def normalize_options(options: Mapping[str, str | None] | Sequence[str] | None) -> dict[str, str]:
    """Options as letter -> text, whatever form a dataset column gives them in (None entries dropped)."""
    if not options:
        return {}
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items() if v is not None and str(k).strip()}
    return {letter: str(v) for letter, v in zip(LETTERS, options) if v is not None}


def _mentions(masked: str, opts: _Options) -> list[str]:
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


def _first_mention(masked: str, opts: _Options) -> int | None:
    """Where the first option named in a masked span ends (a cue's answer clause is read on from there)."""
    patterns = (_NAMED_MARK, _UPPER) + ((_LOWER_KEYWORD, _LOWER_BRACKET, _LOWER) if opts.lowercase else ())
    ends = [m.end() for m in (p.search(masked) for p in patterns) if m]
    return min(ends) if ends else None


def resolve_choice(span: str, options: Mapping[str, str], line: bool = False) -> str | None:
    """One answer span -> an option letter or None (the rules are in the module docstring).

    ``line=True`` is for a span cut from running text ("the answer is B because ..."): it is read up to the end
    of its first clause.
    """
    if not isinstance(span, str) or len(span) > _MAX_SPAN:
        return None
    opts = _options(tuple(normalize_options(options).items()))
    text = _prepare(span)
    # The whole span is one option's text exactly as written (CMMLU has an option "A：", which NFKC would make
    # the letter A), else one letter, else one option's text after cleaning
    soft, bare = _soft(span), text.strip(_PUNCT)
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
    masked = opts.finder.sub(_mark, text) if opts.finder else text
    if line:
        first = _first_mention(masked, opts)
        if first is None:
            return None
        end = _CLAUSE_END.search(masked, first)
        masked = masked[: end.start()] if end else masked
    if _NEGATION.search(masked) or _DANGLING.search(masked):
        return None
    found = _mentions(masked, opts)
    if len(found) > _MAX_MENTIONS:
        return None
    letters = set(found)
    return letters.pop() if len(letters) == 1 and found[0] in opts.letters else None


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
            spans, line = _line_spans((_ANSWER_IS, _OPTION_IS, _CHOICE_IS), body), True
        elif name == "answer_colon":
            spans, line = _line_spans((_ANSWER_COLON,), body), True
        else:
            raise ValueError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}")
        if spans:
            return Extraction(_decide(spans, lambda s, line=line: resolve_choice(s, opts, line)), name)
    return Extraction(None, None)


# --- numbers ----------------------------------------------------------------------------------------------

# A run of digits and commas, perhaps with decimals; whether the commas group thousands is decided in Python.
# "^" before a digit is an exponent ("cm^2"), a letter or digit before it makes it part of a word ("CO2").
_NUMBER_RUN = re.compile(r"(?<![\w.^])(-?)(\d[\d,]*(?:\.\d+)?|\.\d+)")
_HEDGE_BEFORE = re.compile(
    r"\d\s*(?:[,/&+-]|\b(?:or|and|to|nor)\b)\s*(?:(?:maybe|perhaps|possibly|probably)\s+)?[(\[]?\s*-?$", re.IGNORECASE
)


def _run_numbers(sign: str, run: str) -> list[str]:
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
    if not isinstance(span, str) or len(span) > _MAX_SPAN:
        return None
    text = _prepare(span, numbers=True)
    if line:
        first = _NUMBER_RUN.search(text)
        if first is None:
            return None
        end = _CLAUSE_END.search(text, first.end())
        text = text[: end.start()] if end else text
    text = text.rpartition("=")[2]  # an equation states its result last
    if _NEGATION.search(text) or _DANGLING.search(text):
        return None
    numbers = {n for m in _NUMBER_RUN.finditer(text) for n in _run_numbers(m.group(1), m.group(2))}
    return numbers.pop() if len(numbers) == 1 and None not in numbers else None


def parse_number(span: str) -> str | None:
    """The number a short span states, as a canonical string ("1,234.50" -> "1234.5"), or None."""
    return resolve_number(span)


def canonical_number(text: str) -> str | None:
    text = str(text).replace("$", "").replace(",", "").replace(" ", "").strip()
    if len(text) > _MAX_DIGITS:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value.adjusted()) > _MAX_DIGITS:  # "1e999999999" would print a billion digits
        return None
    value = value.normalize()
    return f"{value:f}" if value != value.to_integral_value() else str(int(value))


def _last_number(body: str) -> Extraction:
    """The last number of the text, unless a hedge or a negation is next to it ("18 or 19", "not 18")."""
    window = _prepare(body[-_MAX_SPAN:], numbers=True)
    last = None
    for last in _NUMBER_RUN.finditer(window):
        pass
    if last is None:
        return Extraction(None, None)
    numbers = set(_run_numbers(last.group(1), last.group(2)))
    before = window[max(0, last.start() - 40) : last.start()]
    before = re.split(r"[.!?;](?:\s|$)", before)[-1]  # the sentence it ends
    after = window[last.end() :]
    end = _CLAUSE_END.search(after)
    after = after[: end.start()] if end else after[:_LINE]
    if len(numbers) != 1 or None in numbers or _HEDGE_BEFORE.search(before) or _NEGATION.search(before + after):
        return Extraction(None, "last_number")
    return Extraction(numbers.pop(), "last_number")


def extract_number(text: str, patterns: Sequence[str] = NUMBER_PATTERNS) -> Extraction:
    if not isinstance(text, str):
        return Extraction(None, None)
    body = strip_think(text)
    for name in patterns:
        line = name in ("hashes", "answer_is")
        if name == "answer_tag":
            spans = tag_blocks(body, "answer")
        elif name == "hashes":
            spans = _line_spans((_HASHES,), body)
        elif name == "boxed":
            spans = boxed_blocks(body)
        elif name == "answer_is":
            spans = _line_spans((_ANSWER_IS,), body)
        elif name == "last_number":
            return _last_number(body)
        else:
            raise ValueError(f"unknown pattern {name!r}; known: {', '.join(NUMBER_PATTERNS)}")
        if spans:
            return Extraction(_decide(spans, lambda s, line=line: resolve_number(s, line)), name)
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
