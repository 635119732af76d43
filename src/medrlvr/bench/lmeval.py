"""``medrlvr bench lmeval``: medrlvr's log-likelihood evaluation against lm-evaluation-harness on the same MMLU
questions and model, question by question (same correctness, accuracy difference in points, time)."""

from __future__ import annotations

import time
from pathlib import Path

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
    import torch

    from ..errors import require

    require("lm_eval", "medrlvr bench lmeval", "medrlvr[lmeval]")  # before medrlvr's half of the work, not after

    from ..data import load_benchmark
    from ..data.subjects import expand_subjects
    from ..engines import get_engine
    from ..evaluate import EvalConfig, evaluate
    from ..store import read_jsonl

    device = "cuda" if torch.cuda.is_available() else "cpu"  # both sides on the device in use, in fp32
    names = sorted(expand_subjects("mmlu", subjects))
    out = Path(out_dir)
    start = time.perf_counter()
    theirs = _lm_eval_correct(model, data_dir, names, out / "tasks", device)
    lm_seconds = time.perf_counter() - start
    records = load_benchmark("mmlu", "test", data_dir, subjects=names)
    engine = get_engine("transformers", model, dtype="fp32", device=device)
    start = time.perf_counter()
    ours_res = evaluate(
        records, EvalConfig(model=model), out / "medrlvr", f"mmlu:{subjects}", engine=engine, progress=False
    )
    our_seconds = time.perf_counter() - start
    ours = {row["id"]: row["correct"] for row in read_jsonl(out / "medrlvr" / "predictions.jsonl")}
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


def _lm_eval_correct(model: str, data_dir: str | None, names: list[str], tasks: Path, device: str) -> dict:
    """subject -> lm-evaluation-harness's correctness per question (in file order), through task YAMLs written to
    ``tasks`` that read medrlvr's MMLU CSV files."""
    from ..errors import require

    require("lm_eval", "medrlvr bench lmeval", "medrlvr[lmeval]")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ..data import resolve_data_dir
    from ..models import checkpoint_dir

    root = resolve_data_dir(data_dir) / "mmlu" / "test"
    tasks.mkdir(parents=True, exist_ok=True)
    for s in names:
        (tasks / f"{s}.yaml").write_text(
            LMEVAL_TASK.format(subject=s, path=root / f"{s}_test.csv", title=s.replace("_", " "))
        )
    res = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={checkpoint_dir(model)},dtype=float32",
        batch_size=8,
        device=device,
        tasks=[f"medrlvr_mmlu_{s}" for s in names],
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        num_fewshot=0,
    )
    theirs: dict[str, list[bool]] = {}
    for s in names:
        samples = sorted(res["samples"][f"medrlvr_mmlu_{s}"], key=lambda x: x["doc_id"])
        theirs[s] = [bool(x["acc"]) for x in samples]
    return theirs
