"""Answer extraction: one pure function, shared by the training rewards and by evaluation.

An answer is read for what it means, not searched for substrings: a reward that pays for "not A" or
"A or maybe C" teaches a GRPO policy to hedge (Open-Medical-R1, Med-RLVR).

**Where the answer is.** Multiple choice, in order; the first pattern that matches anywhere decides, even when it
decides ``None`` (later ones are not consulted):

1. ``answer_tag``   -- the content of ``<answer>...</answer>`` (the R1-Zero format, Open-Medical-R1 Fig. 2)
2. ``boxed``        -- the content of ``\\boxed{...}`` / ``\\fbox{...}`` (the filter format, Fig. 1)
3. ``answer_is``    -- "the answer is (B)", "the correct option is B", "the best choice would be B"; "die Antwort
   ist B", "la réponse est B", "la respuesta es B", "la risposta è B", "a resposta é B", "het antwoord is B",
   "答案是B", "正确选项为B", "故选B"
4. ``answer_colon`` -- a line "Answer: B" / "Final answer: B" / "Antwort: B" / "Réponse : B" / "答案：B" (or the
   next line, when the cue ends its line)

``strict=True`` reads only ``answer_tag`` and ``boxed``, the formats the prompts ask for. ``grammar=True`` is the
training rewards' reading: an answer pays only when it is clean (below). A tag or box holds an
answer span as a whole; for a cue (3, 4) the span is the rest of its line (at most 2,000 characters), read up to
the end of its first clause: a reason ("because", "since", "as", "given", "due", "which") or a sentence end
("." "!" "?" ";") ends it -- unless what follows the full stop carries on the answer ("Or C.", "C is also
possible", "(C)."). Several matches of the deciding pattern must all agree.

**What counts as naming an option** (text is NFKC-normalised first, so ``Ｂ`` is ``B``; Cyrillic and Greek letters
that look Latin are read as Latin and invisible characters are dropped, so "nоt A" with a Cyrillic о is "not A";
markdown, ``$``, and LaTeX wrappers such as ``\\text{}`` are dropped):

- a capital letter A-J standing alone ("B", "(B)", "B.", "**B**", "option B", "选B": Chinese is written without
  spaces, so a letter next to it stands alone); a capital ``I`` followed by "think",
  "believe" ... is the pronoun;
- a lowercase letter where it can only be a letter: after "option", "choice" or "letter" ("option b"),
  in brackets ("(b)", "b)"), alone ("b"), or before "or", "and", punctuation or the end ("b or c") -- never
  before another word ("a drug"). Not at all when some option's text is itself a single letter (MedMCQA), where
  a bare lowercase letter is that option's text;
- an option's text, whole and case-insensitive, between word boundaries ("heparin" for "B. Heparin"; in Chinese
  any neighbour will do: "答案是阿司匹林"); never part
  of one ("Clop", "Aspirins"), never the letter at its start (``D C`` is two letters, not "D. Clopidogrel"). Texts
  shorter than two characters, or shared by two options, name nothing inside a longer span (the words of a shared
  text are not read as letters or negations either: "a[i] == max" holds no letter I).

**When the span gives None** (unparseable is its own outcome, never a guess):

- it names no option, or a letter that is not an option;
- *a hedge*: it names two different options, in any form ("A or maybe C", "A/B", "A (or D)", "(A) (B)", "A and C",
  "D C", "A. Heparin", "Aspirin or warfarin", "b or c", "B oder C", "B ou C", "B o C", "B或C"); or matches of the
  deciding pattern disagree; or the span stops on a joining word ("Answer: A or", "Antwort: B oder", "B 或"), a
  hedge cut off. One option with a word of doubt is an answer, in every language ("maybe B", "most likely B",
  "可能是B");
- *a negation or elimination* anywhere in the span: "not A", "A is incorrect / wrong / false / unlikely", "A isn't
  right", "anything but A", "everything except A", "other than A", "rule out A", "eliminate A", "neither A nor
  B", ``\\neq A``, and the same in German, French, Spanish, Italian, Portuguese, Dutch and Chinese ("nicht B",
  "kein B", "pas B", "non B", "no es B", "B è sbagliata", "não B", "niet B", "不是B", "B不对", "排除B"; the word
  lists are :mod:`medrlvr.extract.language`). A struck-out answer is withdrawn: ``~~B~~``, ``<del>B</del>``,
  ``<s>B</s>``, ``\\sout{B}``, ``\\cancel{B}``, "B̶" (a combining stroke) read as "not B". Words inside an
  option's text do not count ("None of the above", PubMedQA's "no"). "A is incorrect" is read as a rejection
  even when the question asks which statement is incorrect: answer with the letter;
- it is longer than ``MAX_SPAN`` (2,000) characters, it names options more than ``MAX_MENTIONS`` (8) times, or
  the deciding pattern matched more than ``MAX_MATCHES`` times (repetition is spam, not an answer).

The whole span is a special case first: exactly a letter ("b", "(C)") or exactly one option's text is that option.

**Reasoning is not an answer:** text inside ``<think>...</think>`` (or after an unclosed ``<think>`` up to the
first ``<answer>``, or before a lone ``</think>`` when the prompt opened the tag) is removed before matching.

**Numbers** (GSM8K): ``answer_tag``, then ``#### 42``, then ``boxed``, then "answer is 42", then the last number in
the text. A span states one number: "$1,234.50", "18 dollars", "18.0", ``\\frac{1}{2}`` (0.5), "-7", "25%" parse;
units and trailing words are fine ("18 apples are left"). An equation states its result last ("3 × 6 = 18" is
18). Two different numbers ("18/19", "18, 19", "18,19", "18 or 19", "18 and 19", "18-19") or a negation ("not 18",
"18 is wrong", "nicht 18") give None. Commas group thousands only in threes ("1,234"). The last number of a text
is refused when a hedge ("18 or 19") or a negation ("not 18") is next to it. Numbers compare by value (``18``,
``18.0``, ``$18`` and ``18 dollars`` agree).

**Linear time on any input.** Tags, boxes and cues are found with ``str.find`` and single-pass regular
expressions (no nested quantifiers, no rescans); each pattern reads at most ``MAX_MATCHES + 1`` spans of at most
2,000 characters, so the span reading is bounded whatever the length of the completion. ``medrlvr bench
rewards`` checks 100 KB adversarial completions against a 50 ms budget.

**The training rewards read strictly** (``grammar=True``): the spans are found as above, but each must be accepted
whole by the strict answer grammar of :mod:`medrlvr.extract.grammar` (one option reference, in at most an answer
frame of the benchmarks' languages: "The answer is B", "答案是B", "Antwort: B"), instead of being refused only when
a word list finds a negation or a hedge in it. Answer tags must form exactly one ``<answer>...</answer>`` block
outside the reasoning: a second ``<answer>`` or ``</answer>`` anywhere, or one without its pair, is None, whatever
else the completion holds (for numbers too; a number block is then read as above). Evaluation reads flexibly and
strictly side by side, as lm-evaluation-harness does; neither is this grammar.

**Modules.** ``spans`` finds the answer spans (tags, boxes, cues), ``choice`` reads a span for an option,
``numbers`` for a number, ``grammar`` accepts a clean one, ``language`` holds the word lists of every language as data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .choice import MAX_MENTIONS, as_text, normalize_options, resolve_choice
from .grammar import strict_choice
from .numbers import canonical_number, last_number, parse_number, resolve_number
from .spans import (
    ANSWER_COLON,
    ANSWER_IS,
    HASHES,
    MAX_MATCHES,
    MAX_SPAN,
    NUMBER_ANSWER_IS,
    boxed_blocks,
    decide,
    line_spans,
    strip_think,
    tag_blocks,
)  # fmt: skip

__all__ = [
    "MAX_MATCHES", "MAX_MENTIONS", "MAX_SPAN", "NUMBER_PATTERNS", "PATTERNS", "STRICT_PATTERNS", "Extraction",
    "as_text", "boxed_blocks", "canonical_number", "extract_answer", "extract_choice", "extract_number",
    "normalize_options", "parse_number", "resolve_choice", "resolve_number", "strict_choice", "strip_think",
    "tag_blocks",
]  # fmt: skip

PATTERNS = ("answer_tag", "boxed", "answer_is", "answer_colon")
STRICT_PATTERNS = ("answer_tag", "boxed")  # the formats the two prompts ask for
NUMBER_PATTERNS = ("answer_tag", "hashes", "boxed", "answer_is", "last_number")


class Extraction(NamedTuple):
    answer: str | None
    pattern: str | None  # the pattern that decided, even when it decided None (a hedge)


def _spans(name: str, body: str, numbers: bool) -> tuple[list[str], bool]:
    """The spans one pattern finds, and whether they are cut from running text (read to their first clause)."""
    if name == "answer_tag":
        return tag_blocks(body, "answer"), False
    if name == "boxed":
        return boxed_blocks(body), False
    if name == "answer_is":
        return line_spans(NUMBER_ANSWER_IS if numbers else ANSWER_IS, body), True
    if name == "answer_colon" and not numbers:
        return line_spans(ANSWER_COLON, body), True
    if name == "hashes" and numbers:
        return line_spans(HASHES, body), True
    known = NUMBER_PATTERNS if numbers else PATTERNS
    raise ValueError(f"unknown pattern {name!r}; known: {', '.join(known)}")


def one_answer_block(text: str, body: str) -> list[str] | None:
    """The training rewards' rule for answer tags: ``[]`` when ``text`` has none, ``[content]`` when it has exactly
    one ``<answer>`` and one ``</answer>`` and they close a block outside the reasoning (``body`` is ``text`` without
    it), else None: a second tag of either kind, or one without its pair, is not one answer."""
    tags = (text.count("<answer>"), text.count("</answer>"))
    if tags == (0, 0):
        return []
    blocks = tag_blocks(body, "answer") if tags == (1, 1) else []
    return blocks if len(blocks) == 1 else None


def extract_choice(
    text: str,
    options: Mapping[str, str | None] | Sequence[str],
    patterns: Sequence[str] = PATTERNS,
    grammar: bool = False,
) -> Extraction:
    """The option letter a completion commits to, and the pattern that decided (see the module docstring).
    ``grammar=True``: each span must be accepted by :func:`strict_choice`, and answer tags must form one block."""
    opts = normalize_options(options)
    if not isinstance(text, str) or not opts:
        return Extraction(None, None)
    body = strip_think(text)
    read = strict_choice if grammar else resolve_choice
    for name in patterns:
        spans, line = _pattern_spans(name, text, body, grammar, numbers=False)
        if spans is None:
            return Extraction(None, name)
        if spans:
            return Extraction(decide(spans, lambda s, line=line: read(s, opts, line)), name)
    return Extraction(None, None)


def _pattern_spans(name: str, text: str, body: str, grammar: bool, numbers: bool):
    """(spans, line) of pattern ``name``; with ``grammar``, the answer tag's spans only when the tags form one block,
    else (None, False): a second or unpaired tag refuses the whole answer."""
    if grammar and name == "answer_tag":
        block = one_answer_block(text, body)
        return (None, False) if block is None else (block, False)
    return _spans(name, body, numbers=numbers)


def extract_number(text: str, patterns: Sequence[str] = NUMBER_PATTERNS, grammar: bool = False) -> Extraction:
    """The number a completion commits to, and the pattern that decided. ``grammar=True``: answer tags must form one
    block (its number is read as without it)."""
    if not isinstance(text, str):
        return Extraction(None, None)
    body = strip_think(text)
    for name in patterns:
        if name == "last_number":
            found, answer = last_number(body)
            return Extraction(answer, name if found else None)
        spans, line = _pattern_spans(name, text, body, grammar, numbers=True)
        if spans is None:
            return Extraction(None, name)
        if spans:
            return Extraction(decide(spans, lambda s, line=line: resolve_number(s, line)), name)
    return Extraction(None, None)


def extract_answer(
    text: str,
    options: Mapping[str, str | None] | Sequence[str] | None = None,
    strict: bool = False,
    grammar: bool = False,
) -> str | None:
    """The answer a completion commits to: an option letter when ``options`` are given, else a number.

    ``strict=True`` reads only the formats the prompts ask for (answer tag, boxed; for numbers also ``####``).
    ``grammar=True`` reads as the training rewards do: one answer block, and an option only where the strict answer
    grammar accepts the span (:mod:`medrlvr.extract.grammar`).
    """
    if normalize_options(options):
        return extract_choice(text, options, STRICT_PATTERNS if strict else PATTERNS, grammar).answer
    return extract_number(text, ("answer_tag", "hashes", "boxed") if strict else NUMBER_PATTERNS, grammar).answer
