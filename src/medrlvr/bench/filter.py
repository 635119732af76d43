"""``medrlvr bench filter``: what k samples per question cost the filter, against one, on the same pool in one run.

A filter with ``k`` samples (pass rates for the selection rules that read them) decodes k rows per question, but
prefills each question's prompt once and copies its cache to the k rows (:mod:`medrlvr.engines.hf`). The goal is
that k = 8 costs at most 3x k = 1: the prompt (a Fig. 1 filter prompt of MedMCQA: ~200 tokens) is paid once, and a
wider decode batch reads the weights once per step for more rows. Each k runs :func:`medrlvr.filter.filter_pool`
as a study runs it, on one loaded engine (the model is loaded once, outside the timings, and warmed up), into a
fresh folder, with the same sampling (temperature, seed) for every k. Figures are about this machine: the CPU's
capability and whether it computes in bf16 are printed with them.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ..study.provenance import machine_line


def bench_filter(
    model: str,
    pool: str,
    data_dir: str | None,
    ks: tuple[int, ...] = (1, 8),
    limit: int = 16,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    engine_options: dict | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Seconds and questions/s of the filter at each k on the first ``limit`` questions of ``pool``, and each
    k's cost against the first k's."""
    import torch

    from ..data import load_pool
    from ..engines import Sampling, get_engine
    from ..filter import FilterConfig, filter_pool
    from ..models import checkpoint_dir
    from ..prompts import render

    if threads:
        torch.set_num_threads(threads)
    records = load_pool(pool, data_dir)[:limit]
    checkpoint_dir(model)  # a GGUF conversion, once, outside the timings
    options = dict(engine_options or {})
    engine = get_engine("transformers", model, **options)
    engine.generate([render(records[0], "filter", engine.chat)], sampling=Sampling(max_new_tokens=2, seed=seed))
    rows = []
    with tempfile.TemporaryDirectory(prefix="medrlvr-bench-filter-") as tmp:
        for k in ks:
            config = FilterConfig(model=model, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                                  strict=False, chunk_size=len(records), seed=seed, engine_options=options)  # fmt: skip
            started = time.perf_counter()
            out = filter_pool(records, config, Path(tmp) / f"k{k}", engine=engine, progress=False)
            seconds = time.perf_counter() - started
            labels = [line for line in (out / "labels.jsonl").read_text().splitlines() if line]
            responses = (out / "responses.jsonl").read_text().splitlines()
            tokens = sum(sum(json.loads(line)["tokens"]) for line in responses)
            rows.append({"k": k, "seconds": seconds, "questions": len(labels), "tokens": tokens,
                         "questions_per_second": len(labels) / seconds})  # fmt: skip
    engine.close()
    for row in rows:
        row["ratio"] = row["seconds"] / rows[0]["seconds"]
    return {
        "model": model,
        "pool": pool,
        "limit": len(records),
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "engine_options": options,
        "rows": rows,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "machine": machine_line(),
    }


def print_filter(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"filter {result['model']} on {result['limit']} questions of {result['pool']}, "
                  f"{result['max_new_tokens']} new tokens, T={result['temperature']}")  # fmt: skip
    for column in ("k", "s", "questions/s", "answers", "tokens", f"x k={result['rows'][0]['k']}"):
        table.add_column(column, justify="right")
    for r in result["rows"]:
        table.add_row(str(r["k"]), f"{r['seconds']:.1f}", f"{r['questions_per_second']:.2f}",
                      str(r["k"] * r["questions"]), str(r["tokens"]), f"{r['ratio']:.2f}")  # fmt: skip
    Console(width=160).print(table)
    Console().print(f"CPU capability: {result['cpu_capability']}, {result['threads']} torch threads; machine: "
                    f"{result['machine']}")  # fmt: skip
