"""How long a study will take on this machine, said before it starts.

A short calibration (about a third of a second) times the matrix products a small model's decoding is made of, in
the dtype medrlvr computes in here, and compares them with the same products on the reference machine in that
dtype: the CPU the demo's figures were measured on (2 cores, AVX512-BF16), in bf16 and in fp32 restricted to AVX2.
Each unfinished stage's work -- tokens a filter
or an evaluation generates, questions scored by log-likelihood, GRPO steps of rollout tokens -- is priced at the
reference machine's measured cost for a 135M-parameter model, scaled by the model's size (read from its name or its
converted checkpoint) and by the calibration ratio. It is an estimate: the note beside the figure says so, and the
stages print their own progress and time left as they run.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .stagedirs import is_finished, settled

# Seconds on the reference machine for a 135M model, in each dtype medrlvr computes in on a CPU: this project's CPU
# (2 cores AMD EPYC, AVX512-BF16) on 2026-12-01 running the demo from a fresh clone (``bench study``): in bf16 as it
# is, and in fp32 with AVX2 only (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2),
# with what calibrate() measured at the time. Per unit: a filter token (64 questions x 96 tokens, one decode batch),
# an evaluation token (80 x 40), a log-likelihood question (MMLU 0.18 s, MedQA 0.31-0.38 s: their mean), a GRPO
# rollout token with its share of the loss (2 x 8 x 40 per step), and loading a model for a stage. One table per
# dtype because the dtypes do not differ by one factor: fp32 on AVX2 filtered 2.2x slower than bf16 here but
# evaluated as fast and trained 1.3x slower, while the matrix product calibrate() times is 3.2x slower.
REFERENCE = {
    "bfloat16": {"filter_token": 3.2e-3, "eval_token": 8.4e-3, "loglik_question": 0.24, "train_token": 12.2e-3,
                 "load": 8.0, "gflops": 216.4},
    "float32": {"filter_token": 7.0e-3, "eval_token": 8.5e-3, "loglik_question": 0.28, "train_token": 15.6e-3,
                "load": 8.0, "gflops": 68.6},
}  # fmt: skip
REFERENCE_PARAMS = 135e6
PPO_STEP_FACTOR = 1.5  # a PPO step over a GRPO step at the same batch (bench train --method ppo: see the README)


def calibrate(seconds: float = 0.3) -> float:
    """GFLOP/s of a decode-shaped matrix product (16 rows x 576 -> 1536, a 135M model's MLP) in the dtype medrlvr
    computes in on this device."""
    import torch

    from ..modeling import pick_dtype

    dtype = pick_dtype("auto", "cpu")
    x, w = torch.randn(16, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    with torch.inference_mode():
        for _ in range(5):
            x @ w
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(20):
                x @ w
            n += 20
        elapsed = time.perf_counter() - start
    return 2 * 16 * 576 * 1536 * n / elapsed / 1e9


def model_params(reference: str) -> float | None:
    """Parameters from a model's name (``...-135m-...``, ``Qwen2.5-3B``), or None."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", reference.lower())
    if not match:
        return None
    return float(match.group(1)) * (1e6 if match.group(2) == "m" else 1e9)


def _scale(model: str, speed: float) -> float | None:
    params = model_params(model)
    return None if params is None else params / REFERENCE_PARAMS / speed


def reference(dtype: str | None = None) -> dict[str, float]:
    """The reference machine's costs in ``dtype`` (default: the dtype medrlvr computes in here; fp16 and anything
    else read as bf16, the half-precision table)."""
    if dtype is None:
        from ..modeling import pick_dtype

        dtype = str(pick_dtype("auto", "cpu")).removeprefix("torch.")
    return REFERENCE["float32" if dtype == "float32" else "bfloat16"]


def estimate(work: list[dict[str, Any]], gflops: float | None = None, dtype: str | None = None) -> dict[str, Any]:
    """Seconds per stage kind for ``work``: rows ``{"stage": "filter"|"train"|"eval", "model": ref, and
    "tokens" (generated), "questions" (log-likelihood) or "train_tokens"}`` (and a ``label``: the stage as the
    study names it, whose own estimate goes in ``by_label``). Stages whose model size is unknown are counted in
    ``unknown``."""
    ref = reference(dtype)
    gflops = gflops or calibrate()
    speed = gflops / ref["gflops"]
    totals: dict[str, float] = {}
    by_label: dict[str, float] = {}
    unknown = []
    for row in work:
        scale = _scale(row["model"], speed)
        if scale is None:
            unknown.append(f"{row['stage']} {row['model']}")
            continue
        cost = ref["load"] / speed
        cost += row.get("tokens", 0) * ref["eval_token" if row["stage"] == "eval" else "filter_token"] * scale
        cost += row.get("questions", 0) * ref["loglik_question"] * scale
        cost += row.get("train_tokens", 0) * ref["train_token"] * scale
        totals[row["stage"]] = totals.get(row["stage"], 0.0) + cost
        if "label" in row:
            by_label[row["label"]] = cost
    return {"seconds": totals, "total": sum(totals.values()), "speed": speed, "gflops": gflops, "unknown": unknown,
            "by_label": by_label}  # fmt: skip


def remaining(estimates: dict[str, float], measured: dict[str, tuple[float, float]]) -> float:
    """Seconds left for the stages in ``estimates`` (label -> estimate; the finished ones removed by the caller), each
    scaled by how its stage kind ran so far: ``measured`` holds kind -> (seconds taken, seconds estimated) over the
    finished stages. A kind with none finished takes the ratio of all kinds together; with nothing finished yet, the
    estimates stand. The calibration of :func:`estimate` times one small product and prices every model by its
    parameters, so a model unlike the reference (Gemma-3-270M's 262k-token vocabulary: its losses and log-softmaxes
    cost more than its parameters say) or a busy machine moves the first figure; this one learns from the run."""
    taken = sum(t for t, _ in measured.values())
    guessed = sum(g for _, g in measured.values())
    overall = taken / guessed if guessed else 1.0
    total = 0.0
    for label, seconds in estimates.items():
        kind = label.split(" ", 1)[0]
        t, g = measured.get(kind, (0.0, 0.0))
        total += seconds * (t / g if g else overall)
    return total


def minutes(seconds: float) -> str:
    """``14 min`` from 90 s up, else ``75 s``."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def describe(result: dict[str, Any], machine: str) -> str:
    """``estimate: filter 1 min, train 9 min, eval 4 min; about 14 min on this machine (...)``."""
    parts = ", ".join(f"{k} {minutes(v)}" for k, v in result["seconds"].items())
    empty = "no stage of a known size left" if result["unknown"] else "nothing left to run"
    text = (f"estimate: {parts or empty}; about {minutes(result['total'])} on this machine "
            f"({machine}; {result['speed']:.2f}x the reference CPU's speed)")  # fmt: skip
    if result["unknown"]:
        text += f"; not estimated (model size unknown): {', '.join(result['unknown'])}"
    return text


def study_work(study) -> list[dict[str, Any]]:
    """The unfinished stages of a :class:`medrlvr.study.runner.Study` whose data is loaded, as :func:`estimate` rows."""
    from ..evaluate import stage_settings
    from ..rundir import eval_dir

    r, run = study.recipe, study.run_dir
    work = [{"stage": "filter", "model": f.config.model, "label": f"filter {f.name}",
             "tokens": len(study.pool) * f.config.max_new_tokens * f.config.k}
            for f in r.filters if not is_finished(run / "filter" / f.name)]  # fmt: skip
    for p in r.policies:
        c = p.config
        if c.method not in ("grpo", "ppo") or c.backend != "trl" or is_finished(run / "train" / p.name):
            continue
        steps = c.max_steps if c.max_steps > 0 else None
        if steps is None:  # epochs: the selection's size is not known before it runs; its config gives it
            entry = next(s for s in r.selections if s.name == p.selection)
            size = entry.config.n if entry.config.strategy != "ratio" else entry.config.hard + entry.config.easy
            steps = int(c.num_train_epochs * size / (c.batch_size * c.gradient_accumulation_steps)) or 1
        tokens = steps * c.batch_size * c.gradient_accumulation_steps * c.num_generations * c.max_completion_length
        tokens *= PPO_STEP_FACTOR if c.method == "ppo" else 1  # the critic's passes (medrlvr bench train --method ppo)
        work.append({"stage": "train", "model": c.model, "label": f"train {p.name}", "train_tokens": tokens})
    models = [("base", r.base_model)] * r.eval_base + [(p.name, p.config.model) for p in r.policies]
    for name, model in models:
        for e in r.evals:
            if settled(eval_dir(run, name, e.name), stage_settings(e.config)):
                continue
            n = min(len(study.eval_sets[e.benchmark]), e.config.limit or 10**9)
            label = f"eval {name} {e.name}"
            # the probes generate once more per question each (adversarial prefill, open form)
            probes = int(e.config.adversarial_prefill) + int(e.config.open_form)
            if e.config.mode == "generate":
                tokens = n * e.config.max_new_tokens * (e.config.samples + probes)
                work.append({"stage": "eval", "model": model, "label": label, "tokens": tokens})
            else:
                work.append({"stage": "eval", "model": model, "label": label, "questions": n,
                             "tokens": n * e.config.max_new_tokens * probes})  # fmt: skip
    return work


def announce(study) -> str:
    """The line a study prints before its first stage: this machine and what the stages left will take on it;
    the machine's facts and the estimate also go into the study's manifest."""
    from .provenance import machine, machine_line

    facts = machine()
    result = estimate(study_work(study))
    study.stage_estimates = result["by_label"]  # each stage says its own when it starts
    study.manifest.update(machine=facts, estimate_seconds=round(result["total"]),
                          calibration_gflops=round(result["gflops"], 1))  # fmt: skip
    return describe(result, machine_line(facts))


def plan_estimate(recipe) -> str:
    """The estimate ``medrlvr run --plan`` prints, from the recipe alone (no data read): the pool as ``data.pool_limit``
    questions and each evaluation as its ``limit`` (upper bounds: decontamination and a short benchmark only shorten
    them); without those sizes, a line saying the study prints its estimate when it starts."""
    from types import SimpleNamespace

    from .provenance import machine_line

    limits = {e.benchmark: e.config.limit for e in recipe.evals}
    if recipe.data.pool_limit is None or None in limits.values():
        return ("estimate: needs data.pool_limit and every evaluation's limit; `medrlvr run` prints it before its "
                "first stage")  # fmt: skip
    study = SimpleNamespace(recipe=recipe, run_dir=recipe.run_dir, pool=[None] * recipe.data.pool_limit,
                            eval_sets={b: [None] * n for b, n in limits.items()})  # fmt: skip
    return describe(estimate(study_work(study)), machine_line())
