"""What a training writes and prints as it goes: metrics.jsonl, the completion marker of each checkpoint, and one
line per step with the time left (transformers' TrainerCallback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..store import write_json
from .checkpoints import CHECKPOINT_MARKER


def callbacks(out: Path):
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    class MarkCheckpoints(TrainerCallback):
        """transformers writes a checkpoint's files one by one into its final folder; a kill in the middle leaves a
        folder that looks like a checkpoint and cannot be resumed. The marker is written after the last file, so
        only a marked checkpoint is ever resumed (see ``last_complete_checkpoint``)."""

        def on_save(self, args, state, control, **kwargs):
            folder = out / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json(folder / CHECKPOINT_MARKER, {"global_step": state.global_step})

    class OneLinePerStep(TrainerCallback):
        """A short line per logged step instead of transformers' dict of forty metrics, with the time left at the
        mean pace of the steps this process ran (the first, a warm-up, left out once there are others)."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_step = None, state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            import time

            if self.started is None:  # from the end of the first step: the warm-up is not the pace
                self.started, self.first_step = time.monotonic(), state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                line = step_line(out.name, state, logs)
                done, left = state.global_step - self.first_step, state.max_steps - state.global_step
                eta = _time_left(self.started, done, left)
                print(line + (f" | {eta} left" if eta and "train_runtime" not in logs else ""), flush=True)

    return [MetricsToJsonl(), MarkCheckpoints(), OneLinePerStep()]


def _time_left(started: float | None, steps_done: int, steps_left: int) -> str | None:
    """``3 min 10 s`` at the mean pace since ``started``, or None before a step was timed."""
    import time

    if started is None or steps_done < 1 or steps_left < 1:
        return None
    seconds = (time.monotonic() - started) / steps_done * steps_left
    return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def step_line(name: str, state, logs: dict[str, Any]) -> str:
    """``[train NAME] step 3/10 | reward 1.250 | format 0.50 | ... | 4.1 s``: what a user watches per step."""
    parts = [f"[train {name}] step {state.global_step}/{state.max_steps}"]
    if "reward" in logs:
        parts.append(f"reward {logs['reward']:.3f}")
        for key, value in logs.items():
            reward = key.split("/")[1] if key.count("/") == 2 else ""
            if key.startswith("rewards/") and key.endswith("/mean") and reward != "completion_sampler":
                parts.append(f"{reward.removesuffix('_reward')} {value:.2f}")
        if "frac_reward_zero_std" in logs:
            parts.append(f"tied groups {logs['frac_reward_zero_std']:.2f}")
    elif "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    elif "train_runtime" in logs:
        parts.append(f"done in {logs['train_runtime']:.0f} s")
    if "step_time" in logs:
        parts.append(f"{logs['step_time']:.1f} s")
    return " | ".join(parts)
