"""Reasoning-heavy or knowledge-heavy: a documented rule that labels each question, and accuracy on each kind.

BioMed-R1 (arXiv 2505.11462) splits medical benchmarks with a PubMedBERT classifier trained on MedXpertQA's
reasoning/understanding labels (81% agreement with experts) and finds models weaker on the reasoning-heavy third.
medrlvr ships no classifier weights and runs no model to label a question, so it uses a rule that a reader can check
by hand, written from what the two kinds look like, not fitted to any benchmark:

A question is **reasoning-heavy** when it shows at least two of these signs, else **knowledge-heavy**:

1. *a case*: a patient described by age ("a 45-year-old man", "aged 60", "45岁"), or a presentation ("presents
   with", "comes to the emergency department", "is brought to", "患者", "就诊");
2. *a decision to make*: the stem asks for the most likely diagnosis or cause, the next or best step, the most
   appropriate management, test or treatment, or what best explains the findings ("most likely", "next step",
   "most appropriate", "best explains", "最可能", "下一步", "最合适");
3. *findings to weigh*: at least two measurements with units or vital signs (mmHg, mg/dL, mmol/L, /min, °C, %,
   g/dL, U/L, /mm3 ...);
4. *length*: a stem of at least 60 words (or 120 characters of CJK text), the size of a vignette.

One sign is not enough: "Which drug reverses benzodiazepines?" after "A 40-year-old woman is drowsy" is recall with
a patient in front of it, and "What is the most likely cause of X?" without a case is a fact. "Which nerve
innervates the diaphragm?" has none. The rule's texts are English and Chinese (CMMLU), the languages of the
benchmarks medrlvr reads; a question in another language gets only the language-free signs (3 and 4).

How it was checked: ``tests/test_probes.py`` labels questions written for the purpose (vignettes with labs asking the
next step, one-line recall questions, the borderline cases above). The rule was written before any benchmark was
labelled and was not changed after. Measured once against MedXpertQA's expert labels (its reasoning and
understanding subsets, 1,861 + 589 questions; labels only, no model's scores), on 2026-12-06: 80.7% agreement
(1,696 of 1,861 reasoning questions labelled reasoning, 282 of 589 understanding questions labelled knowledge;
Cohen's kappa 0.43), where calling every question reasoning would agree on 76.0%: the rule finds vignettes well and
over-calls long understanding questions that carry a case. BioMed-R1's trained classifier agreed with experts on
81%. The same rule labels 93% of MedQA-USMLE test, 3% of MedMCQA dev and 5% of MMLU test reasoning-heavy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..records import Record
from ..stats import wilson

KINDS = ("reasoning", "knowledge")
RULE = "reasoning-heavy: at least 2 of case, decision stem, 2+ measurements, 60+ words (medrlvr.evaluate.split)"

_CASE = re.compile(
    r"\b\d{1,3}[- ](?:year|month|week|day)s?[- ]old\b|\baged? \d{1,3}\b|\d{1,3}\s*岁|"
    r"\b(?:presents?|presented|presenting) (?:to|with)\b|\bcomes? to the\b|\bis brought\b|\bwas brought\b|"
    r"\bon (?:physical )?examination\b|\b(?:his|her) (?:temperature|pulse|blood pressure)\b|患者|就诊|入院|查体",
    re.IGNORECASE,
)
_DECISION = re.compile(
    r"\bmost likely\b|\bmost probable\b|\bnext (?:best )?step\b|\bbest (?:next )?step\b|\bmost appropriate\b|"
    r"\bbest (?:explains?|initial|treatment|management)\b|\bmost (?:accurate|useful|helpful) (?:test|investigation)\b|"
    r"最可能|下一步|最合适|最恰当|首先应|应首先",
    re.IGNORECASE,
)
_MEASURE = re.compile(
    r"\d(?:[\d.,]*)\s*(?:mm ?Hg|mg/dL|mg/L|g/dL|g/L|mmol/L|mEq/L|µmol/L|umol/L|U/L|IU/L|ng/mL|pg/mL|/mm3|/mm\^3|"
    r"/µL|/uL|/min|/h\b|bpm|°[CF]|%|kg/m2|kg/m\^2|cells/)",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LONG_WORDS, LONG_CJK = 60, 120


def signs(question: str) -> dict[str, bool]:
    """Which of the rule's four signs ``question`` shows (see the module docstring)."""
    words = len(question.split())
    return {
        "case": bool(_CASE.search(question)),
        "decision": bool(_DECISION.search(question)),
        "measurements": len(_MEASURE.findall(question)) >= 2,
        "long": words >= LONG_WORDS or len(_CJK.findall(question)) >= LONG_CJK,
    }


def question_kind(record: Record) -> str:
    """``reasoning`` (at least two of the rule's signs in the question stem) or ``knowledge``."""
    return "reasoning" if sum(signs(record.question).values()) >= 2 else "knowledge"


def label(records: Sequence[Record], rows: Sequence[dict]) -> None:
    """Set each prediction row's ``kind`` from its record (rows and records in the same order), by the rule as it
    is now: rows written before the rule changed are labelled again, not trusted."""
    for record, row in zip(records, rows):
        row["kind"] = question_kind(record)


def results(rows: Sequence[dict]) -> dict[str, Any]:
    """Accuracy on each kind with a 95% Wilson interval (mean credit, as the benchmark's accuracy), and the rule."""
    out: dict[str, Any] = {"rule": RULE}
    for kind in KINDS:
        items = [r for r in rows if r.get("kind") == kind]
        right = sum(r.get("credit", r["correct"]) for r in items)
        n = len(items)
        out[kind] = {"n": n, "accuracy": right / n if n else 0.0, "ci95": list(wilson(right, n))}
    return out
