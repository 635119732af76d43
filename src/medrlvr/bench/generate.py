"""``medrlvr bench generate``: tokens/s and completions/s of each engine on the same MedQA test prompts, with
transformers' own ``generate`` (how a user of transformers would sample) measured in the same run as the baseline.
Each configuration runs in its own process, so that each row's peak memory is its own."""

from __future__ import annotations

import time

from ..study.provenance import machine_line
from .common import isolated


def _naive_baseline(model: str, prompts: list, max_new_tokens: int, seed: int) -> dict:
    """The reference point: transformers' own generate, batch 32, prompts in the order given, on the device in use
    (fp32 on a CPU, bf16 on a GPU, as a user of transformers would run it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models import checkpoint_dir

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
    from ..engines import Sampling, get_engine

    eng = get_engine(engine, model, **options)
    start = time.perf_counter()
    out = eng.generate(prompts, n=1, sampling=Sampling(max_new_tokens=max_new_tokens, temperature=0.7, seed=seed))
    seconds = time.perf_counter() - start
    eng.close()
    return {"seconds": seconds, "tokens": sum(c.tokens for cs in out for c in cs), "completions": len(prompts)}


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
    from ..data import load_benchmark
    from ..models import checkpoint_dir
    from ..prompts import chat_messages

    records = load_benchmark("medqa", "test", data_dir)[:n_prompts]
    prompts = [chat_messages(r, "filter") for r in records]
    checkpoint_dir(model)  # convert once, outside the timings
    rows = [
        {
            "engine": "naive baseline",
            "config": "transformers generate, batch 32 (fp32 on CPU, bf16 on GPU)",
            **isolated(_naive_baseline, model, prompts, max_new_tokens, seed),
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
                **isolated(_engine_run, engine, model, prompts, max_new_tokens, seed, options),
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
    Console().print(f"machine: {machine_line()}")  # every figure is about this CPU/GPU and dtype
