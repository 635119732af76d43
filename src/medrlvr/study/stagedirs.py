"""A stage's output folder and its finished marker (``stage.json``), and the moves that keep a finished output
until its replacement is done: set aside to ``RUN/.previous/...``, taken back when the old settings return."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


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
