"""Option orders: a question's options in another order, with the gold letter remapped, for training on shuffled
options and for circular evaluation.

Why. Small models carry a letter prior (by log-likelihood a 135M model answers "A" to nearly every MMLU question), and
with the gold letter of each training question fixed, RL can pay a policy for the golds' letter distribution. Asking
a question under several orders separates knowing the answer from liking a position: training sees each question in
a seeded permutation (the medmarks suite shuffles options for this reason; PA-GRPO, arXiv 2603.21016, scores across
permutations), and evaluation asks every rotation and counts a question right only if every one is (MMBench's
CircularEval).

An *order* is the tuple of original letters in their new places: ``("C", "A", "B", "D")`` puts the original C first,
so it is lettered A. :func:`permute` makes the relabelled :class:`~medrlvr.records.Record` (same id and question,
options lettered A, B, ... again, the gold's letter moved with its text).

Anchored options stay where they are: an option that speaks about the others ("All of the above", "None of these",
"Both A and B", "Neither of these", "以上都是", "以上都不对", "其他选项均可", "A和B") means something only in its place,
and an option that another one names by letter ("Both A and B" names A and B) must keep its letter. The patterns are
English and Chinese, the languages of medrlvr's benchmarks (CMMLU is Chinese; the rest English); they were read off
the option texts of MedMCQA, MMLU, MMLU-Pro, MedXpertQA and CMMLU. A question with fewer than two options left free
to move cannot be reordered (:func:`movable`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from .records import LETTERS, Record

Order = tuple[str, ...]

# "All of the above", "none of these options.", "Can be any of the above", "All of the options given are correct",
# "Both", "Neither of these", "All of these about equally": a quantifier over the other options and nothing else
_QUANTIFIER = r"(?:all|none|any|some|neither|both|either|each)"
_ABOUT_OTHERS = (r"(?:of|the|these|those|them|above|options?|answers?|choices?|statements?|following|given|listed|"
                 r"mentioned|are|is|correct|true|right|equally|about)")  # fmt: skip
_EN_ANCHOR = re.compile(rf"^(?:(?:it\s+)?can\s+be\s+)?{_QUANTIFIER}(?:\s+{_ABOUT_OTHERS})*[\s.!]*$", re.I)
# "both A and B", "Both (a) and (c).", "neither a nor b", "Both AB", "Options A and B", "A and B", "A & B", "a,c"
_REF = r"\(?[a-j]\)?"
_EN_LETTERS = re.compile(
    rf"^(?:(?:both|neither|either|all|only)\s+)?(?:(?:options?|choices?)\s+)?"
    rf"(?:{_REF}(?:\s*(?:,|and|or|nor|&)\s*(?:(?:options?|choices?)\s+)?{_REF})+|[a-j]{{2,4}})"
    rf"(?:\s+(?:are|is)\s+(?:correct|true|right))?[\s.]*$",
    re.I,
)
# 以上都是 / 以上都不对 / 以上全部 / 以上均不正确 / 以上说法都不对 / 上述都是 / 其他选项均可 / 其他三个选项都不正确 / 都不是 /
# 全部正确 / 以上: the other options taken together
_ZH_ANCHOR = re.compile(
    r"^(?:(?:以上|上述|前述|其他|其余)(?:[二两三四五六][个种者点项])?(?:全部|所有)?(?:选项|答案|说法|结论|做法|方法|解释|各项)?"
    r"(?:全部|所有)?(?:都|均|皆|全)?(?:不|非|无)?(?:是|对|正确|错误|错|可|可以|有|包括|选|道理)?"
    r"|(?:都|均|全)不?(?:是|对|正确|可|有)|全部都?(?:正确|是|对)|均可|全对|全不对)[。.！!]?$"
)
# A和B / A、B都对 / A，B和C均对 / $A，B，C$均对 / B和C都对: options named by their letters
_ZH_LETTERS = re.compile(
    r"^\$?[A-J](?:\s*[和与及、，,或]\s*[A-J])+\$?(?:都|均|皆|全)?(?:不)?(?:是|对|正确|可|有|可以|不是|不对)?[。.]?$"
)


def anchored(text: str) -> bool:
    """Whether an option speaks about all the other options ("All of the above", "以上都不对") and so must keep its
    place. Options that name others by letter are :func:`letter_references`.

    >>> [anchored(t) for t in ("All of the above", "None of these.", "Neither of these", "以上都不对", "Aspirin")]
    [True, True, True, True, False]
    """
    t = " ".join(str(text).split())
    return bool(t) and bool(_EN_ANCHOR.match(t) or _ZH_ANCHOR.match(t))


def letter_references(text: str, letters: Sequence[str]) -> set[str]:
    """The option letters an option names ("Both A and B", "A和C", "Both AB", "a and c"), among ``letters``; empty
    for an option that names none. A bare run ("ab", "acd") counts only as distinct letters in alphabetical order
    ("EEG", "Age", "GABA" are words)."""
    t = " ".join(str(text).split())
    if not (_EN_LETTERS.match(t) or _ZH_LETTERS.match(t)):
        return set()
    named = [c.upper() for c in re.findall(r"(?<![A-Za-z])([A-Ja-j])(?![A-Za-z])", t)]
    for run in re.findall(r"(?<![A-Za-z])([A-Ja-j]{2,4})(?![A-Za-z])", t):
        up = run.upper()
        if list(up) == sorted(set(up)):
            named += list(up)
    return {c for c in named if c in letters} if named and all(c in letters for c in named) else set()


def pinned(options: Mapping[str, str]) -> set[str]:
    """The letters that keep their place: anchored options, and an option that names others by letter together
    with the options it names. Where the named options themselves name letters ("ab", "bc", "abc" as the options of
    one question), the letters are the question's own statements, not options: nothing is pinned for them.

    >>> sorted(pinned({"A": "Aspirin", "B": "Heparin", "C": "Both A and B", "D": "None of these"}))
    ['A', 'B', 'C', 'D']
    >>> sorted(pinned({"A": "ab", "B": "bc", "C": "abc", "D": "abcd"}))
    []
    """
    letters = list(options)
    refs = {letter: letter_references(text, letters) for letter, text in options.items()}
    keep = {letter for letter, text in options.items() if anchored(text)}
    for letter, named in refs.items():
        if named and not any(refs[x] or _LETTER_RUN.match(options[x].strip()) for x in named if x != letter):
            keep |= {letter} | named
    return keep


_LETTER_RUN = re.compile(r"^[A-Ja-j](?:[\s,、，]*[A-Ja-j])+[.。]?$")  # "DCBA", "a,c,d,b": an order of statements


def movable(record: Record) -> list[str]:
    """The letters of ``record``'s options that may move (not :func:`pinned`), in order."""
    keep = pinned(record.options)
    return [letter for letter in record.options if letter not in keep]


def why_fixed(record: Record) -> str | None:
    """Why ``record``'s options cannot be reordered (None when they can): no options, or fewer than two free."""
    if not record.options:
        return "no options"
    free = movable(record)
    if len(free) < 2:
        fixed = len(record.options) - len(free)
        return f"{len(free)} of {len(record.options)} options free to move ({fixed} anchored)"
    return None


def identity(record: Record) -> Order:
    return tuple(record.options)


def _place(record: Record, free_order: Sequence[str]) -> Order:
    """The order that puts ``free_order`` into the free places (in their order) and keeps the pinned letters."""
    free = movable(record)
    fill = dict(zip(free, free_order))
    return tuple(fill.get(letter, letter) for letter in record.options)


def shuffled(record: Record, rng: random.Random) -> Order:
    """A uniformly random order of the free options (the pinned ones in place), drawn from ``rng``."""
    free = movable(record)
    rng.shuffle(free)
    return _place(record, free)


def rotations(record: Record, limit: int | None = None, seed: int = 0) -> list[Order]:
    """The cyclic rotations of the free options, the original order first: with n free options, n orders in which
    the gold (if free) stands once in every free place. With more than ``limit`` free options, ``limit`` of them:
    the original and ``limit - 1`` others drawn with ``random.Random(f"{seed}:{record.id}")`` (MMLU-Pro's ten options
    would cost ten questions each). A record that cannot be reordered (:func:`why_fixed`) has its original order only.

    >>> r = Record(id="q", question="?", options={"A": "x", "B": "y", "C": "None of the above"}, answer="A")
    >>> rotations(r)
    [('A', 'B', 'C'), ('B', 'A', 'C')]
    """
    if why_fixed(record):
        return [identity(record)]
    free = movable(record)
    n = len(free)
    shifts = list(range(n))
    if limit is not None and n > limit:
        shifts = [0] + sorted(random.Random(f"{seed}:{record.id}").sample(range(1, n), max(0, limit - 1)))
    return [_place(record, free[s:] + free[:s]) for s in shifts]


def permute(record: Record, order: Sequence[str]) -> Record:
    """``record`` with its options in ``order`` (original letters in their new places), lettered A, B, ... again;
    the gold letter follows its text. Id, question and the rest are kept."""
    order = tuple(order)
    if sorted(order) != sorted(record.options):
        raise ValueError(f"order {''.join(order)} is not a permutation of {''.join(record.options)}")
    options = {LETTERS[i]: record.options[old] for i, old in enumerate(order)}
    return Record(id=record.id, question=record.question, options=options, answer=new_letter(record.answer, order),
                  subject=record.subject, source=record.source, split=record.split,
                  explanation=record.explanation)  # fmt: skip


def new_letter(old: str, order: Sequence[str]) -> str:
    """Where the original option ``old`` stands in ``order`` (its new letter)."""
    return LETTERS[list(order).index(old)]


def old_letter(new: str, order: Sequence[str]) -> str:
    """The original letter of the option that stands at ``new`` in ``order``."""
    return order[LETTERS.index(new)]
