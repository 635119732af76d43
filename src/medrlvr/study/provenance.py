"""What a run directory records about where its results came from: content hashes of inputs, library versions, the
project commit, and the process's memory (peak, and handing freed memory back between stages)."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..records import Record

LIBRARIES = (
    "medrlvr", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "safetensors",
    "gguf", "llama_cpp_python", "vllm", "deepspeed", "numpy", "pyarrow", "matplotlib",
)  # fmt: skip


def stable_hash(value: Any) -> str:
    """sha256 of ``value`` as sorted-key JSON: the same settings give the same key in any order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def records_hash(records: Sequence[Record]) -> str:
    """sha256 of the records' content, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_hash(path: str | Path) -> str | None:
    """sha256 of a file's bytes (None when there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in LIBRARIES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            continue
    return out


def project_commit() -> dict[str, Any] | None:
    """The git commit of the medrlvr source tree, and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(dirty)}


def release_memory() -> None:
    """Hand the memory a finished stage freed back to the operating system. glibc keeps freed heap pages for reuse,
    and a stage's tensors leave them too fragmented to serve the next stage's: measured on the CPU demo, the study's
    resident memory stayed 3 GB above what was alive after training and the evaluations stacked their own peak on
    top (7.3 GB in all); with ``malloc_trim`` after each stage the whole study peaks at the training stage's 4.7."""
    import ctypes

    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def now() -> str:
    """The time in UTC, to the second, as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def without(config: Any, *names: str) -> dict[str, Any]:
    """A dataclass as a dict, less the named fields."""
    values = asdict(config)
    for name in names:
        values.pop(name, None)
    return values


def machine() -> dict[str, Any]:
    """What decides speed here: the device, the CPU's vector capability as torch sees it, whether it has native
    bf16 (AVX512-BF16/AMX), the dtype medrlvr computes in by default, and the threads. Every figure medrlvr prints
    (bench rows, the study's estimate and manifest) says which machine it is about."""
    import torch

    from ..modeling import cpu_supports_bf16, pick_dtype

    device = "cuda" if torch.cuda.is_available() else "cpu"
    facts: dict[str, Any] = {
        "device": device,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_supports_bf16(),
        "dtype": str(pick_dtype("auto", device)).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def machine_line(facts: dict[str, Any] | None = None) -> str:
    """``CPU AVX512, native bf16: yes, computing in bfloat16, 2 threads`` (or the GPU's name)."""
    f = facts or machine()
    if f["device"] == "cuda":
        return f"GPU {f.get('gpu', '?')}, computing in {f['dtype']}"
    bf16 = "yes" if f["native_bf16"] else "no"
    return f"CPU {f['cpu_capability']}, native bf16: {bf16}, computing in {f['dtype']}, {f['threads']} threads"
