"""Training through verl (PyPI ``verl`` 0.9.x: Ray, FSDP, vLLM/SGLang rollouts) instead of TRL: ``backend: verl``.

Why a second backend: Med-RLVR (arXiv 2502.19655) trained Qwen2.5-3B with PPO and a critic (OpenRLHF); TRL no
longer has PPO, and its multi-GPU path stops at one node. verl runs PPO with a GAE critic, GRPO (Open-Medical-R1,
arXiv 2504.13950) and DAPO (GRPO with dynamic sampling, clip-higher, token-mean loss) on one GPU or many nodes.
medrlvr keeps what it owns -- the selected questions, the R1-Zero prompt, the reward, the run directory -- and hands
verl the rest:

1. ``data/train.parquet`` and ``data/val.parquet`` in verl's RL schema (:func:`medrlvr.select.verl_rows`);
2. ``verl_launch.sh``: ``python -m verl.trainer.main_ppo`` with the full override list (:func:`overrides`), then
   verl's model merger on the last actor checkpoint. Every setting a paper fixes, and every verl default that
   would otherwise decide the maths (batch sizes, clip ranges, KL, loss aggregation, schedule), is written out;
   the reward is ``medrlvr.rewards.compute_score``, loaded as ``pkg://medrlvr.rewards`` -- verl's file-path loader
   would import ``rewards.py`` alone, and its relative imports fail there;
3. after training, the merged Hugging Face checkpoint is laid out as TRL's path lays it out -- ``model/`` (full
   fine-tuning) or ``adapter/`` (LoRA; ``merged/`` with ``merge: true``) and ``metrics.jsonl`` -- so ``eval`` and
   ``report`` treat the policy like any other.

Without verl in this environment, :func:`train` writes all of that, prints the command and stops with
:class:`VerlNotInstalled` (one line). ``scripts/verl_check.py`` checks the overrides against verl's own hydra config
and the reward against verl's own loader, on a CPU. verl training itself has not been run on a GPU from here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import StageError, UserError
from ...store import read_jsonl

if TYPE_CHECKING:
    from ..config import TrainConfig

from .settings import PLAIN_TEMPLATE, REWARD_PATH, VerlSettings, overrides, paths, settings

# the settings and overrides live in medrlvr.train.verl.settings; these names stay importable from here
__all__ = ["PLAIN_TEMPLATE", "VerlNotInstalled", "VerlSettings", "collect", "launch_script", "overrides", "paths",
           "prepare", "settings", "train"]  # fmt: skip


class VerlNotInstalled(UserError):
    """verl is not importable here; the launch script is written and the message says how to run it."""


def launch_script(config: TrainConfig, model_path: str | None = None) -> str:
    """The bash script that trains with verl and exports the last actor checkpoint in Hugging Face format."""
    s = settings(config)
    p = paths(config)
    q = {k: shlex.quote(str(v)) for k, v in p.items()}
    args = " \\\n    ".join(shlex.quote(o) for o in overrides(config, model_path))
    multi = (
        "# Several nodes: start a Ray cluster first (`ray start --head` here, `ray start --address=HEAD:6379` on the\n"
        "# others), then run this script on the head node.\n"
        if s.nnodes > 1
        else ""
    )
    return f"""#!/usr/bin/env bash
# Written by medrlvr (medrlvr.train.verl.launch): verl {s.algorithm} for the policy in {p["out"]}.
# Needs a GPU machine with verl and its rollout engine (pip install 'medrlvr[verl]' 'verl[{s.rollout}]') and
# medrlvr importable (verl loads the reward as {REWARD_PATH}). Rerunning resumes from the last checkpoint.
{multi}set -euo pipefail
PYTHON="${{PYTHON:-python3}}"
mkdir -p {q["out"]}
exec > >(tee -a {q["log"]}) 2>&1
export VERL_FILE_LOGGER_PATH={q["metrics"]}
"$PYTHON" -m verl.trainer.main_ppo \\
    {args}
# The last actor checkpoint in Hugging Face format (LoRA: the adapter goes to lora_adapter/ inside it), renamed
# into place only when complete: medrlvr collects verl_hf/ as the finished policy.
step=$(cat {q["checkpoints"]}/latest_checkpointed_iteration.txt)
rm -rf {q["hf"]} {q["hf"]}.partial
"$PYTHON" -m verl.model_merger merge --backend fsdp --local_dir {q["checkpoints"]}/global_step_"$step"/actor \\
    --target_dir {q["hf"]}.partial
mv {q["hf"]}.partial {q["hf"]}
"""


def verl_available() -> bool:
    return importlib.util.find_spec("verl") is not None


def write_parquet(records, path: Path, split: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ...prompts import verl_rows

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(verl_rows(records, split)), path)
    return path


def prepare(config: TrainConfig, data_dir: str | None = None, model_path: str | None = None) -> Path:
    """Write the train and validation parquet and the launch script; returns the script."""
    from ...data import load_pool
    from ...store import write_json
    from ..dataset import training_records

    s = settings(config)
    p = paths(config)
    p["out"].mkdir(parents=True, exist_ok=True)
    write_json(p["out"] / "train_config.json", asdict(config))
    records = training_records(config.train_file)  # the TRL path's reader: test-split records are refused
    val = list(load_pool(s.val, data_dir)) if s.val else list(records)
    val = random.Random(config.seed).sample(val, min(s.val_size, len(val)))
    write_parquet(records, p["train"], "train")
    write_parquet(val, p["val"], "validation")
    p["script"].write_text(launch_script(config, model_path))
    p["script"].chmod(0o755)
    return p["script"]


def collect(config: TrainConfig, model_path: str) -> Path:
    """Lay out the model merger's export as TRL's path does (model/ or adapter/, merged/), and write metrics.jsonl
    from verl's file log (``reward`` = the mean accuracy of the step's rollouts, as the report reads it)."""
    from transformers import AutoTokenizer

    p = paths(config)
    out, hf = p["out"], p["hf"]
    if not (hf / "config.json").exists():
        raise StageError(f"verl finished without a Hugging Face export in {hf}; see {p['log']}")
    adapter = hf / "lora_adapter"
    if config.lora != adapter.is_dir():
        raise StageError(
            f"verl's export in {hf} {'lacks' if config.lora else 'has'} a LoRA adapter, unlike lora: {config.lora}"
        )
    if adapter.is_dir():
        # The merger writes the adapter beside the (untouched) base weights; point the adapter at its base instead.
        meta = json.loads((adapter / "adapter_config.json").read_text())
        meta["base_model_name_or_path"] = model_path
        (adapter / "adapter_config.json").write_text(json.dumps(meta, indent=2))
        AutoTokenizer.from_pretrained(str(hf), trust_remote_code=config.trust_remote_code).save_pretrained(adapter)
        shutil.rmtree(out / "adapter", ignore_errors=True)
        os.replace(adapter, out / "adapter")
        shutil.rmtree(hf)
        if config.merge:
            _merge(out / "adapter", model_path, out / "merged")
    else:
        shutil.rmtree(out / "model", ignore_errors=True)
        os.replace(hf, out / "model")
    if p["metrics"].exists():
        rows = []
        for logged in read_jsonl(p["metrics"]):
            data = logged.get("data", {})
            row = {"step": logged.get("step"), **data}
            if "critic/score/mean" in data:
                row["reward"] = row["rewards/accuracy_reward/mean"] = data["critic/score/mean"]
            rows.append(row)
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _merge(adapter: Path, base: str, target: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype="auto"), str(adapter))
    model.merge_and_unload().save_pretrained(str(target), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(target))


def train(config: TrainConfig, data_dir: str | None = None) -> Path:
    """Train one policy with verl; returns the output directory. Without verl: write the data and the launch
    script, print the command, raise :class:`VerlNotInstalled`. A finished export already there (the script was
    run by hand, on another machine) is collected without training again."""
    from ...models import checkpoint_dir

    settings(config)
    model_path = checkpoint_dir(config.model)  # a packaged name or GGUF: a checkpoint directory verl can load
    if (paths(config)["hf"] / "config.json").exists():
        return collect(config, model_path)
    script = prepare(config, data_dir, model_path)
    command = f"bash {shlex.quote(str(script))}"
    if not verl_available():
        print(f"verl launch script: {script}\nrun it where verl is installed (a GPU machine): {command}")
        raise VerlNotInstalled(
            f"verl is not installed here (pip install 'medrlvr[verl]'); run `{command}` on a GPU machine with verl, "
            "then rerun this command to collect the policy"
        )
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    code = subprocess.run(["bash", str(script)], env=env, check=False).returncode
    if code:
        raise StageError(f"verl training failed: `{command}` exited with {code}; see {paths(config)['log']}")
    return collect(config, model_path)
