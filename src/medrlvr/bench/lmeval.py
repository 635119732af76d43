"""``medrlvr bench lmeval``: medrlvr's log-likelihood evaluation against lm-evaluation-harness on the same MMLU
questions and model, question by question: each side's settings, questions per second, the ratio, accuracy per
subject, and how many questions the two sides get the same.

One lm-eval run per number of shots (fp32, its ``hf`` model at batch 8), compared with medrlvr in each dtype asked for (the trunk in that dtype, the head at the
scored positions in fp32). lm-eval reads the same CSV files through task YAMLs written here, with MMLU's prompt
and, for few-shot rows, the first examples of the dev split (``first_n``), as medrlvr's ``loglik_context`` does.
``limit`` keeps the first N questions of each subject on both sides (lm-eval's own ``limit``).

The clocks favour lm-eval: its seconds are those of its model's ``loglikelihood`` calls (tokenizing, batching,
forward passes; not loading the CSV files into datasets or building its tasks), medrlvr's those of the whole
``evaluate`` call (prompts, scoring, writing predictions.jsonl and results.json). Both models are loaded before."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

LMEVAL_TASK = """task: medrlvr_mmlu_{subject}
dataset_path: csv
dataset_name: null
dataset_kwargs:
  data_files: {{test: "{path}", dev: "{dev}"}}
  column_names: [question, A, B, C, D, answer]
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
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
LMEVAL_BATCH = 8
LARGE_SUBJECT = 100  # subjects with more questions than this must agree within 0.5 point in a bf16 row


def bench_lmeval(
    model: str,
    data_dir: str | None,
    subjects: str = "medical",
    out_dir: str = "runs/lmeval",
    *,
    shots: tuple[int, ...] = (0, 5),
    dtypes: tuple[str, ...] = ("fp32", "bf16"),
    limit: int | None = None,
) -> dict:
    """One row per (shots, medrlvr dtype) against lm-eval in fp32 with the same shots; see the module docstring."""
    import torch

    from ..errors import require

    require("lm_eval", "medrlvr bench lmeval", "medrlvr[lmeval]")  # before medrlvr's half of the work, not after

    from ..data import load_benchmark
    from ..data.subjects import expand_subjects
    from ..engines import get_engine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = sorted(expand_subjects("mmlu", subjects))
    out = Path(out_dir)
    records = _first_per_subject(load_benchmark("mmlu", "test", data_dir, subjects=names), limit)
    pool = load_benchmark("mmlu", "dev", data_dir, subjects=names) if any(shots) else []
    lm = _lm_eval_model(model, device)
    engines = {d: get_engine("transformers", model, dtype=d, device=device) for d in dtypes}
    rows = []
    for n_shots in shots:
        theirs, lm_seconds = _lm_eval_correct(lm, data_dir, names, out / "tasks", n_shots, limit)
        for dtype, engine in engines.items():
            ours, our_seconds, results = _medrlvr_correct(
                engine, records, pool, n_shots, out / f"{n_shots}shot-{dtype}"
            )
            rows.append(_row(n_shots, dtype, engine, names, theirs, ours, lm_seconds, our_seconds, results))
    return {
        "model": model,
        "device": device,
        "matmul_gflops": matmul_gflops() if device == "cpu" else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "limit_per_subject": limit,
        "lm_eval": {"version": _version("lm_eval"), "dtype": "fp32", "batch_size": LMEVAL_BATCH},
        "rows": rows,
    }


def matmul_gflops(rows: int = 512, inner: int = 576, outer: int = 1536, seconds: float = 0.5) -> dict[str, float]:
    """GFLOP/s of one scoring-shaped matrix product (``rows`` prompt tokens through a 135M model's MLP) in fp32 and
    in bf16 on this CPU: what bf16 can gain. Scoring is compute-bound (every prompt token through every layer), so
    bf16 is faster only where the CPU multiplies bf16 faster than fp32 (AMX); with AVX512-BF16 alone it measured
    slower here (2 cores: fp32 about 150 GFLOP/s, bf16 about 100), while decoding (a few rows, memory-bound) gains
    from bf16's smaller weights. Printed with every bench lmeval run so that its bf16 rows can be read."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, w = torch.randn(rows, inner, dtype=dtype), torch.randn(outer, inner, dtype=dtype)
        with torch.inference_mode():
            for _ in range(3):
                torch.nn.functional.linear(x, w)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                torch.nn.functional.linear(x, w)
                n += 1
            elapsed = time.perf_counter() - start
        out[name] = 2 * rows * inner * outer * n / elapsed / 1e9
    return out


def _first_per_subject(records, limit: int | None):
    """The first ``limit`` questions of each subject, in file order (what lm-eval's ``limit`` keeps)."""
    if limit is None:
        return list(records)
    seen: dict[str, int] = {}
    kept = []
    for r in records:
        seen[r.subject] = seen.get(r.subject, 0) + 1
        if seen[r.subject] <= limit:
            kept.append(r)
    return kept


def _row(n_shots, dtype, engine, names, theirs, ours, lm_seconds, our_seconds, results) -> dict:
    per_subject = {}
    agree = total = 0
    for s in names:
        ids = [f"mmlu-test-{s}-{i}" for i in range(len(theirs[s]))]
        mine = [ours[i]["credit"] for i in ids]
        n = len(ids)
        lm_acc, our_acc = sum(theirs[s]) / n, sum(mine) / n
        per_subject[s] = {"n": n, "lm_eval": lm_acc, "medrlvr": our_acc, "points": round(100 * (our_acc - lm_acc), 2)}
        agree += sum(ours[i]["correct"] == t for i, t in zip(ids, theirs[s]))
        total += n
    lm_acc = sum(sum(v) for v in theirs.values()) / total
    large = [v["points"] for v in per_subject.values() if v["n"] > LARGE_SUBJECT]
    return {
        "shots": n_shots,
        "questions": total,
        "medrlvr": {
            "dtype": dtype,
            "head": "fp32",
            "loglik_tokens": engine.loglik_tokens,
            "share_prefixes": engine.share_prefixes,
        },  # fmt: skip
        "lm_eval_qps": total / lm_seconds,
        "medrlvr_qps": total / our_seconds,
        "ratio": lm_seconds / our_seconds,
        "lm_eval_seconds": round(lm_seconds, 1),
        "medrlvr_seconds": round(our_seconds, 1),
        "lm_eval_accuracy": lm_acc,
        "medrlvr_accuracy": results["accuracy"],  # split credit for ties (results["ties"] of them)
        "medrlvr_ties": results["ties"],
        "difference_points": round(100 * (results["accuracy"] - lm_acc), 2),
        "same_correctness": agree / total,
        f"max_points_subjects_over_{LARGE_SUBJECT}": max(map(abs, large)) if large else None,
        "per_subject": per_subject,
    }


def _medrlvr_correct(engine, records, pool, n_shots: int, out: Path):
    """id -> prediction row, seconds, results of medrlvr's evaluation (from an empty folder: nothing resumed)."""
    from ..evaluate import EvalConfig, evaluate
    from ..store import read_jsonl

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    results = evaluate(records, EvalConfig(model=engine.model_name, num_fewshot=n_shots), out, "mmlu",
                       fewshot_pool=pool, engine=engine, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    return {row["id"]: row for row in read_jsonl(out / "predictions.jsonl")}, seconds, results


def _lm_eval_model(model: str, device: str):
    from lm_eval.models.huggingface import HFLM

    from ..models import checkpoint_dir

    return HFLM(pretrained=str(checkpoint_dir(model)), dtype="float32", batch_size=LMEVAL_BATCH, device=device)


def _lm_eval_correct(lm, data_dir: str | None, names: list[str], tasks: Path, n_shots: int, limit: int | None):
    """subject -> lm-evaluation-harness's correctness per question (in file order), and its seconds, through task
    YAMLs written to ``tasks`` that read medrlvr's MMLU CSV files."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ..data import resolve_data_dir

    root = resolve_data_dir(data_dir) / "mmlu"
    tasks.mkdir(parents=True, exist_ok=True)
    for s in names:
        (tasks / f"{s}.yaml").write_text(
            LMEVAL_TASK.format(
                subject=s,
                path=root / "test" / f"{s}_test.csv",
                dev=root / "dev" / f"{s}_dev.csv",
                title=s.replace("_", " "),
            )  # fmt: skip
        )
    manager = TaskManager(include_path=str(tasks))
    spent = [0.0]
    scorer = type(lm).loglikelihood.__get__(lm)

    def timed(requests, *args, **kwargs):  # its model's time only: building the datasets and tasks is not counted
        start = time.perf_counter()
        try:
            return scorer(requests, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    lm.loglikelihood = timed
    res = lm_eval.simple_evaluate(model=lm, tasks=[f"medrlvr_mmlu_{s}" for s in names], task_manager=manager,
                                  log_samples=True, num_fewshot=n_shots, limit=limit)  # fmt: skip
    seconds = spent[0]
    theirs: dict[str, list[bool]] = {}
    for s in names:
        samples = sorted(res["samples"][f"medrlvr_mmlu_{s}"], key=lambda x: x["doc_id"])
        theirs[s] = [bool(x["acc"]) for x in samples]
    return theirs, seconds


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def print_lmeval(result: dict) -> None:
    """The rows as a table, then each row's accuracy per subject."""
    lm = result["lm_eval"]
    print(f"{result['model']} on MMLU, {result['device']} ({result['cpu_capability']}, {result['threads']} threads), "
          f"limit {result['limit_per_subject'] or 'none'} per subject; lm-eval {lm['version']} {lm['dtype']} "
          f"batch {lm['batch_size']}")  # fmt: skip
    speed = result.get("matmul_gflops")
    if speed:
        print(f"this CPU's scoring-shaped matrix product (512 x 576 -> 1536): fp32 {speed['fp32']:.0f} GFLOP/s, bf16 "
              f"{speed['bf16']:.0f} GFLOP/s (bf16 rows can gain only where bf16 is the faster)")  # fmt: skip
    print("| shots | medrlvr dtype (head fp32) | loglik_tokens | questions | lm-eval q/s | medrlvr q/s | ratio | "
          "lm-eval acc | medrlvr acc | same | ties |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        m = r["medrlvr"]
        print(f"| {r['shots']} | {m['dtype']} | {m['loglik_tokens']} | {r['questions']} | {r['lm_eval_qps']:.2f} | "
              f"{r['medrlvr_qps']:.2f} | {r['ratio']:.2f}x | {r['lm_eval_accuracy']:.4f} | "
              f"{r['medrlvr_accuracy']:.4f} | {r['same_correctness']:.3f} | {r['medrlvr_ties']} |")  # fmt: skip
    for r in result["rows"]:
        print(
            f"\n{r['shots']}-shot, medrlvr {r['medrlvr']['dtype']}: accuracy per subject (lm-eval / medrlvr, points)"
        )
        for s, v in r["per_subject"].items():
            print(f"  {s:<24} n={v['n']:<4} {v['lm_eval']:.4f} / {v['medrlvr']:.4f}  {v['points']:+.2f}")
