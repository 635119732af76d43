"""The study's estimate before it starts, and the machine it is about."""

import pytest

from medrlvr.eta import REFERENCE, REFERENCE_GFLOPS, describe, estimate, model_params
from medrlvr.provenance import machine, machine_line


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
    ref = estimate(work, gflops=REFERENCE_GFLOPS)
    # the reference machine's demo figures: a 120-question filter about 76 s, 32 steps 4.7-8.5 minutes
    assert ref["seconds"]["filter"] == pytest.approx(8 + 120 * 128 * REFERENCE["filter_token"], rel=1e-6)
    assert 60 < ref["seconds"]["filter"] < 90 and 280 < ref["seconds"]["train"] < 520
    load = REFERENCE["load"]
    assert ref["seconds"]["eval"] == pytest.approx(load + 150 * REFERENCE["loglik_question"] * 2, rel=1e-6)  # 270M
    assert ref["unknown"] == ["eval my-adapter"]
    assert ref["by_label"] == {"filter smollm2": ref["seconds"]["filter"]}  # the stage says it when it starts
    slow = estimate(work, gflops=REFERENCE_GFLOPS / 4)  # a CPU four times slower (fp32 on AVX2)
    assert slow["total"] == pytest.approx(4 * ref["total"], rel=1e-6)
    text = describe(slow, "CPU AVX2, native bf16: no, computing in float32, 2 threads")
    assert "about" in text and "AVX2" in text and "0.25x" in text and "my-adapter" in text


def test_the_machine_line_names_capability_and_dtype():
    facts = machine()
    line = machine_line(facts)
    assert facts["cpu_capability"] in line and facts["dtype"] in line
    assert machine_line({"device": "cpu", "cpu_capability": "AVX2", "native_bf16": False, "dtype": "float32",
                         "threads": 2}) == "CPU AVX2, native bf16: no, computing in float32, 2 threads"  # fmt: skip
