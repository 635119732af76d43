"""``medrlvr bench circular``: what circular evaluation costs in log-likelihood mode, timed against one plain pass on
the same questions in one run (one engine, one process, the runs interleaved and each timed ``repeats`` times, the
fastest kept).

Rows: the plain pass (one order per question); circular with the stem shared (each question's rotations in one
engine call: the prefix grouping of :mod:`medrlvr.engines.cache` runs header and question once for them, the option
block per rotation; on a CPU each rotation attends to the stem's cache in place); and with ``--unshared``, circular
with the stem copied into each rotation's cache (the layout GPUs use) and with prefix sharing off (every rotation
from scratch), which show what reading in place and sharing save. The goal (issue 30): 4 rotations cost at most 2x one pass. Beside the seconds, the tokens each way
feeds: the plain contexts, and per question its shared stem once plus each rotation's own tail, which is the ratio a
machine with no per-call overhead would reach."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..study.provenance import machine_line


def bench_circular(model: str, data_dir: str | None, benchmark: str = "mmlu:medical", limit: int = 40,
                   rotations: int = 4, repeats: int = 2, seed: int = 0, unshared: bool = False) -> dict[str, Any]:  # fmt: skip
    import torch

    from ..data import BenchmarkSpec
    from ..engines import get_engine
    from ..engines.cache import shared_prefix
    from ..evaluate import EvalConfig, evaluate, loglik_context, subsample
    from ..evaluate.circular import plan

    records = subsample(BenchmarkSpec.parse(benchmark).load(data_dir), limit, seed)
    engine = get_engine("transformers", model)
    plain = EvalConfig(model=model, mode="loglik", seed=seed)
    circular = EvalConfig(model=model, mode="loglik", seed=seed, circular=True, circular_rotations=rotations)
    rows = [("plain", plain, True, True), ("circular", circular, True, True)]  # (name, config, share, in place)
    if unshared:
        rows += [("circular_copied", circular, True, False), ("circular_unshared", circular, False, False)]
    timings: dict[str, list[float]] = {name: [] for name, *_ in rows}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(records[:2], plain, Path(tmp) / "warm", benchmark, engine=engine, progress=False)  # warm-up
        for r in range(repeats):
            for name, config, share, in_place in rows:
                engine.share_prefixes, engine.prefix_in_place = share, in_place
                start = time.perf_counter()
                results[name] = evaluate(records, config, Path(tmp) / f"{name}-{r}", benchmark, engine=engine,
                                         progress=False)  # fmt: skip
                timings[name].append(time.perf_counter() - start)
                print(f"  [{r + 1}/{repeats}] {name}: {timings[name][-1]:.1f} s", file=sys.stderr, flush=True)
        engine.share_prefixes, engine.prefix_in_place = True, True
    asked, plans = plan(records, rotations, seed)

    def tokens(record) -> list[int]:
        return engine._encode([engine.render(loglik_context(record))])[0]

    by_id = {r.id: r for r in asked}
    plain_tokens = sum(len(tokens(r)) for r in records)
    circular_tokens = 0
    for record, orders, _ in plans:
        ids = [record.id] + [f"{record.id}#rotation{j}" for j in range(1, len(orders))]
        seqs = [tokens(by_id[i]) for i in ids]
        stem = shared_prefix(seqs) if len(seqs) > 1 else 0
        circular_tokens += stem + sum(len(s) - stem for s in seqs)
    best = {name: min(values) for name, values in timings.items()}
    engine.close()
    return {
        "model": model,
        "benchmark": benchmark,
        "questions": len(records),
        "rotations": rotations,
        "asked": results["circular"]["circular"]["asked"],
        "skipped": results["circular"]["circular"]["skipped"],
        "seconds": best,
        "all_seconds": timings,
        "ratio": best["circular"] / best["plain"],
        "ratio_unshared": best["circular_unshared"] / best["plain"] if unshared else None,
        "ratio_copied": best["circular_copied"] / best["plain"] if unshared else None,
        "tokens": {"plain": plain_tokens, "circular_shared_stem": circular_tokens},
        "token_ratio": circular_tokens / plain_tokens,
        "plain_accuracy": results["plain"]["accuracy"],
        "circular_rotation0_accuracy": results["circular"]["circular"]["per_rotation"][0]["accuracy"],
        "circular_accuracy": results["circular"]["circular"]["accuracy_all_rotations"],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": machine_line(),
    }


def print_circular(result: dict[str, Any]) -> None:
    s = result["seconds"]
    print(f"{result['model']} on {result['benchmark']}: {result['questions']} questions, up to {result['rotations']} "
          f"rotations ({result['asked']} asked, {result['skipped']} not rotatable); fastest of "
          f"{len(result['all_seconds']['plain'])} runs each; {result['machine']}")  # fmt: skip
    print(f"  plain pass                      {s['plain']:7.2f} s")
    print(f"  circular, stem run once         {s['circular']:7.2f} s   {result['ratio']:.2f}x the plain pass")
    if result["ratio_unshared"] is not None:
        print(f"  circular, stem copied per row   {s['circular_copied']:7.2f} s   {result['ratio_copied']:.2f}x")
        print(f"  circular, every rotation whole  {s['circular_unshared']:7.2f} s   {result['ratio_unshared']:.2f}x")
    t = result["tokens"]
    print(f"  tokens fed: plain {t['plain']}, circular with the stem once {t['circular_shared_stem']} "
          f"({result['token_ratio']:.2f}x)")  # fmt: skip
    print(
        f"  accuracy: plain {result['plain_accuracy']:.3f} (rotation 0 of circular: "
        f"{result['circular_rotation0_accuracy']:.3f}), right under every rotation {result['circular_accuracy']:.3f}"
    )
    print(f"  CPU capability: {result['cpu_capability']}")
