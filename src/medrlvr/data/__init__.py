"""Benchmark loading: ``load_benchmark(name, split, data_dir, subjects)`` -> list of :class:`~medrlvr.records.Record`.

The data directory holds one folder per benchmark in its official layout (``medqa/US/...``, ``mmlu/test/...``);
it comes from the ``data_dir`` argument or the ``MEDRLVR_DATA_DIR`` environment variable. ``hf_id`` loads the
same benchmark from the Hugging Face Hub instead (``hf_id=True`` takes the benchmark's usual id).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..records import Record
from .benchmarks import BENCHMARKS, Benchmark, DataError, RowError, read_jsonl
from .subjects import SUBJECT2CATEGORY, SUBJECT_GROUPS, expand_subjects

__all__ = [
    "BENCHMARKS", "BenchmarkSpec", "DataError", "Records", "SUBJECT2CATEGORY", "SUBJECT_GROUPS", "benchmark_files",
    "folder_name", "get_benchmark", "load_benchmark", "load_eval_spec", "load_pool", "load_records_file",
    "resolve_data_dir", "test_split_evidence",
]  # fmt: skip

log = logging.getLogger(__name__)
ENV_VAR = "MEDRLVR_DATA_DIR"


class Records(list):
    """A list of records that also says how many malformed rows were skipped (``on_error="skip"``)."""

    skipped: list[str]

    def __init__(self, items: Iterable[Record] = (), skipped: list[str] | None = None):
        super().__init__(items)
        self.skipped = skipped or []


def resolve_data_dir(data_dir: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    value = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if not value:
        if required:
            raise DataError(f"no data directory: pass --data-dir or set {ENV_VAR} (e.g. {ENV_VAR}=../shared/data)")
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist (from {'--data-dir' if data_dir else ENV_VAR})")
    return path


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def _split(bench: Benchmark, split: str | None) -> str:
    split = split or bench.default_split
    split = bench.aliases.get(split, split)
    if split not in bench.files:
        raise DataError(f"{bench.name} has no split {split!r}; known: {', '.join(bench.files)}")
    return split


def benchmark_files(name: str, split: str | None = None, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files of one split that exist in the data directory, in load order."""
    bench = get_benchmark(name)
    split = _split(bench, split)
    root = bench.root or resolve_data_dir(data_dir) / bench.folder
    files: list[Path] = []
    for pattern in bench.files[split]:
        files.extend(sorted(root.glob(pattern)))
    return files


def load_benchmark(
    name: str,
    split: str | None = "test",
    data_dir: str | os.PathLike | None = None,
    subjects: str | list[str] | None = None,
    *,
    hf_id: str | bool | None = None,
    on_error: str = "raise",
) -> Records:
    """Load one split of a benchmark as records.

    ``subjects`` takes subject names or group names (``"medical"``, ``"stem"``; see ``SUBJECT_GROUPS``).
    A malformed row raises :class:`DataError` naming the file, the row and the field; with
    ``on_error="skip"`` such rows are skipped and listed in the result's ``skipped``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    bench = get_benchmark(name)
    if split == "test" and "test" not in bench.files:
        split = None  # e.g. MedMCQA's test answers are not public: its evaluation split is dev
    split = _split(bench, split)
    wanted = expand_subjects(name, subjects)
    rows, source = _located_rows(bench, split, data_dir, hf_id)
    records, skipped, seen = Records(), [], {}
    counters: dict[Path, int] = {}
    for path, where, row in rows:
        index = counters.get(path, 0)
        counters[path] = index + 1
        try:
            if isinstance(row, RowError):
                raise row
            record = bench.adapt(row, index, split, path)
            if record.id in seen:
                raise RowError("id", f"duplicates {seen[record.id]}")
            seen[record.id] = where
        except (RowError, KeyError, TypeError, ValueError) as e:
            message = f"{path}: {where}: {e if isinstance(e, RowError) else f'field {e!s}: is missing or malformed'}"
            if on_error == "raise":
                raise DataError(message) from None
            skipped.append(message)
            continue
        if wanted is None or record.subject in wanted:
            records.append(record)
    if not counters:  # not one row: an empty file evaluates to "accuracy 0.000 on 0 questions" otherwise
        raise DataError(f"{source}: no questions in {bench.name} {split} (empty file?)")
    if wanted is not None and not records and not skipped:
        known = sorted({*SUBJECT_GROUPS.get(name, {})})
        raise DataError(f"{name} {split}: no rows for subjects {sorted(wanted)}; groups: {', '.join(known) or '-'}")
    if skipped:
        log.warning("%s %s: skipped %d malformed rows; first: %s", name, split, len(skipped), skipped[0])
    records.skipped = skipped
    return records


def _located_rows(bench: Benchmark, split: str, data_dir, hf_id: str | bool | None):
    """(file, place, row) of every row of one split, from the data directory or the Hub; and where they come from."""
    if hf_id:
        if not bench.hf_id:
            raise DataError(f"{bench.name} has no Hugging Face copy")
        return _hf_rows(bench, split, bench.hf_id if hf_id is True else str(hf_id)), f"the Hub copy of {bench.name}"
    files = benchmark_files(bench.name, split, data_dir)
    if not files:
        root = bench.root or resolve_data_dir(data_dir) / bench.folder
        raise DataError(f"{bench.name} {split}: no files matching {', '.join(bench.files[split])} under {root}")
    return (located for path in files for located in bench.read(path)), ", ".join(str(p) for p in files)


def load_records_file(path: str | os.PathLike, pool: bool = False) -> Records:
    """Records from a JSON Lines file of :class:`Record` dicts (a pool a user brings, a selected training set).
    With ``pool=True`` a record from a test split is refused (see :func:`test_split_evidence`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    records = Records()
    seen: dict[str, int] = {}
    for _, where, row in read_jsonl(path):
        try:
            if isinstance(row, RowError):
                raise row
            if not isinstance(row, dict):
                raise RowError("<row>", f"expected an object, got {type(row).__name__}")
            record = Record.from_dict(row)
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: {where}: {e}") from None
        if record.id in seen:
            raise DataError(f"{path}: {where}: field 'id': {record.id!r} repeats line {seen[record.id]}")
        seen[record.id] = int(where.split()[-1])
        if pool and (evidence := test_split_evidence(record)):
            field_name, why = evidence
            raise DataError(f"{path}: {where}: field '{field_name}': {why}; test splits are for evaluation only")
        records.append(record)
    return records


# Ids our adapters make from the split: "medqa-test-12", "mmlu-test-anatomy-3", "gsm8k-test-7", "demo-test-004".
_SPLIT_ID = re.compile(rf"^({'|'.join(map(re.escape, BENCHMARKS))})-(\w+?)-", re.IGNORECASE)


def test_split_evidence(record: Record) -> tuple[str, str] | None:
    """(field, why) if ``record`` comes from a benchmark's test split, by its ``split`` field, by an id our
    adapters give test questions, or by a ``source`` benchmark whose only split with questions is test."""
    split = record.split.strip().lower()
    if split == "test":
        return "split", "is 'test'"
    m = _SPLIT_ID.match(record.id)
    if m and m.group(2).lower() == "test":
        return "id", f"{record.id!r} is a {m.group(1)} test question"
    bench = BENCHMARKS.get(record.source.strip().lower())
    if bench and "test" in bench.files:
        others = {s for s in bench.files if s != "test"} | {a for a, s in bench.aliases.items() if s != "test"}
        if split not in others:  # no split, or one the benchmark does not have: it cannot show it is not test
            return "split", (
                f"is {record.split!r} for a {bench.name} question; say which split it came from "
                f"({', '.join(sorted(others)) or 'it has only a test split'})"
            )
    return None


def load_pool(spec: str, data_dir: str | os.PathLike | None = None) -> Records:
    """A candidate pool for filtering and selection: ``NAME[:SPLIT]`` (e.g. ``medmcqa:dev``) or a JSONL file.

    Test splits are refused, from a benchmark and from a file alike: they are for evaluation only."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"the pool must be NAME[:SPLIT] or a JSONL file, got {spec!r}")
    if spec.endswith(".jsonl") or Path(spec).is_file():
        return load_records_file(spec, pool=True)
    name, _, split = spec.partition(":")
    bench = get_benchmark(name)
    split = _split(bench, split or bench.default_split)
    if split == "test":
        raise DataError(
            f"{name} test is for evaluation only; take a pool from a train or dev split "
            f"(known: {', '.join(s for s in bench.files if s != 'test')}) or a JSONL file"
        )
    return load_benchmark(name, split, data_dir)


@dataclass(frozen=True)
class BenchmarkSpec:
    """An evaluation set as commands and recipes name it, ``NAME[:SUBJECTS][@MODE]`` (``mmlu:medical``,
    ``medqa@generate``), parsed here and nowhere else. ``label`` names its results (the report's column; by default
    the benchmark, with ``@generate`` in generate mode so that both modes sit side by side) and ``folder`` is the
    folder they go to under RUN/eval/MODEL."""

    name: str
    subjects: str | None = None
    mode: str | None = None  # None: the evaluation's own setting
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.benchmark + ("@generate" if self.mode == "generate" else ""))

    @classmethod
    def parse(cls, text: str, mode: str | None = None, label: str | None = None) -> BenchmarkSpec:
        """``NAME[:SUBJECTS][@MODE]``; ``mode`` is the mode when the text names none. The mode is checked where it
        becomes an evaluation's setting (``EvalConfig.mode``), so that any results label parses."""
        base, _, given = text.strip().partition("@")
        name, _, subjects = base.partition(":")
        return cls(name.strip(), subjects.strip() or None, given or mode, label or "")

    @property
    def benchmark(self) -> str:
        """``NAME[:SUBJECTS]``: which questions, whatever the mode."""
        return self.name + (f":{self.subjects}" if self.subjects else "")

    @property
    def folder(self) -> str:
        return folder_name(self.label)

    def load(self, data_dir: str | os.PathLike | None = None, split: str = "test") -> Records:
        return load_benchmark(self.name, split, data_dir, self.subjects)

    def fewshot_pool(self, data_dir: str | os.PathLike | None = None) -> Records:
        """The dev split, where few-shot examples come from (every subject: the examples are picked per subject)."""
        return load_benchmark(self.name, "dev", data_dir)


def folder_name(label: str) -> str:
    """The folder an evaluation's results go to: its label with ``:`` (not allowed in Windows paths) as ``_``."""
    return label.replace(":", "_")


def load_eval_spec(spec: str, data_dir: str | os.PathLike | None = None, split: str = "test") -> Records:
    """An evaluation set ``NAME[:SUBJECTS]`` (e.g. ``mmlu:medical``), the test split unless told otherwise."""
    return BenchmarkSpec.parse(spec).load(data_dir, split)


def _hf_rows(bench: Benchmark, split: str, hf_id: str):
    """Rows of the same benchmark from the Hugging Face Hub (needs network access and ``datasets``)."""
    import datasets

    if split not in bench.hf_splits:
        raise DataError(f"{bench.name}: the Hub copy {hf_id} has no split for {split!r}")
    configs = [bench.hf_config]
    if bench.name == "cmmlu":  # one config per subject
        configs = sorted(SUBJECT2CATEGORY["cmmlu"])
    for config in configs:
        ds = datasets.load_dataset(hf_id, config, split=bench.hf_splits[split])
        # The adapters take the subject from the file name; give the Hub rows a stand-in path that says it.
        for i, row in enumerate(ds):
            subject = row.get("subject") or config or bench.name
            path = Path(f"hf://{hf_id}") / (f"{subject}_{split}.csv" if bench.name == "mmlu" else f"{subject}.csv")
            yield path, f"row {i + 1}", bench.hf_row(row) if bench.hf_row else row
