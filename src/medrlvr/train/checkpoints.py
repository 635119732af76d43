"""Checkpoints and resumption: only a checkpoint whose writing finished is resumed, and a finished training is not
trained again (nor continued with other settings)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainError

log = logging.getLogger(__name__)

CHECKPOINT_MARKER = "medrlvr-complete.json"
DONE_FILE = "train_done.json"
# settings that do not change what is trained: a finished run with only these changed is the same run
COSMETIC = ("output_dir", "logging_steps", "save_steps", "save_total_limit", "report_to", "sample_completions",
            "merge")  # fmt: skip


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint whose writing finished (transformers' ``get_last_checkpoint`` over the marked ones);
    unfinished ones (a kill while saving) are moved aside to ``checkpoint-N.incomplete`` first, so that neither
    resumption nor transformers' rotation takes them for checkpoints."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

    if not out.is_dir():
        return None
    for folder in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if folder.is_dir() and folder.name.split("-")[-1].isdigit() and not (folder / CHECKPOINT_MARKER).is_file():
            aside = folder.with_name(f"{folder.name}.incomplete")
            if aside.exists():
                shutil.rmtree(aside)
            folder.rename(aside)
            log.warning("%s was not completely written (interrupted while saving); moved to %s", folder, aside.name)
    last = get_last_checkpoint(str(out))
    return Path(last) if last else None


STEP_LOGS = ("metrics.jsonl", "completions.jsonl", "question_rewards.jsonl")
"""The logs a training appends to step by step, each row with its optimizer ``step``."""


def trim_step_logs(out: Path, step: int) -> dict[str, int]:
    """Drop from each of ``STEP_LOGS`` the rows of steps after ``step`` (the checkpoint a run resumes from): the
    killed run wrote them, the resumed one writes them again, so that a resumed run's logs equal an uninterrupted
    run's. A row without a step (a last line cut by the kill) goes too. Each file is replaced whole (written beside, then renamed). Returns the rows dropped per file."""
    dropped = {}
    for name in STEP_LOGS:
        path = out / name
        if not path.is_file():
            continue
        kept, gone = [], 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                row_step = json.loads(line).get("step")
            except (json.JSONDecodeError, AttributeError):
                row_step = None
            if isinstance(row_step, int) and row_step <= step and line.endswith("\n"):
                kept.append(line)
            else:
                gone += 1
        if gone:
            partial = path.with_name(path.name + ".partial")
            partial.write_text("".join(kept), encoding="utf-8")
            partial.replace(path)
            log.warning("%s: %d rows after step %d dropped (the resumed run writes them again)", path, gone, step)
        dropped[name] = gone
    return dropped


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide what is trained (``COSMETIC`` ones left out)."""
    return {k: v for k, v in values.items() if k not in COSMETIC}


def check_previous(out: Path, config: TrainConfig) -> bool:
    """True when ``out`` holds this exact training, finished. Raises when it holds another one (finished, or
    checkpoints of other settings): continuing it would mix two trainings."""
    previous = out / "train_config.json"
    if not previous.is_file():
        return False
    try:
        before = _settings(json.loads(previous.read_text()))
    except ValueError:
        return False
    now = _settings(asdict(config))
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    finished = (out / DONE_FILE).is_file()
    started = finished or any(out.glob("checkpoint-*"))
    if changed and started:
        raise TrainError(
            f"{out} holds a {'finished' if finished else 'started'} training with other settings "
            f"({', '.join(changed[:5])}); use another output_dir (or remove that one)"
        )
    return finished and not changed
