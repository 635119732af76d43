"""Throughput benchmarks (``medrlvr bench ...``). Speed goals are checked here, never by timed unit tests."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path

from .rewards import accuracy_reward, format_reward, xml_count_reward

OPTIONS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}

# Fragments that make naive regex extractors backtrack or rescan: unclosed tags, unclosed braces, boxes with no
# brace, cue words with no answer, hedges, negations, full-width text. A unit is repeated to the size; a
# (head, unit, tail) triple wraps the repetition (one huge answer tag).
ADVERSARIAL_UNITS: dict[str, str | tuple[str, str, str]] = {
    "unclosed answer tags": "<answer>",
    "unclosed think tags": "<think>",
    "unclosed boxes": "\\boxed{",
    "boxes without braces": "\\boxed ",
    "fboxes without braces": "\\fbox ",
    "nested open boxes": "\\boxed{{",
    "closed boxes": "\\boxed{B} ",
    "open braces": "{",
    "answer cues": "the answer is ",
    "option cues": "the correct option is ",
    "hedges": "Answer: A or ",
    "hedge lines": "Answer: B or C\n",
    "negations": "The answer is not B. ",
    "negated tags": "<answer>B is incorrect</answer>",
    "letters": "A ",
    "lowercase letters": "option b or c (d) ",
    "option texts": "Vitamin A deficiency or Aspirin ",
    "full-width": "Ａｎｓｗｅｒ： Ｂ （Ｃ） １８ ",
    "number fragments": "#### 1,",
    "digit commas": "1,23",
    "mixed": "<answer>\\boxed{answer is (A or ",
    "one huge answer tag": ("<answer>", "B or not A ", "</answer>"),
    "realistic 100 KB": "<think>Let me re-check the options. </think>",
}


def bench_rewards(size: int = 100_000, repeats: int = 5) -> list[dict]:
    """Milliseconds to score one ``size``-character adversarial completion with each reward (median of repeats);
    the accuracy reward twice: with options (letters) and without (numbers, as for GSM8K)."""
    rows = []
    for name, unit in ADVERSARIAL_UNITS.items():
        head, unit, tail = unit if isinstance(unit, tuple) else ("", unit, "")
        body = size - len(head) - len(tail)
        text = head + (unit * (body // len(unit) + 1))[:body] + tail
        if name.startswith("realistic"):
            text = text[: size - 40] + "<answer>B</answer>"
        row = {"completion": name, "chars": len(text)}
        calls = {  # text bound now: a lambda reads its loop variable when called
            "accuracy_reward": lambda t=text: accuracy_reward([t], answer=["B"], options=[OPTIONS]),
            "accuracy_reward (numbers)": lambda t=text: accuracy_reward([t], answer=["18"]),
            "format_reward": lambda t=text: format_reward([t]),
            "xml_count_reward": lambda t=text: xml_count_reward([t]),
        }
        for column, call in calls.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1000)
            row[column] = statistics.median(times)
        rows.append(row)
    return rows


def print_rewards(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = [k for k in rows[0] if k not in ("completion", "chars")]  # one per reward call of bench_rewards
    table = Table(title="reward time per completion, ms (median of 5); budget 50 ms")
    for column in ["completion", "chars", *columns]:
        table.add_column(column, justify="left" if column == "completion" else "right")
    for row in rows:
        table.add_row(row["completion"], f"{row['chars']:,}", *(f"{row[k]:.2f}" for k in columns))
    Console().print(table)
    worst_ms, worst_row = max((max(r[k] for k in columns), r["completion"]) for r in rows)
    verdict = "within" if worst_ms < 50 else "OVER"
    Console().print(f"worst: {worst_ms:.2f} ms on {worst_row!r} ({verdict} the 50 ms budget)")


# --- generation throughput -------------------------------------------------------------------------------


def _naive_baseline(model: str, prompts: list, max_new_tokens: int, seed: int) -> dict:
    """The reference point: transformers' own generate, batch 32, prompts in the order given, on the device in use
    (fp32 on a CPU, bf16 on a GPU, as a user of transformers would run it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import checkpoint_dir

    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = checkpoint_dir(model)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    torch.manual_seed(seed)
    tokens = 0
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        enc = tok(texts[i : i + 32], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = lm.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=0.7,
                top_p=1.0,
                top_k=0,
                pad_token_id=tok.pad_token_id,
            )
        eos = {
            tok.eos_token_id,
            *(
                [lm.generation_config.eos_token_id]
                if isinstance(lm.generation_config.eos_token_id, int)
                else lm.generation_config.eos_token_id or []
            ),
        }
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            # Counted as the engines count: up to and including the first end-of-sequence token.
            tokens += next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
    if device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "tokens": tokens, "completions": len(texts), "device": device}


def _engine_run(engine: str, model: str, prompts: list, max_new_tokens: int, seed: int, options: dict) -> dict:
    from .engines import Sampling, get_engine

    eng = get_engine(engine, model, **options)
    start = time.perf_counter()
    out = eng.generate(prompts, n=1, sampling=Sampling(max_new_tokens=max_new_tokens, temperature=0.7, seed=seed))
    seconds = time.perf_counter() - start
    eng.close()
    return {"seconds": seconds, "tokens": sum(c.tokens for cs in out for c in cs), "completions": len(prompts)}


def _child(target, args, queue) -> None:
    from .study import peak_rss_mb

    try:
        result = target(*args)
        result["peak_rss_mb"] = peak_rss_mb()
        queue.put(result)
    except Exception as e:  # reported as a row, not a crash of the whole benchmark
        queue.put({"error": f"{type(e).__name__}: {e}"})


def _isolated(target, *args) -> dict:
    """Run one configuration in a fresh process, so each row's peak memory is its own."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def bench_generate(
    model: str,
    data_dir: str | None,
    n_prompts: int = 64,
    max_new_tokens: int = 128,
    seed: int = 0,
    engines: tuple[str, ...] = ("transformers", "llamacpp"),
) -> list[dict]:
    """Tokens/s and completions/s for each engine on the same MedQA test prompts (Fig. 1 filter prompt, chat),
    with the naive transformers baseline measured in the same run."""
    from .data import load_benchmark
    from .models import checkpoint_dir
    from .prompts import chat_messages

    records = load_benchmark("medqa", "test", data_dir)[:n_prompts]
    prompts = [chat_messages(r, "filter") for r in records]
    checkpoint_dir(model)  # convert once, outside the timings
    rows = [
        {
            "engine": "naive baseline",
            "config": "transformers generate, batch 32 (fp32 on CPU, bf16 on GPU)",
            **_isolated(_naive_baseline, model, prompts, max_new_tokens, seed),
        }
    ]
    configs = []
    if "transformers" in engines:
        configs.append(("transformers", "medrlvr, auto dtype, batch 64", {}))
    if "llamacpp" in engines:
        configs.append(("llamacpp", "llama-cpp-python, GGUF, one stream", {}))
    for engine, config, options in configs:
        rows.append(
            {
                "engine": engine,
                "config": config,
                **_isolated(_engine_run, engine, model, prompts, max_new_tokens, seed, options),
            }
        )
    base = rows[0]
    for row in rows:
        if "error" not in row:
            row["tok_s"] = row["tokens"] / row["seconds"]
            row["completions_s"] = row["completions"] / row["seconds"]
            row["ratio"] = row["tok_s"] / (base["tokens"] / base["seconds"]) if "error" not in base else float("nan")
            row["ratio_completions"] = base["seconds"] / row["seconds"] if "error" not in base else float("nan")
    return rows


def print_generate(rows: list[dict], model: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"generation on {model}: MedQA test prompts, 128 new tokens, sampled (T=0.7)")
    for column in ("engine", "config", "s", "tokens", "tok/s", "compl/s", "x tok/s", "x compl/s", "peak RSS MB"):
        table.add_column(column, justify="left" if column in ("engine", "config") else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["engine"], r["config"], r["error"], "", "", "", "", "", "")
            continue
        table.add_row(
            r["engine"],
            r["config"],
            f"{r['seconds']:.1f}",
            str(r["tokens"]),
            f"{r['tok_s']:.1f}",
            f"{r['completions_s']:.2f}",
            f"{r['ratio']:.2f}",
            f"{r['ratio_completions']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    Console(width=160).print(table)


# --- GRPO step time ----------------------------------------------------------------------------------------


def _step_timer(step_times: list[float]):
    """A callback appending each optimizer step's wall time to ``step_times``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.start)

    return StepTimer()


def _grpo_steps(settings: dict, train_file: str, out: str, steps: int) -> dict:
    """Train ``steps`` GRPO steps with medrlvr's trainer; per-step wall time and the time spent generating."""
    import torch
    from trl import GRPOTrainer

    from .train import TrainConfig, build_trainer, training_records

    generating: list[float] = []
    original = GRPOTrainer._generate

    def timed(self, prompts):  # every rollout path goes through here: TRL's own generate, vLLM, rollout_func
        start = time.perf_counter()
        try:
            return original(self, prompts)
        finally:
            generating.append(time.perf_counter() - start)

    GRPOTrainer._generate = timed
    step_times: list[float] = []
    config = TrainConfig(
        **{**settings, "train_file": train_file, "output_dir": out, "max_steps": steps, "save_steps": 10**6}
    )
    trainer = build_trainer(config, training_records(train_file))
    trainer.add_callback(_step_timer(step_times))
    trainer.train()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"steps": steps, "step_seconds": step_times, "generate_seconds": generating, "device": device}


def _plain_trl_steps(settings: dict, train_file: str, out: str, steps: int) -> dict:
    """The reference point for the whole trainer: TRL's GRPOTrainer as its documentation shows it, with the
    recipe's settings (the same prompts, prefill and rewards) and TRL's own defaults for everything the recipe does
    not set (fp32 weights with bf16 autocast, activation checkpointing, its fused LM head, its generate)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from .models import checkpoint_dir
    from .rewards import REWARDS
    from .train import TrainConfig, _dataset, training_records, with_prefill_text

    config = TrainConfig(**{**settings, "train_file": train_file, "output_dir": out})
    path = checkpoint_dir(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    dataset = _dataset(training_records(train_file), tokenizer, config)
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
    return {"steps": steps, "step_seconds": step_times, "generate_seconds": [], "device": device}


def bench_train(recipe: str, data_dir: str | None, steps: int = 4, overrides: list[str] | None = None) -> dict:
    """Seconds per GRPO step with TRL's own generation and with medrlvr's rollouts, one process each, with every
    other setting taken from ``recipe``'s train section (model, batch, rollouts, completion length, LoRA, seed,
    prefill, ...). The first step (warm-up: model conversion, kernel selection) is reported but not averaged."""
    import tempfile

    from .data import load_pool, resolve_data_dir
    from .models import checkpoint_dir
    from .store import write_jsonl
    from .study import load_recipe

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
    for engine in ("trl", "medrlvr"):
        result = _isolated(
            _grpo_steps, {**settings, "rollout_engine": engine}, str(tmp / "train.jsonl"), str(tmp / engine), steps
        )
        rows.append({"rollouts": engine, **result})
    plain = _isolated(_plain_trl_steps, settings, str(tmp / "train.jsonl"), str(tmp / "plain"), steps)
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
    labels = {"trl": "TRL's own generate", "medrlvr": "medrlvr rollouts"}
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
    done = {r["rollouts"]: r for r in rows if "mean_step_seconds" in r}
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


# --- agreement with lm-evaluation-harness ------------------------------------------------------------------

LMEVAL_TASK = """task: medrlvr_mmlu_{subject}
dataset_path: csv
dataset_name: null
dataset_kwargs:
  data_files: {{test: "{path}"}}
  column_names: [question, A, B, C, D, answer]
test_split: test
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {title}.\\n\\n"
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{A}}}}\\nB. {{{{B}}}}\\nC. {{{{C}}}}\\nD. {{{{D}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def bench_lmeval(model: str, data_dir: str | None, subjects: str = "medical", out_dir: str = "runs/lmeval") -> dict:
    """Zero-shot loglik accuracy on MMLU subjects from lm-evaluation-harness (reading the same CSV files through
    a task YAML written here) and from medrlvr's evaluator, on the same model in fp32, question by question."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    from .data import load_benchmark, resolve_data_dir
    from .data.subjects import expand_subjects
    from .engines import get_engine
    from .evaluate import EvalConfig, evaluate
    from .models import checkpoint_dir

    device = "cuda" if torch.cuda.is_available() else "cpu"  # both sides on the device in use, in fp32
    root = resolve_data_dir(data_dir) / "mmlu" / "test"
    names = sorted(expand_subjects("mmlu", subjects))
    out = Path(out_dir)
    tasks = out / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    for s in names:
        (tasks / f"{s}.yaml").write_text(
            LMEVAL_TASK.format(subject=s, path=root / f"{s}_test.csv", title=s.replace("_", " "))
        )
    path = checkpoint_dir(model)
    start = time.perf_counter()
    res = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={path},dtype=float32",
        batch_size=8,
        device=device,
        tasks=[f"medrlvr_mmlu_{s}" for s in names],
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        num_fewshot=0,
    )
    lm_seconds = time.perf_counter() - start
    theirs: dict[str, list[bool]] = {}
    for s in names:
        samples = sorted(res["samples"][f"medrlvr_mmlu_{s}"], key=lambda x: x["doc_id"])
        theirs[s] = [bool(x["acc"]) for x in samples]
    records = load_benchmark("mmlu", "test", data_dir, subjects=names)
    engine = get_engine("transformers", model, dtype="fp32", device=device)
    start = time.perf_counter()
    ours_res = evaluate(
        records, EvalConfig(model=model), out / "medrlvr", f"mmlu:{subjects}", engine=engine, progress=False
    )
    our_seconds = time.perf_counter() - start
    from .store import JsonlStore

    ours = {row["id"]: row["correct"] for row in JsonlStore(out / "medrlvr" / "predictions.jsonl")}
    agree = total = 0
    per_subject = {}
    for s in names:
        mine = [ours[f"mmlu-test-{s}-{i}"] for i in range(len(theirs[s]))]
        per_subject[s] = {"n": len(mine), "lm_eval": sum(theirs[s]) / len(mine), "medrlvr": sum(mine) / len(mine)}
        agree += sum(a == b for a, b in zip(mine, theirs[s]))
        total += len(mine)
    lm_acc = sum(sum(v) for v in theirs.values()) / total
    return {
        "questions": total,
        "lm_eval_accuracy": lm_acc,
        "medrlvr_accuracy": ours_res["accuracy"],
        "difference_points": 100 * (ours_res["accuracy"] - lm_acc),
        "same_correctness": agree / total,
        "lm_eval_seconds": lm_seconds,
        "medrlvr_seconds": our_seconds,
        "per_subject": per_subject,
    }
