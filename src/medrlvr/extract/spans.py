"""Where the answer is: the answer spans of a completion, found in linear time.

Tags, boxes and cues are found with ``str.find`` and single-pass regular expressions (no nested quantifiers, no
rescans); each pattern yields at most ``MAX_MATCHES + 1`` spans of at most ``MAX_SPAN`` characters.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence

from . import language

MAX_SPAN = 2000  # an answer longer than this is not an answer (some law options run to 1,500 characters)
LINE = MAX_SPAN  # a cue's answer is read from at most this many characters after it (a whole long option)
# More matches of one pattern than this is spam, not an answer: the completion is unparseable. It also bounds
# the work on adversarial text (100 KB of "the answer is " would otherwise be thousands of spans to read).
MAX_MATCHES = 16


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

    A box that does not close within ``MAX_SPAN`` characters is returned cut to ``MAX_SPAN + 1`` characters
    (too long to be an answer, so it reads as unparseable) and ends the scan, as an unclosed box at the end does:
    whatever follows may be inside it."""
    blocks, pos = [], 0
    while len(blocks) <= MAX_MATCHES:
        m = _BOX_OPEN.search(text, pos)
        if m is None:
            return blocks
        start = m.end()
        limit = min(len(text), start + MAX_SPAN + 1)
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


Cue = language.Cue
ANSWER_IS = language.answer_is_cues()  # "the answer is", "die Antwort ist", "答案是" ...
ANSWER_COLON = (language.ANSWER_COLON,)  # a line "Answer: B", "Antwort: B", "答案：B"
NUMBER_ANSWER_IS = (Cue(re.compile(r"(?i:answer)" + language.IS), False, ("answer",)),)  # GSM8K is English
HASHES = (Cue(re.compile(r"####[ \t]*"), False, ("####",)),)


def _cue_ends(text: str, cues: Sequence[Cue]) -> Iterable[int]:
    """Where each cue ends, in text order. A judged cue ("option is") counts only after "correct", "right",
    "best" or "final"."""
    lowered = text.lower() if any(cue.gates for cue in cues) else text

    def ends(cue: Cue) -> Iterable[tuple[int, int]]:
        if cue.gates and not any(gate in lowered for gate in cue.gates):
            return
        for m in cue.pattern.finditer(text):
            if not cue.judged or language.JUDGED.search(text, max(0, m.start() - 16), m.start()):
                yield m.start(), m.end()

    return (end for _, end in heapq.merge(*(ends(cue) for cue in cues)))


def line_spans(cues: Sequence[Cue], text: str) -> list[str]:
    """What follows each cue ("answer is", "####") to the end of its line, at most ``LINE`` characters.
    The cue alone is matched so that two cues on one line are both seen ("answer is A. No, the answer is B")."""
    spans = []
    for start in _cue_ends(text, cues):
        if len(spans) > MAX_MATCHES:
            break
        end = text.find("\n", start, start + LINE)
        if end != -1 and not text[start:end].strip(" \t:*"):  # "The correct answer is:\nC. ..." reads the next line
            start = end + 1
            end = text.find("\n", start, start + LINE)
        spans.append(text[start : end if end != -1 else start + LINE])
    return spans


def decide(spans: Iterable[str], resolve) -> str | None:
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
