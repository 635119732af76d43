"""Where each stage writes in a run directory (the layout in the README), for the stages that write there and the
report and the study that read it; the names that become its folders; and the lock that lets one process at a time
write into it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .data import folder_name
from .errors import UserError

LOCK_FILE = ".lock"
# Set for the child processes a study starts into its own run directory (a training launcher): they run under the
# study's lock, so they must not wait for it.
LOCK_ENV = "MEDRLVR_RUN_DIR_LOCKED"


class RunDirError(UserError):
    """A name that would leave its folder, or a run directory another process is writing into."""


def check_name(name: object, where: str) -> str:
    """``name`` as a folder name of the run directory, or one line naming ``where`` (the recipe key): a name is
    never empty, absolute, a path (a separator or ``..``) or hidden (``.previous`` and ``.lock`` are the study's)."""
    text = str(name)
    why = None
    if not text.strip():
        why = "is empty"
    elif "/" in text or "\\" in text or os.sep in text or (os.altsep and os.altsep in text):
        why = "holds a path separator"
    elif text.startswith("."):
        why = "starts with '.' (the study's own folders, and '..', do)"
    elif "\0" in text or any(ord(c) < 32 for c in text):
        why = "holds a control character"
    if why:
        raise RunDirError(f"{where}: the name {text!r} {why}; a name is one folder name, e.g. letters, digits, - _ .")
    return text


def check_distinct(names: dict[str, str], what: str) -> None:
    """``names`` (where -> folder name) must give distinct folders, also on a file system that ignores case."""
    seen: dict[str, str] = {}
    for where, name in names.items():
        other = seen.setdefault(name.casefold(), where)
        if other != where:
            raise RunDirError(f"{where}: {what} {name!r} would share one folder with {other}; rename one")


def inside(run_dir: str | Path, *parts: str | Path) -> Path:
    """``run_dir/parts...``, checked to lie inside ``run_dir`` once resolved (links and ``..`` followed): every
    folder the study writes is built here, so no name can make it write elsewhere."""
    root = Path(run_dir)
    path = root.joinpath(*parts)
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise RunDirError(f"{path} is outside the run directory {root}; a name in the recipe leads out of it")
    return path


def eval_dir(run_dir: str | Path, model: str, benchmark: str) -> Path:
    """Where one model's results on one benchmark go: RUN/eval/MODEL/FOLDER (``benchmark`` is the results' label,
    see :class:`medrlvr.data.BenchmarkSpec`). The report reads the same layout."""
    return inside(run_dir, "eval", model, folder_name(benchmark))


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not written its details yet)"
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: "
            f"{info.get('command') or 'a medrlvr command'}")  # fmt: skip


@contextlib.contextmanager
def locked(run_dir: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``run_dir``'s lock (``RUN/.lock``, an OS lock: ``fcntl.flock``) until the block ends, however it ends.
    Another holder is one line naming its pid, host, command and start. The OS drops the lock of a process that
    died, so a lock file left by one is simply taken over; its details are overwritten."""
    root = Path(run_dir)
    if os.environ.get(LOCK_ENV) == str(root.resolve()):  # started by the study that holds it
        yield root
        return
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(f"{root} is in use by {_holder(path)}; wait for it to finish or use another "
                          "--run-dir") from None  # fmt: skip
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": command or " ".join(sys.argv)}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield root
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no details of a holder that is gone
        os.close(fd)  # releases the lock
