"""A crash-safe result store: append-only JSON Lines, one fsync per batch.

A batch is written as complete lines and flushed to disk before the next one starts, so ``kill -9`` loses at
most the batch in flight. A half-written last line (the process died inside ``write``) is cut off when the
store is opened again; every earlier line is whole. Filter and evaluation runs both keep their per-question
results here and skip what is already done when they resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserError


class JsonlError(UserError):
    """A JSON Lines file with a line that is not JSON; the message names the file and the line."""


def jsonl_lines(path: str | os.PathLike, encoding_errors: str = "strict") -> Iterator[tuple[int, Any, str | None]]:
    """(line number, value, None) for every non-blank line of a JSON Lines file, or (line number, None, why) for a
    line that is not JSON, so a caller that may skip bad rows (the benchmark loader) keeps going."""
    with open(path, encoding="utf-8", errors=encoding_errors) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as e:
                yield lineno, None, f"not valid JSON ({e.msg})"


def read_jsonl(path: str | os.PathLike) -> Iterator[Any]:
    """The rows of a JSON Lines file (blank lines skipped); a line that is not JSON is a :class:`JsonlError` naming
    the file and the line. Every JSON Lines file medrlvr reads goes through here."""
    for lineno, value, error in jsonl_lines(path):
        if error:
            raise JsonlError(f"{path}: line {lineno}: {error}; delete or fix the line")
        yield value


class JsonlStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Drop a trailing partial line left by a crash in the middle of a write."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.path.exists():
            yield from read_jsonl(self.path)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows as one batch and make it durable before returning."""
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if not text:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write a JSON file atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSON Lines file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
