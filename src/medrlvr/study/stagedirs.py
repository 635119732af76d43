"""A stage's output folder and its finished marker (``stage.json``), and the moves that keep a finished output
until its replacement is done: set aside to ``RUN/.previous/...``, taken back when the old settings return.

A finished marker lists every file the stage wrote (size, sha256, and for JSON Lines the rows and a hash of the
sorted ids), so a later run can tell a finished output from one that was cut, edited or deleted since
(:func:`damage`) instead of trusting whatever is on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .provenance import file_hash

# Files up to this size are hashed on every check (reading a few MB costs less than trusting a damaged file); larger
# ones (weights, checkpoints) by their size and rows, and by their hash with `medrlvr run --verify`.
HASHED_ALWAYS = 32 * 2**20


def marker(folder: Path) -> dict[str, Any] | None:
    path = folder / "stage.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:  # torn by a crash: the folder's state is unknown, as if unmarked
        return None


def finished(marker: dict[str, Any] | None, key: str | None = None) -> bool:
    return bool(marker) and marker.get("status") == "done" and (key is None or marker.get("key") == key)


def is_finished(folder: Path) -> bool:
    """Whether a run finished this stage folder (whatever its settings were)."""
    return finished(marker(folder))


def settled(folder: Path, settings: dict[str, Any]) -> bool:
    """Whether a run finished this stage folder with these settings (each a part of the inputs its marker keeps):
    a stage whose settings changed since is work left, though its folder is finished."""
    found, asked = marker(folder), json.loads(json.dumps(settings, default=str))  # as the marker wrote them
    return finished(found) and all((found.get("inputs") or {}).get(k) == v for k, v in asked.items())


def set_aside(out: Path, kept: Path) -> None:
    """Move a finished stage folder to ``kept`` (a rename: nothing is copied), replacing an older one there."""
    if kept.exists():
        shutil.rmtree(kept)
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out, kept)


def swap_back(out: Path, kept: Path, keep_displaced: bool) -> None:
    """Put ``kept`` back at ``out``; what was at ``out`` is kept in its place if finished, else removed."""
    swap = kept.with_name(kept.name + ".swap")
    if out.exists():
        os.replace(out, swap)
    os.replace(kept, out)
    if swap.exists():
        if keep_displaced:
            os.replace(swap, kept)
        else:
            shutil.rmtree(swap)


def finish_swap(out: Path, kept: Path) -> None:
    """Settle a :func:`swap_back` that a kill interrupted: before ``kept`` moved, undo it; after, keep both."""
    swap = kept.with_name(kept.name + ".swap")
    if not swap.exists():
        return
    if not kept.exists():
        os.replace(swap, kept)
    elif not out.exists():
        os.replace(swap, out)
    else:
        shutil.rmtree(swap)


def prune(folder: Path, root: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``root``."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _rows(path: Path) -> int:
    """Non-blank lines (a cut last line counts: the size tells it apart)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _ids_hash(path: Path) -> str | None:
    """sha256 of the sorted ids of a JSON Lines file whose rows carry one, else None."""
    ids = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    return None
                if not isinstance(row, dict) or "id" not in row:
                    return None
                ids.append(str(row["id"]))
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest() if ids else None


def written(folder: Path) -> dict[str, dict[str, Any]]:
    """What a finished stage wrote: relative path -> {size, sha256[, rows, ids_sha256]} (its marker and temporary
    files left out)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == "stage.json" or path.name.endswith(".tmp"):
            continue
        entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": file_hash(path)}
        if path.suffix == ".jsonl":
            entry["rows"] = _rows(path)
            ids = _ids_hash(path)
            if ids:
                entry["ids_sha256"] = ids
        files[rel] = entry
    return files


def damage(folder: Path, files: dict[str, dict[str, Any]], deep: bool = False) -> str | None:
    """Why ``folder`` no longer holds what its marker says it wrote (naming the file), or None. Sizes and rows are
    always checked, hashes for small files or when ``deep``."""
    for rel, want in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != want.get("size"):
            return f"{path} has {size} bytes, {want.get('size')} when the stage finished"
        if "rows" in want and _rows(path) != want["rows"]:
            return f"{path} has {_rows(path)} rows, {want['rows']} when the stage finished"
        if (deep or size <= HASHED_ALWAYS) and file_hash(path) != want.get("sha256"):
            return f"{path} changed since the stage finished (its sha256 differs)"
    return None
