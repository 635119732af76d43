"""A crash-safe result store: append-only JSON Lines, one fsync per batch.

A batch is written as complete lines and flushed to disk before the next one starts, so ``kill -9`` loses at
most the batch in flight. A half-written last line (the process died inside ``write``) is cut off when the
store is opened again; every earlier line is whole. Filter and evaluation runs both keep their per-question
results here and skip what is already done when they resume.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
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


def read_jsonl(path: str | os.PathLike, unique: str | None = None) -> Iterator[Any]:
    """The rows of a JSON Lines file (blank lines skipped); a line that is not JSON is a :class:`JsonlError` naming
    the file and the line. Every JSON Lines file medrlvr reads goes through here. With ``unique`` (a field, "id"),
    a row repeating an earlier row's value is one too: a file with one row per question that holds a question twice
    was written by two runs at once or edited, and neither copy can be trusted to be the one to keep."""
    first: dict[Any, int] = {}
    for lineno, value, error in jsonl_lines(path):
        if error:
            raise JsonlError(f"{path}: line {lineno}: {error}; delete or fix the line")
        if unique and isinstance(value, dict) and unique in value:
            seen = first.setdefault(value[unique], lineno)
            if seen != lineno:
                raise JsonlError(f"{path}: line {lineno}: {unique} {value[unique]!r} is there twice (first on line "
                                 f"{seen}); delete the file to recompute it, or one of the rows")  # fmt: skip
        yield value


class OutputError(UserError):
    """An output that could not be written (disk full, read-only, no permission): the message names the file and
    the space left; the file's temporary copy is removed and nothing written before is touched."""


# The OS errors a user fixes (space, quota, permissions), as opposed to medrlvr's own mistakes.
USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def output_error(path: str | os.PathLike, e: OSError) -> OutputError:
    """One line for an OS error writing ``path``: what the OS said and how much space is left there."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MB free on {folder}"
    except OSError:
        free = f"free space on {folder} unknown"
    return OutputError(f"cannot write {path}: {e.strerror or e} ({free}); make room or choose another folder")


@contextlib.contextmanager
def _writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Turn an OS error while writing ``path`` into :class:`OutputError`, removing ``tmp`` (the half-written copy;
    ``path`` itself is only ever replaced whole)."""
    try:
        yield
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(e, OSError) and e.errno in USER_OS_ERRORS:
            raise output_error(path, e) from None
        raise


class JsonlStore:
    """``unique``: the field no two rows share (one row per question); reading a repeat is a :class:`JsonlError`."""

    def __init__(self, path: str | os.PathLike, unique: str | None = "id"):
        self.path = Path(path)
        self.unique = unique
        with _writing(self.path):
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
            yield from read_jsonl(self.path, self.unique)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows as one batch and make it durable before returning. A batch the disk cannot take is cut off
        again, so the file keeps only whole batches."""
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if not text:
            return
        size = self.path.stat().st_size if self.path.exists() else 0
        with _writing(self.path):
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                with contextlib.suppress(OSError), open(self.path, "rb+") as f:
                    f.truncate(size)
                raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write a JSON file atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with _writing(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSON Lines file atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with _writing(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
