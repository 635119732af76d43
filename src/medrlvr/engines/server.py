"""Start an inference server for the length of a stage: ``served("vllm serve MODEL --port 8000", base_url)``.

A study filters with several big models in turn and evaluates several policies; each needs its own server. The
command runs in its own process group with its output in a log file; the context waits until
``BASE_URL/models`` answers, and stops the whole group (SIGTERM, then SIGKILL) when the stage ends or fails.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UserError


class ServerStartError(UserError):
    """A model server did not start or answer; the message names the command and its log."""


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def served(command: str, base_url: str, log_path: str | Path, timeout: float = 1800.0, poll: float = 1.0):
    """Run ``command`` until the block ends; raise ServerStartError if it exits or is not ready in ``timeout`` s."""
    if _ready(base_url):
        raise ServerStartError(f"something already answers at {base_url}; stop it or use another port")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(shlex.split(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _ready(base_url):
            if process.poll() is not None:
                raise ServerStartError(
                    f"server command exited with code {process.returncode} before {base_url} answered: {command!r}; "
                    f"log {log_path}: {_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(f"{base_url} did not answer within {timeout:.0f} s; log {log_path}")
            time.sleep(poll)
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
