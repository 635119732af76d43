"""The open-form probe (ReVeL, arXiv 2511.17405): each multiple-choice question asked without its options, the free
answer graded against the gold option's text, and set beside the multiple-choice accuracy of the same questions.

ReVeL finds multiple choice inflating scores by up to 20 points: options let a model recognise what it could not
recall, or eliminate its way to a letter. Here the question stem is asked as it is (ReVeL rewrites questions with a
model; medrlvr does not), with :data:`medrlvr.prompts.OPEN_FORM_NOTE`, under the run's prompt, chat and prefill.

**Which questions are asked.** Those whose answer makes sense without the options; the rest are skipped and
counted by reason, never scored: the gold option refers to the others ("All of the above", "Both A and B", "以上都
是"), or the stem asks for an exception or a statement to pick ("all of the following EXCEPT", "which is NOT",
"which statement is true", "以下哪项不"), or there are no options.

**The free answer** is read strictly, in the format the prompt asks for: the content of the ``<answer>`` tag
(``r1_zero``) or of ``\\boxed{}`` (``filter``); several blocks that disagree are no answer (a hedge), as in
:mod:`medrlvr.extract`.

**Grading**, each reported with a Wilson interval:

- *exact*: the answer is the gold option's text, character for character after trimming;
- *normalised*: equal after :func:`normalise` (Unicode NFKC, case folding, punctuation to spaces, the English
  articles a/an/the dropped, whitespace collapsed and dropped between CJK characters, so "阿司匹林。" is "阿司匹林");
  written here rather than taken from a library because SQuAD's normaliser (the usual one) is ASCII-only and breaks
  CJK text;
- *judge* (when the user names one): a model on an OpenAI-compatible server is asked whether the answer names the
  same thing as the reference (:data:`medrlvr.prompts.JUDGE_SYSTEM`); its messages and raw reply are stored with each
  row, and a reply that is not exactly one of CORRECT or INCORRECT is unparseable, counted, and not a pass. The key is
  :class:`medrlvr.engines.openai_api.OpenAIEngine`'s: read from ``$OPENAI_API_KEY`` at each request, never written.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..engines import Sampling, get_engine
from ..extract import boxed_blocks
from ..extract.spans import tag_blocks
from ..prompts import JUDGE_SYSTEM, JUDGE_USER, OPEN_FORM_NOTE, judge_messages, open_question, render
from ..records import Record
from ..stats import mcnemar, wilson

JUDGE_MAX_TOKENS = 16  # one word is asked for; a few more leave room for "CORRECT." and a newline

# The gold option refers to the other options: without them it means nothing.
_REFERS = re.compile(
    r"\b(?:all|none|both|neither|any) of (?:the )?(?:above|these|those|them|following|options|choices)\b|"
    r"^\s*(?:all|none|both) (?:are|of them)\b|\b[A-J] (?:and|&|or|but not) [A-J]\b|^\s*[A-J](?:\s*,\s*[A-J])+\b|"
    r"^\s*(?:[1-9](?:\s*(?:,|and|&)\s*[1-9])+)\s*$|以上|均是|均不是|都是|都不是|全部",
    re.IGNORECASE,
)
# The stem asks to pick an exception or a statement among the options. "NOT" and "EXCEPT" in capitals are the exam
# convention; in lower case "not" is too common in vignettes ("does not smoke") to mean it outside a "which" clause.
_PICKS = re.compile(
    r"\bEXCEPT\b|\bNOT\b|(?i:\bexcept\b|\bwhich\b[^.?]*\b(?:is|are|was|were|would|does|do|should|could) not\b|\bleast (?:likely|common|"
    r"appropriate|useful|helpful)\b|\b(?:false|incorrect|untrue|wrong)\b|\bstatements?\b|\bfollowing (?:is|are) "
    r"(?:true|correct)\b)|不[是属正包对]|错误的是|正确的是|不正确|下列说法|叙述"
)


def skip_reason(record: Record) -> str | None:
    """Why ``record`` cannot be asked without its options (None: it can)."""
    if not record.options:
        return "no options"
    if _REFERS.search(record.answer_text):
        return "the gold option refers to the others"
    if _PICKS.search(record.question):
        return "the stem picks an exception or a statement"
    return None


def settings(plain: dict[str, Any], config: Any) -> dict[str, Any]:
    """What decides an open-form row: the plain answer's settings, how the free answer is generated (in loglik mode
    too), the open question's wording and the judge (``config``: the :class:`~medrlvr.evaluate.EvalConfig`)."""
    judge = {"model": config.judge_model, "system": JUDGE_SYSTEM, "user": JUDGE_USER} if config.judge_model else None
    generation = {k: getattr(config, k) for k in ("prompt", "chat", "prefill", "max_new_tokens", "stop")}
    return {**plain, **generation, "probe": "open_form", "note": OPEN_FORM_NOTE, "judge": judge}


_CJK_CHAR = r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]"
_CJK_GAP = re.compile(rf"(?<={_CJK_CHAR})\s+(?={_CJK_CHAR})")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalise(text: str) -> str:
    """Text for the normalised match: NFKC, case folded, punctuation as spaces, English articles dropped,
    whitespace collapsed, and none left between two CJK characters.

    >>> normalise("The  Phrenic-nerve.")
    'phrenic nerve'
    >>> normalise("阿司匹林 片。"), normalise("ＡＴＰ")
    ('阿司匹林片', 'atp')
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    text = " ".join(_ARTICLES.sub(" ", text).split())
    return _CJK_GAP.sub("", text)


def free_answer(text: str, prompt: str) -> str | None:
    """The free answer in the prompt's format (answer tag, or ``\\boxed{}`` for the filter prompt); None when there is
    none, it is empty, or several blocks disagree."""
    blocks = boxed_blocks(text) if prompt == "filter" else tag_blocks(text, "answer")
    answers = {b.strip() for b in blocks if b.strip()}
    if len({normalise(a) for a in answers}) != 1:
        return None
    return max(answers, key=len)


def grade(record: Record, response: str, prompt: str) -> dict[str, Any]:
    """One open-form row, graded by exact and normalised match (the judge's fields are added by :func:`judge_rows`)."""
    answer = free_answer(response, prompt)
    gold = record.answer_text.strip()
    return {
        "id": record.id,
        "subject": record.subject,
        "gold": record.answer,
        "gold_text": gold,
        "response": response,
        "answer": answer,
        "exact": answer is not None and answer.strip() == gold,
        "normalised": answer is not None and bool(normalise(gold)) and normalise(answer) == normalise(gold),
    }


def verdict(reply: str) -> bool | None:
    """The judge's reply as a verdict: True for CORRECT, False for INCORRECT, None when it says neither or both."""
    words = set(re.findall(r"[A-Za-z]+", reply.upper()))
    said = words & {"CORRECT", "INCORRECT"}
    return None if len(said) != 1 else said == {"CORRECT"}


def judge_engine(model: str, options: dict[str, Any]) -> Any:
    """The judge: ``model`` on an OpenAI-compatible server (``options``: base_url, concurrency ...)."""
    return get_engine("openai", model, **options)


def judge_rows(rows: list[dict[str, Any]], records: Sequence[Record], engine: Any, model: str) -> None:
    """Ask the judge about every row with a free answer; store its messages, raw reply and verdict in the row. A
    row without an answer is not sent: it fails, with no reply."""
    asked = [(row, record) for row, record in zip(rows, records) if row["answer"] is not None]
    messages = [judge_messages(rec.question, row["gold_text"], row["answer"]) for row, rec in asked]
    replies = engine.generate(messages, n=1, sampling=Sampling(max_new_tokens=JUDGE_MAX_TOKENS, temperature=0.0))
    for row in rows:
        row.update(judge_model=model, judge_prompt=None, judge_raw=None, judge=False)
    for (row, _), prompt, (reply, *_) in zip(asked, messages, replies):
        row.update(judge_prompt=prompt, judge_raw=reply.text, judge=verdict(reply.text))


def ask(chunk: Sequence[Record], model: Callable[[], tuple[Any, bool]], config: Any, judge: Any = None) -> list[dict]:
    """One open-form row per record of ``chunk``: asked without its options (greedy, under ``config``'s prompt, chat,
    prefill, max_new_tokens and stop), graded, and judged by ``judge`` when there is one; or skipped, with why.
    ``model()`` gives the engine (behind a context guard) and whether it takes chat prompts."""
    asked = [r for r in chunk if skip_reason(r) is None]
    graded: dict[str, dict[str, Any]] = {}
    if asked:
        guard, chat = model()
        sampling = Sampling(max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed,
                            stop=tuple(config.stop), include_stop=True)  # fmt: skip
        prompts = [render(r, config.prompt, chat, config.prefill, open_question(r)) for r in asked]
        outputs = guard.generate(prompts, n=1, sampling=sampling)
        for r, (completion, *_) in zip(asked, outputs):
            graded[r.id] = grade(r, (config.prefill or "") + completion.text, config.prompt)
        for i, tokens in guard.too_long.items():  # not sent: no answer
            graded[asked[i].id]["too_long"] = tokens
        if judge is not None:
            name = config.judge_model or getattr(judge, "name", "judge")
            judge_rows(list(graded.values()), asked, judge, name)
    return [graded.get(r.id) or skipped_row(r, skip_reason(r)) for r in chunk]


def skipped_row(record: Record, reason: str) -> dict[str, Any]:
    return {"id": record.id, "subject": record.subject, "gold": record.answer, "skipped": reason}


def _rate(count: float, n: int) -> dict[str, Any]:
    return {"accuracy": count / n if n else 0.0, "ci95": list(wilson(count, n))}


def summarize(plain: Sequence[dict], rows: Sequence[dict]) -> dict[str, Any]:
    """Open-form accuracies beside the multiple-choice accuracy of the same questions (rows paired by id)."""
    asked = {r["id"]: r for r in rows if "skipped" not in r}
    pairs = [(p, asked[p["id"]]) for p in plain if p["id"] in asked]
    n = len(pairs)
    mc = [bool(p["correct"]) for p, _ in pairs]
    out: dict[str, Any] = {
        "n": n,
        "skipped": dict(Counter(r["skipped"] for r in rows if "skipped" in r)),
        "multiple_choice": _rate(sum(p.get("credit", p["correct"]) for p, _ in pairs), n),
        "exact": _rate(sum(bool(q["exact"]) for _, q in pairs), n),
        "normalised": _rate(sum(bool(q["normalised"]) for _, q in pairs), n),
        "no_answer": sum(q["answer"] is None for _, q in pairs),
    }
    best = "normalised"
    if pairs and all("judge_model" in q for _, q in pairs):
        out["judge"] = {
            **_rate(sum(q["judge"] is True for _, q in pairs), n),
            "model": pairs[0][1]["judge_model"],
            "unparseable": sum(q["judge"] is None and q["judge_raw"] is not None for _, q in pairs),
        }
        best = "judge"
    open_right = [bool(q[best]) for _, q in pairs]
    out["inflation"] = {  # multiple-choice accuracy minus open-form accuracy (the judge's, else normalised match)
        "measure": best,
        "difference": out["multiple_choice"]["accuracy"] - out[best]["accuracy"],
        "mcnemar_p": mcnemar(mc, open_right)["p_value"],
    }
    return out
