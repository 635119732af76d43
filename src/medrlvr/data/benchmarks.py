"""One spec per benchmark: where its files lie in each split, its Hugging Face id, and a row -> Record adapter.

Files are read in each benchmark's official layout (see the data directory's SOURCE.md files); a Hugging Face
dataset id for the same benchmark goes through a small ``hf_row`` shim into the same row shape, so one adapter
serves both.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..records import LETTERS, Record
from ..store import jsonl_lines

Row = Any
# (file, location inside the file for error messages, row)
Located = tuple[Path, str, Row]


class RowError(UserError):
    """A malformed row: which field and what is wrong with it."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"field '{field_name}': {problem}")
        self.field = field_name


def _get(row: dict, key: str) -> Any:
    if not isinstance(row, dict):
        raise RowError("<row>", f"expected an object, got {type(row).__name__}")
    if key not in row or row[key] is None:
        raise RowError(key, "is missing")
    return row[key]


def _letters_to_options(options: Any, field_name: str = "options") -> dict[str, str]:
    if isinstance(options, dict):
        items = {str(k).strip(): v for k, v in options.items() if v is not None}
    elif isinstance(options, (list, tuple)) or hasattr(options, "tolist"):
        items = dict(zip(LETTERS, list(options)))
        if len(options) > len(LETTERS):
            raise RowError(field_name, f"has {len(options)} options, at most {len(LETTERS)} are supported")
    else:
        raise RowError(field_name, f"expected a mapping or list of options, got {type(options).__name__}")
    if not all(isinstance(v, str) for v in items.values()):
        raise RowError(field_name, "every option must be text")
    return {k: v.strip() for k, v in items.items()}


def _record(field_name: str, **kwargs: Any) -> Record:
    """Build a Record, turning its validation error into a RowError naming the source field."""
    try:
        return Record(**kwargs)
    except ValueError as e:
        msg = str(e)
        m = re.match(r"field '(\w+)' (.*)", msg)
        if m:
            raise RowError(field_name if m.group(1) == "answer" else m.group(1), m.group(2)) from None
        raise RowError(field_name, msg) from None


class DataError(UserError):
    """A data file cannot be used; the message names the file, the row and the field."""


# --- file readers -------------------------------------------------------------------------------------------

# Files are decoded as UTF-8 with "surrogateescape": a byte that is not UTF-8 (latin-1 "é" is 0xe9) becomes a lone
# surrogate instead of stopping the whole file, so the row and field that hold it can be named (and skipped).
_UNDECODED = re.compile("[\udc80-\udcff]")


def _not_utf8(text: str) -> str | None:
    """A description of the first byte that was not UTF-8 in ``text`` (decoded with surrogateescape), or None."""
    m = _UNDECODED.search(text)
    if m is None:
        return None
    byte = ord(m.group()) - 0xDC00
    return f"is not UTF-8 text (byte 0x{byte:02x} at character {m.start() + 1}); save the file as UTF-8"


def _undecoded_field(row: Any, name: str = "<row>") -> tuple[str, str] | None:
    """(field, problem) for the first string in a parsed row that holds bytes that were not UTF-8."""
    if isinstance(row, str):
        problem = _not_utf8(row)
        return (name, problem) if problem else None
    items = row.items() if isinstance(row, dict) else enumerate(row) if isinstance(row, (list, tuple)) else ()
    for key, value in items:
        found = _undecoded_field(key, name) if isinstance(key, str) else None
        found = found or _undecoded_field(value, str(key) if isinstance(row, dict) else f"{name}[{key}]")
        if found:
            return found
    return None


def read_jsonl(path: Path) -> Iterator[Located]:
    for lineno, row, error in jsonl_lines(path, encoding_errors="surrogateescape"):
        if error:
            row = RowError("<json>", error)  # raised by the loader, which may skip it
        else:
            bad = _undecoded_field(row)
            row = RowError(*bad) if bad else row
        yield path, f"line {lineno}", row


def read_csv(path: Path, header: bool) -> Iterator[Located]:
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        row_start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit (an unclosed quote?)
                row = RowError("<csv>", f"cannot be read as CSV ({e}); an unclosed quote, or a field far too long")
            if header and row_start == 1:
                row_start = reader.line_num + 1
                continue
            if not isinstance(row, RowError):
                bad = _undecoded_field(row, "column")
                if bad:
                    index = int(bad[0].removeprefix("column[").rstrip("]")) + 1
                    row = RowError(f"column {index}", bad[1])
            yield path, f"line {row_start}", row
            row_start = reader.line_num + 1


def read_parquet(path: Path) -> Iterator[Located]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({str(e).splitlines()[0] if str(e) else e!r})") from None
    for i, row in enumerate(table.to_pylist()):
        yield path, f"row {i + 1}", row


# --- adapters: (row, index within split, split, file) -> Record -------------------------------------------


def medqa(row: Row, i: int, split: str, path: Path, name: str = "medqa") -> Record:
    return _record(
        "answer_idx",
        id=f"{name}-{split}-{i}",
        question=str(_get(row, "question")).strip(),
        options=_letters_to_options(_get(row, "options")),
        answer=str(_get(row, "answer_idx")).strip(),
        subject=str(row.get("meta_info") or ""),
        source=name,
        split=split,
    )


def demo(row: Row, i: int, split: str, path: Path) -> Record:
    """medrlvr's own sample questions, stored as Record dicts."""
    return _record(
        "answer",
        id=str(_get(row, "id")),
        question=str(_get(row, "question")),
        options=_letters_to_options(_get(row, "options")),
        answer=str(_get(row, "answer")),
        subject=str(row.get("subject") or ""),
        source="demo",
        split=split,
        explanation=row.get("explanation"),
    )


def medqa5(row: Row, i: int, split: str, path: Path) -> Record:
    return medqa(row, i, split, path, name="medqa5")


def medmcqa(row: Row, i: int, split: str, path: Path, cop_base: int = 1) -> Record:
    options = {letter: _get(row, key) for letter, key in zip("ABCD", ("opa", "opb", "opc", "opd"))}
    options = _letters_to_options(options)
    cop = _get(row, "cop")
    if isinstance(cop, bool) or not isinstance(cop, int) or not cop_base <= cop < cop_base + 4:
        raise RowError("cop", f"must be an option number {cop_base}-{cop_base + 3}, got {cop!r}")
    return _record(
        "cop",
        id=str(row.get("id") or f"medmcqa-{split}-{i}"),
        question=str(_get(row, "question")).strip(),
        options=options,
        answer="ABCD"[cop - cop_base],
        subject=str(row.get("subject_name") or ""),
        source="medmcqa",
        split=split,
        explanation=(row.get("exp") or None),
    )


PUBMEDQA_DECISIONS = {"yes": "A", "no": "B", "maybe": "C"}


def pubmedqa(row: Row, i: int, split: str, path: Path) -> Record:
    pmid, entry = row
    contexts = _get(entry, "CONTEXTS")
    labels = entry.get("LABELS") or [""] * len(contexts)
    if not isinstance(contexts, list) or not contexts:
        raise RowError("CONTEXTS", "must be a non-empty list of passages")
    context = "\n".join(f"{label}: {text}" if label else text for label, text in zip(labels, contexts))
    decision = str(_get(entry, "final_decision")).strip().lower()
    if decision not in PUBMEDQA_DECISIONS:
        raise RowError("final_decision", f"must be yes, no or maybe, got {decision!r}")
    return _record(
        "final_decision",
        id=str(pmid),
        question=f"Context:\n{context}\n\nQuestion: {str(_get(entry, 'QUESTION')).strip()}",
        options={"A": "yes", "B": "no", "C": "maybe"},
        answer=PUBMEDQA_DECISIONS[decision],
        subject="pubmedqa",
        source="pubmedqa",
        split=split,
        explanation=entry.get("LONG_ANSWER") or None,
    )


def medxpertqa(row: Row, i: int, split: str, path: Path) -> Record:
    question = str(_get(row, "question"))
    # The official text repeats the options after "Answer Choices:"; we render options ourselves.
    question = question.split("\nAnswer Choices:")[0].strip()
    if "realidx" in row:  # MedAgentsBench copy: medxpertqa-r / medxpertqa-u folders
        rid, answer = row["realidx"], _get(row, "answer_idx")
        subject = {"medxpertqa-r": "reasoning", "medxpertqa-u": "understanding"}.get(path.parent.name, "")
    else:  # official file: id, question, options, label, question_type
        rid, answer = _get(row, "id"), _get(row, "label")
        subject = str(row.get("question_type") or "").lower()
    return _record(
        "answer_idx" if "realidx" in row else "label",
        id=str(rid),
        question=question,
        options=_letters_to_options(_get(row, "options")),
        answer=str(answer).strip(),
        subject=subject,
        source="medxpertqa",
        split=split,
    )


def mmlu(row: Row, i: int, split: str, path: Path, name: str = "mmlu") -> Record:
    if len(row) != 6:
        raise RowError("<row>", f"expected 6 columns (question, A, B, C, D, answer), got {len(row)}")
    subject = path.stem.removesuffix(f"_{split}") if name == "mmlu" else path.stem
    return _record(
        "answer",
        id=f"{name}-{split}-{subject}-{i}",
        question=row[0].strip(),
        options=_letters_to_options(list(row[1:5])),
        answer=row[5].strip(),
        subject=subject,
        source=name,
        split=split,
    )


def cmmlu(row: Row, i: int, split: str, path: Path) -> Record:
    if len(row) != 7:
        raise RowError("<row>", f"expected 7 columns (index, Question, A, B, C, D, Answer), got {len(row)}")
    return mmlu(row[1:], i, split, path, name="cmmlu")


def mmlu_pro(row: Row, i: int, split: str, path: Path) -> Record:
    # Gold is the `answer` letter (the official evaluation compares with it); question 3983's answer_index
    # disagrees with it upstream.
    return _record(
        "answer",
        id=str(_get(row, "question_id")),
        question=str(_get(row, "question")).strip(),
        options=_letters_to_options(_get(row, "options")),
        answer=str(_get(row, "answer")).strip(),
        subject=str(_get(row, "category")),
        source="mmlu_pro",
        split=split,
        explanation=row.get("cot_content") or None,
    )


GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$")


def gsm8k(row: Row, i: int, split: str, path: Path) -> Record:
    solution = str(_get(row, "answer"))
    m = GSM8K_FINAL.search(solution)
    if not m:
        raise RowError("answer", "has no final '#### <number>' line")
    return _record(
        "answer",
        id=f"gsm8k-{split}-{i}",
        question=str(_get(row, "question")).strip(),
        options={},
        answer=m.group(1).replace(",", ""),
        subject="math",
        source="gsm8k",
        split=split,
        explanation=solution,
    )


# --- Hugging Face rows -> official row shape ---------------------------------------------------------------


def _hf_mmlu(row: dict) -> list[str]:
    return [row["question"], *row["choices"], "ABCD"[row["answer"]]]


def _hf_cmmlu(row: dict) -> list[str]:
    return ["", row["Question"], row["A"], row["B"], row["C"], row["D"], row["Answer"]]


def _hf_pubmedqa(row: dict) -> tuple[str, dict]:
    ctx = row["context"]
    return str(row["pubid"]), {
        "QUESTION": row["question"],
        "CONTEXTS": ctx["contexts"],
        "LABELS": ctx.get("labels"),
        "final_decision": row["final_decision"],
        "LONG_ANSWER": row.get("long_answer"),
    }


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    folder: str
    # split -> files (globs) under data_dir/folder, in load order
    files: dict[str, tuple[str, ...]]
    read: Callable[[Path], Iterator[Located]]
    adapt: Callable[..., Record]
    hf_id: str
    hf_config: str | None = None
    hf_splits: dict[str, str] = field(default_factory=dict)  # our split -> HF split
    hf_row: Callable[[dict], Row] | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # other split names -> ours
    default_split: str = "test"
    root: Path | None = None  # files shipped with medrlvr (the demo sample): read here, not from the data dir


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "medqa", "MedQA-USMLE, 4 options", "medqa",
            {s: (f"US/4_options/phrases_no_exclude_{s}.jsonl",) for s in ("train", "dev", "test")},
            read_jsonl, medqa, "GBaker/MedQA-USMLE-4-options", hf_splits={"train": "train", "test": "test"},
            aliases={"validation": "dev"},
        ),
        Benchmark(
            "medqa5", "MedQA-USMLE, 5 options", "medqa",
            {s: (f"US/{s}.jsonl",) for s in ("train", "dev", "test")},
            read_jsonl, medqa5, "bigbio/med_qa", hf_config="med_qa_en_source",
            hf_splits={"train": "train", "dev": "validation", "test": "test"},
            hf_row=lambda r: {**r, "options": {o["key"]: o["value"] for o in r["options"]}},
            aliases={"validation": "dev"},
        ),
        Benchmark(
            "medmcqa", "MedMCQA", "medmcqa", {"train": ("train.json",), "dev": ("dev.json",)},
            read_jsonl, medmcqa, "openlifescienceai/medmcqa", hf_splits={"train": "train", "dev": "validation"},
            # The HF copy numbers cop from 0; the official files from 1.
            hf_row=lambda r: {**r, "cop": r["cop"] + 1}, aliases={"validation": "dev"}, default_split="dev",
        ),
        Benchmark(
            "pubmedqa", "PubMedQA (PQA-L)", "pubmedqa", {"test": ("test_set.json",), "train": ("ori_pqal.json",)},
            lambda p: _read_pubmedqa(p), pubmedqa, "qiaojin/PubMedQA", hf_config="pqa_labeled",
            hf_splits={"train": "train"}, hf_row=_hf_pubmedqa,
        ),
        Benchmark(
            "medxpertqa", "MedXpertQA (Text)", "medxpertqa",
            {
                "test": ("medxpertqa-r/test.jsonl", "medxpertqa-u/test.jsonl", "Text/test.jsonl"),
                "dev": ("Text/dev.jsonl",),
            },
            read_jsonl, medxpertqa, "TsinghuaC3I/MedXpertQA", hf_config="Text",
            hf_splits={"test": "test", "dev": "dev"},
        ),
        Benchmark(
            "mmlu", "MMLU", "mmlu", {s: (f"{s}/*_{s}.csv",) for s in ("test", "dev", "val")},
            lambda p: read_csv(p, header=False), mmlu, "cais/mmlu", hf_config="all",
            hf_splits={"test": "test", "dev": "dev", "val": "validation"}, hf_row=_hf_mmlu,
            aliases={"validation": "val"},
        ),
        Benchmark(
            "cmmlu", "CMMLU", "cmmlu", {s: (f"{s}/*.csv",) for s in ("test", "dev")},
            lambda p: read_csv(p, header=True), cmmlu, "haonan-li/cmmlu", hf_splits={"test": "test", "dev": "dev"},
            hf_row=_hf_cmmlu,
        ),
        Benchmark(
            "mmlu_pro", "MMLU-Pro", "mmlu_pro",
            {"test": ("data/test-*.parquet",), "validation": ("data/validation-*.parquet",)},
            read_parquet, mmlu_pro, "TIGER-Lab/MMLU-Pro", hf_splits={"test": "test", "validation": "validation"},
            aliases={"dev": "validation", "val": "validation"},
        ),
        Benchmark(
            "demo", "medrlvr demo sample (ours, bundled)", "demo",
            {"train": ("train.jsonl",), "test": ("test.jsonl",)}, read_jsonl, demo, "",
            root=Path(__file__).resolve().parent / "demo",
        ),
        Benchmark(
            "gsm8k", "GSM8K", "gsm8k", {"test": ("test.jsonl",), "train": ("train.jsonl",)},
            read_jsonl, gsm8k, "openai/gsm8k", hf_config="main", hf_splits={"test": "test", "train": "train"},
        ),
    ]
}  # fmt: skip


def _read_pubmedqa(path: Path) -> Iterator[Located]:
    """PQA-L files are one JSON object PMID -> entry. The official test split is test_set.json; the other 500
    entries of ori_pqal.json are the train/dev pool, so "train" drops the test PMIDs when test_set.json is there."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8; save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: field '<json>': not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: line 1: field '<json>': expected an object PMID -> entry")
    exclude: set[str] = set()
    test_file = path.with_name("test_set.json")
    if path.name == "ori_pqal.json" and test_file.exists():
        exclude = set(json.loads(test_file.read_text(encoding="utf-8")))
    for pmid, entry in data.items():
        if pmid not in exclude:
            yield path, f"PMID {pmid}", (pmid, entry)
