"""``medrlvr bench train``: seconds per GRPO step with TRL's own generation and with medrlvr's rollouts (the same
trainer otherwise), and TRL's GRPOTrainer as its documentation shows it, one process each.

Timing goes through public extension points: optimizer steps through a TrainerCallback, generation through a
subclass of medrlvr's GRPOTrainer (:func:`timed_generation`) whose generation method records its wall time; every
rollout path (TRL's generate, vLLM, ``rollout_func``) goes through that method."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..study.provenance import machine_line
from .common import isolated, load_recipe


def _step_timer(step_times: list[float]):
    """A callback appending each optimizer step's wall time to ``step_times``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.start)

    return StepTimer()


def timed_generation(base: type, seconds: list[float]) -> type:
    """A subclass of the GRPOTrainer class ``base`` that appends each generation's wall time to ``seconds``."""

    class TimedGeneration(base):
        def _generate(self, prompts):  # every rollout path goes through here: TRL's generate, vLLM, rollout_func
            start = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                seconds.append(time.perf_counter() - start)

    return TimedGeneration


def timed_critic(base: type, seconds: dict[str, list[float]]) -> type:
    """A subclass of medrlvr's PPO trainer ``base`` that records, per call, the seconds of what PPO adds to a GRPO
    step: the rollout batch's critic values, old log-probs and GAE (``after_scoring``), and the critic's forward in
    the loss (its backward is inside the step's backward and shows in the rest)."""

    class TimedCritic(base):
        def after_scoring(self, output):
            start, self._scoring = time.perf_counter(), True
            try:
                return super().after_scoring(output)
            finally:
                seconds["advantages"].append(time.perf_counter() - start)
                self._scoring = False

        def _values(self, inputs):
            start = time.perf_counter()
            try:
                return super()._values(inputs)
            finally:
                if self.model.training and not getattr(self, "_scoring", False):
                    seconds["critic_forward"].append(time.perf_counter() - start)

    return TimedCritic


def _grpo_steps(settings: dict, train_file: str, out: str, steps: int) -> dict:
    """Train ``steps`` steps of ``settings["method"]`` (GRPO or PPO) with medrlvr's trainer; per-step wall time,
    the time spent generating and, for PPO, in what it adds."""
    import torch

    from ..train import TrainConfig, build_trainer, training_records

    generating: list[float] = []
    step_times: list[float] = []
    extra: dict[str, list[float]] = {"advantages": [], "critic_forward": []}
    config = TrainConfig(
        **{**settings, "train_file": train_file, "output_dir": out, "max_steps": steps, "save_steps": 10**6}
    )
    if config.method == "ppo":
        from ..train.ppo.trainer import MedrlvrPPOTrainer

        trainer_class = timed_generation(timed_critic(MedrlvrPPOTrainer, extra), generating)
    else:
        from ..train.grpo.loss import MedrlvrGRPOTrainer

        trainer_class = timed_generation(MedrlvrGRPOTrainer, generating)
    trainer = build_trainer(config, training_records(train_file), trainer_class=trainer_class)
    trainer.add_callback(_step_timer(step_times))
    trainer.train()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"steps": steps, "step_seconds": step_times, "generate_seconds": generating,
            "device": _device_label(device), **{f"{k}_seconds": v for k, v in extra.items() if v}}  # fmt: skip


def _plain_trl_steps(settings: dict, train_file: str, out: str, steps: int) -> dict:
    """The reference point for the whole trainer: TRL's GRPOTrainer as its documentation shows it, with the
    recipe's settings (the same prompts, prefill and rewards) and TRL's own defaults for everything the recipe does
    not set (fp32 weights with bf16 autocast, activation checkpointing, its fused LM head, its generate)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from ..models import checkpoint_dir
    from ..rewards import REWARDS
    from ..train import TrainConfig, build_dataset, training_records
    from ..train.grpo import with_prefill_text

    config = TrainConfig(**{**settings, "train_file": train_file, "output_dir": out})
    path = checkpoint_dir(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    dataset = build_dataset(training_records(train_file), tokenizer, config)
    step_times: list[float] = []

    args = GRPOConfig(
        output_dir=out, learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler_type,
        per_device_train_batch_size=config.batch_size * config.num_generations, num_generations=config.num_generations,
        gradient_accumulation_steps=config.gradient_accumulation_steps, max_steps=steps,
        max_completion_length=config.max_completion_length, temperature=config.temperature, beta=config.beta,
        loss_type=config.loss_type, reward_weights=[float(w) for w in config.rewards.values()], logging_steps=1,
        save_strategy="no", report_to="none", seed=config.seed,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        reward_funcs=[with_prefill_text(REWARDS[n], config.prefill) for n in config.rewards],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
            task_type="CAUSAL_LM",
        ),  # fmt: skip
        callbacks=[_step_timer(step_times)],
    )
    trainer.train()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"steps": steps, "step_seconds": step_times, "generate_seconds": [], "device": _device_label(device)}


def bench_train(recipe: str, data_dir: str | None, steps: int = 4, overrides: list[str] | None = None,
                method: str = "grpo") -> dict:  # fmt: skip
    """Seconds per GRPO step with TRL's own generation and with medrlvr's rollouts, one process each, with every
    other setting taken from ``recipe``'s train section (model, batch, rollouts, completion length, LoRA, seed,
    prefill, ...). The first step (warm-up: model conversion, kernel selection) is reported but not averaged.
    ``method="ppo"``: a GRPO and a PPO row instead, both with medrlvr's rollouts and the same batch, rollouts,
    lengths and KL coefficient (the reference pass is in both), PPO's extra work timed apart."""
    import tempfile

    from ..data import load_pool, resolve_data_dir
    from ..models import checkpoint_dir
    from ..store import write_jsonl

    recipe_obj = load_recipe(recipe, overrides or [], data_dir=data_dir)
    policy = recipe_obj.policies[0].config
    settings = {k: v for k, v in asdict(policy).items() if k not in ("train_file", "output_dir")}
    settings["dynamic_sampling"] = False  # the same work in both rows: no extra generation rounds
    checkpoint_dir(settings["model"])  # convert once, outside the timings
    pool = load_pool(recipe_obj.data.pool, recipe_obj.data.data_dir)
    need = settings["batch_size"] * settings["gradient_accumulation_steps"] * steps
    tmp = Path(tempfile.mkdtemp(prefix="medrlvr-bench-train-"))
    write_jsonl(tmp / "train.jsonl", [r.to_dict() for r in pool[:need]])
    rows = []
    if method == "ppo":
        for name in ("grpo", "ppo"):
            row = {**settings, "rollout_engine": "medrlvr", "method": name}
            row["loss_type"] = settings["loss_type"] if name == "ppo" or settings["method"] == "grpo" else "grpo"
            result = isolated(_grpo_steps, row, str(tmp / "train.jsonl"), str(tmp / name), steps)
            rows.append({"rollouts": name, **result})
        root = resolve_data_dir(recipe_obj.data.data_dir, required=False)
        return {"recipe": recipe, "settings": settings, "pool": recipe_obj.data.pool, "data_dir": str(root),
                "rows": rows, "method": "ppo"}  # fmt: skip
    for engine in ("trl", "medrlvr"):
        result = isolated(
            _grpo_steps, {**settings, "rollout_engine": engine}, str(tmp / "train.jsonl"), str(tmp / engine), steps
        )
        rows.append({"rollouts": engine, **result})
    plain = isolated(_plain_trl_steps, settings, str(tmp / "train.jsonl"), str(tmp / "plain"), steps)
    rows.append({"rollouts": "plain TRL GRPOTrainer", **plain})
    root = resolve_data_dir(recipe_obj.data.data_dir, required=False)
    return {"recipe": recipe, "settings": settings, "pool": recipe_obj.data.pool, "data_dir": str(root), "rows": rows}


def _mean_after_warmup(values: list[float]) -> float:
    values = values[1:] if len(values) > 1 else values
    return sum(values) / len(values) if values else float("nan")


def print_train(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result["settings"]
    title = (
        f"GRPO steps on {s['model']} ({result['recipe']}): {s['batch_size']} questions x {s['num_generations']} "
        f"rollouts x <= {s['max_completion_length']} tokens, accumulation {s['gradient_accumulation_steps']}, "
        f"LoRA {s['lora']}, prefill {s['prefill']!r}"
    )
    table = Table(title=title)
    for column in (
        "rollouts",
        "device",
        "steps",
        "s/step",
        "generate s/step",
        "rest s/step",
        "first step s",
        "peak RSS MB",
    ):  # the first step (warm-up) is not in the means
        table.add_column(column, justify="left" if column == "rollouts" else "right")
    rows = result["rows"]
    labels = {"trl": "TRL's own generate", "medrlvr": "medrlvr rollouts", "grpo": "GRPO (medrlvr rollouts)",
              "ppo": "PPO with a critic (medrlvr rollouts)"}  # fmt: skip
    for r in rows:
        label = labels.get(r["rollouts"], r["rollouts"])
        if "error" in r:
            table.add_row(label, r["error"], *[""] * 6)
            continue
        step = _mean_after_warmup(r["step_seconds"])
        gen = _mean_after_warmup(r["generate_seconds"]) if r["generate_seconds"] else float("nan")
        r["mean_step_seconds"], r["mean_generate_seconds"] = step, gen
        table.add_row(label, r["device"], str(r["steps"]), f"{step:.2f}", f"{gen:.2f}", f"{step - gen:.2f}",
                      f"{r['step_seconds'][0]:.1f}", f"{r['peak_rss_mb']:.0f}")  # fmt: skip
    Console(width=160).print(table)
    Console().print(f"machine: {machine_line()}")  # every figure is about this CPU/GPU and dtype
    done = {r["rollouts"]: r for r in rows if "mean_step_seconds" in r}
    if "ppo" in done and "grpo" in done:
        ppo, grpo = done["ppo"], done["grpo"]
        steps = max(1, len(ppo["step_seconds"]))
        parts = ", ".join(f"{label} {sum(ppo.get(key, [])) / steps:.2f} s" for key, label in
                          (("advantages_seconds", "old log-probs + critic values + GAE"),
                           ("critic_forward_seconds", "critic forward in the loss")))  # fmt: skip
        Console().print(f"a PPO step against a GRPO step, the same rollouts and batch: "
                        f"{ppo['mean_step_seconds'] / grpo['mean_step_seconds']:.2f}x; PPO's additions per step: {parts}")  # fmt: skip
    if "trl" in done and "medrlvr" in done:
        trl, ours = done["trl"], done["medrlvr"]
        Console().print(
            f"medrlvr rollouts against TRL's own generate, the same trainer: "
            f"{trl['mean_step_seconds'] / ours['mean_step_seconds']:.2f}x per GRPO step, "
            f"{trl['mean_generate_seconds'] / ours['mean_generate_seconds']:.2f}x in generation"
        )
        if "plain TRL GRPOTrainer" in done:
            plain = done["plain TRL GRPOTrainer"]["mean_step_seconds"]
            Console().print(
                f"medrlvr train against plain TRL GRPOTrainer: {plain / ours['mean_step_seconds']:.2f}x per step"
            )


def _device_label(device: str) -> str:
    """``cpu AVX512 bfloat16``: the row's device, vector capability and compute dtype (rows differ by CPU)."""
    from ..study.provenance import machine

    facts = machine()
    return f"{device} {facts['cpu_capability']} {facts['dtype']}" if device == "cpu" else f"{device} {facts['dtype']}"
