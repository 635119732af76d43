"""The study's estimate before it starts, and the machine it is about."""

import pytest

from medrlvr.study.eta import REFERENCE, describe, estimate, model_params, remaining
from medrlvr.study.provenance import machine, machine_line


def test_model_size_from_its_name():
    assert model_params("smollm2-135m-instruct") == 135e6
    assert model_params("gemma-3-270m") == 270e6
    assert model_params("Qwen/Qwen2.5-3B") == 3e9
    assert model_params("runs/demo/train/random/adapter") is None


def test_estimate_scales_with_work_model_size_and_machine_speed():
    work = [{"stage": "filter", "model": "smollm2-135m-instruct", "tokens": 120 * 128, "label": "filter smollm2"},
            {"stage": "train", "model": "smollm2-135m-instruct", "train_tokens": 32 * 1024},
            {"stage": "eval", "model": "gemma-3-270m", "questions": 150},
            {"stage": "eval", "model": "my-adapter", "tokens": 1000}]  # fmt: skip
    table = REFERENCE["bfloat16"]
    ref = estimate(work, gflops=table["gflops"], dtype="bfloat16")
    # the reference machine's demo figures: a 64-question filter of 96 tokens about 20 s of filtering, 16 steps of
    # 2 x 8 x 40 tokens 109-145 s
    assert ref["seconds"]["filter"] == pytest.approx(8 + 120 * 128 * table["filter_token"], rel=1e-6)
    assert 40 < ref["seconds"]["filter"] < 70 and 300 < ref["seconds"]["train"] < 500
    load = table["load"]
    assert ref["seconds"]["eval"] == pytest.approx(load + 150 * table["loglik_question"] * 2, rel=1e-6)  # 270M
    assert ref["unknown"] == ["eval my-adapter"]
    assert ref["by_label"] == {"filter smollm2": ref["seconds"]["filter"]}  # the stage says it when it starts
    slow = estimate(work, gflops=table["gflops"] / 4, dtype="bfloat16")  # a CPU four times slower
    assert slow["total"] == pytest.approx(4 * ref["total"], rel=1e-6)
    # fp32 (a CPU without bf16) has its own table: not bf16's figures scaled by one factor
    fp32 = estimate(work, gflops=REFERENCE["float32"]["gflops"], dtype="float32")
    assert fp32["seconds"]["filter"] == pytest.approx(8 + 120 * 128 * REFERENCE["float32"]["filter_token"])
    assert 1 < fp32["seconds"]["train"] / ref["seconds"]["train"] < 2
    text = describe(slow, "CPU AVX2, native bf16: no, computing in float32, 2 threads")
    assert "about" in text and "AVX2" in text and "0.25x" in text and "my-adapter" in text


def test_the_machine_line_names_capability_and_dtype():
    facts = machine()
    line = machine_line(facts)
    assert facts["cpu_capability"] in line and facts["dtype"] in line
    assert machine_line({"device": "cpu", "cpu_capability": "AVX2", "native_bf16": False, "dtype": "float32",
                         "threads": 2}) == "CPU AVX2, native bf16: no, computing in float32, 2 threads"  # fmt: skip


def test_plan_estimates_from_the_recipe_alone_where_sizes_are_given(monkeypatch, fixture_data):
    from pathlib import Path

    from medrlvr.study import eta
    from medrlvr.study.recipe import load_recipe

    monkeypatch.setenv("MEDRLVR_DATA_DIR", str(fixture_data))
    root = Path(__file__).resolve().parents[1] / "recipes"
    monkeypatch.setattr(eta, "calibrate", lambda seconds=0.3: REFERENCE["bfloat16"]["gflops"])
    demo = load_recipe(root / "demo-cpu.yaml")
    line = eta.plan_estimate(demo)
    assert line.startswith("estimate: filter ") and "train" in line and "eval" in line
    seen = []
    monkeypatch.setattr(
        eta,
        "estimate",
        lambda work, **kw: seen.append(work) or {"seconds": {}, "total": 0.0, "speed": 1.0, "unknown": []},
    )
    eta.plan_estimate(demo)
    filters = [w for w in seen[0] if w["stage"] == "filter"]
    assert filters[0]["tokens"] == 64 * 96  # the pool as data.pool_limit questions
    assert "needs data.pool_limit" in eta.plan_estimate(load_recipe(root / "demo-cpu.yaml", ["data.pool_limit=null"]))


def test_time_left_learns_from_the_stages_that_ran():
    left = {"train ppo": 100.0, "train grpo": 60.0, "eval base medqa": 20.0, "filter f": 10.0}
    assert remaining(left, {}) == 190.0  # nothing ran: the estimates stand
    # training ran 2.5x its estimate, evaluation as estimated: each kind scaled by its own ratio, filtering (none
    # finished) by all kinds together ((250 + 20) / (100 + 20))
    measured = {"train": (250.0, 100.0), "eval": (20.0, 20.0)}
    assert remaining(left, measured) == pytest.approx(160 * 2.5 + 20 + 10 * 270 / 120)
