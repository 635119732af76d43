"""The benchmarks' measuring parts, on a tiny random model: generation is timed through a trainer subclass (no
monkeypatching of TRL), and every rollout path is timed once per generation."""

import pytest
from conftest import make_tiny_model, make_tiny_tokenizer

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, build_trainer


@pytest.mark.parametrize("engine", ["medrlvr", "trl"])
def test_generation_is_timed_through_a_trainer_subclass(tmp_path, engine):
    from trl import GRPOTrainer

    from medrlvr.bench.train import _step_timer, timed_generation
    from medrlvr.train.grpo.loss import MedrlvrGRPOTrainer

    original = GRPOTrainer._generate
    records = [
        Record(id=f"t{i}", question=f"Which is {i}?", options={"A": "a", "B": "b"}, answer="A") for i in range(4)
    ]
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    config = TrainConfig(
        model="in-memory", train_file=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "out"), batch_size=2,
        num_generations=2, gradient_accumulation_steps=1, max_steps=2, max_completion_length=4, save_steps=100,
        lora_r=4, lora_alpha=8, bf16=False, beta=0.0, rollout_engine=engine, rollout_dtype="fp32",
    )  # fmt: skip
    generating, steps = [], []
    tokenizer = make_tiny_tokenizer()
    trainer = build_trainer(
        config,
        records,
        make_tiny_model(tokenizer),
        tokenizer,
        trainer_class=timed_generation(MedrlvrGRPOTrainer, generating),
    )
    assert isinstance(trainer, MedrlvrGRPOTrainer)
    trainer.add_callback(_step_timer(steps))
    trainer.train()
    assert len(steps) == 2 and len(generating) == 2  # one generation per optimizer step (steps_per_generation)
    assert all(0 < g <= s for g, s in zip(generating, steps))
    assert GRPOTrainer._generate is original  # TRL's class is left as it was


def test_the_study_table_matches_stages_across_runs(tmp_path, capsys):
    """``medrlvr bench study``: stages matched by kind and name across runs, cached stages not counted as 0 s,
    per-kind totals, each run's machine, and one-line errors for a folder without a manifest or a broken one."""
    import json

    from medrlvr.bench.study import print_stage_table, stage_table
    from medrlvr.errors import UserError

    cpu = {"device": "cpu", "cpu_capability": "AVX2", "native_bf16": False, "dtype": "float32", "threads": 2}
    runs = {
        "before": [("filter", "smollm2", "ran", 200.0), ("train", "random", "ran", 550.0),
                   ("eval", "base mmlu:medical", "ran", 58.0), ("eval", "base medqa", "ran", 60.0)],
        "after": [("filter", "smollm2", "cached", 0.0), ("train", "random", "ran", 170.0),
                  ("eval", "base medqa", "ran", 40.0)],
    }  # fmt: skip
    for name, stages in runs.items():
        (tmp_path / name).mkdir()
        manifest = {"recipe": "recipes/demo-cpu.yaml", "commit": {"sha": "abc123" * 5, "dirty": name == "after"},
                    "status": "finished", "wall_seconds": sum(s[3] for s in stages) + 10, "peak_rss_mb": 5000,
                    "machine": cpu, "stages": [{"stage": k, "name": n, "status": st, "seconds": s, "peak_rss_mb": 900}
                                               for k, n, st, s in stages]}  # fmt: skip
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
    result = stage_table([tmp_path / "before", tmp_path / "after"])
    rows = {(r["stage"], r["name"]): r for r in result["rows"]}
    assert rows[("train", "random")]["seconds"] == [550.0, 170.0]
    assert rows[("filter", "smollm2")]["seconds"] == [200.0, None] and rows[("filter", "smollm2")]["cached"][1]
    assert rows[("eval", "base mmlu:medical")]["seconds"] == [58.0, None]
    assert result["totals"] == {"filter": [200.0, None], "train": [550.0, 170.0], "eval": [118.0, 40.0]}
    assert [r["stage"] for r in result["rows"]] == ["filter", "train", "eval", "eval"]
    print_stage_table(result)
    out = capsys.readouterr().out
    assert "cached" in out and "3.24x" in out and "CPU AVX2, native bf16: no, computing in float32" in out
    assert "with uncommitted changes" in out
    with pytest.raises(UserError, match="no manifest"):
        stage_table([tmp_path])
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(UserError, match=r"manifest.json: not JSON"):
        stage_table([tmp_path])


def test_lmeval_rows_compare_question_by_question_and_flag_large_subjects():
    """The bench's bookkeeping, without lm-eval: the first N questions of each subject, split credit for medrlvr's
    ties, agreement on correctness, and the largest gap over subjects of more than 100 questions."""
    from types import SimpleNamespace

    import yaml

    from medrlvr.bench.lmeval import LMEVAL_TASK, _first_per_subject, _row

    recs = [Record(id=f"mmlu-test-{s}-{i}", question="q", options={"A": "a", "B": "b"}, answer="A", subject=s)
            for s, n in (("anatomy", 3), ("virology", 120)) for i in range(n)]  # fmt: skip
    assert [r.id for r in _first_per_subject(recs, 2)] == [f"mmlu-test-{s}-{i}" for s in ("anatomy", "virology")
                                                           for i in range(2)]  # fmt: skip
    theirs = {"anatomy": [True, False, True], "virology": [True] * 60 + [False] * 60}
    ours = {r.id: {"correct": True, "credit": 1.0} for r in recs}
    ours["mmlu-test-anatomy-1"] = {"correct": False, "credit": 0.5}  # a tie holding the gold
    ours["mmlu-test-virology-119"] = {"correct": True, "credit": 1.0}
    engine = SimpleNamespace(loglik_tokens=4096, share_prefixes=True)
    row = _row(0, "bf16", engine, ["anatomy", "virology"], theirs, ours, 10.0, 4.0, {"accuracy": 0.6, "ties": 1})
    assert row["ratio"] == 2.5 and row["questions"] == 123
    assert row["per_subject"]["anatomy"]["medrlvr"] == pytest.approx(2.5 / 3)
    assert row["same_correctness"] == pytest.approx((3 + 60) / 123)  # all of anatomy, virology's first 60
    assert row["max_points_subjects_over_100"] == pytest.approx(50.0)  # virology only: anatomy has 3 questions
    task = yaml.safe_load(LMEVAL_TASK.format(subject="anatomy", path="t.csv", dev="d.csv", title="anatomy"))
    assert task["fewshot_split"] == "dev" and task["dataset_kwargs"]["data_files"] == {"test": "t.csv", "dev": "d.csv"}
    assert task["description"].endswith("about anatomy.\n\n")


def test_the_filter_bench_runs_each_k_on_the_same_pool_and_refuses_bad_flags(tiny_checkpoint, capsys):
    """`medrlvr bench filter`: one row per k, each over the same questions with k answers apiece, the first k the
    base of the ratios, and the CPU capability with the figures; bad flags are one line (no timing is asserted)."""
    import torch

    from medrlvr.bench import bench_filter, print_filter
    from medrlvr.cli import main

    result = bench_filter(str(tiny_checkpoint), "demo:train", None, (1, 3), limit=4, max_new_tokens=3)
    assert [(r["k"], r["questions"]) for r in result["rows"]] == [(1, 4), (3, 4)]
    assert result["rows"][0]["ratio"] == 1.0 and result["rows"][1]["ratio"] > 0
    assert 4 <= result["rows"][0]["tokens"] <= 12 and 12 <= result["rows"][1]["tokens"] <= 36
    assert result["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    print_filter(result)
    assert "CPU capability" in capsys.readouterr().out
    for flags, message in ((["--k", "1,x"], "--k takes comma-separated whole numbers"),
                           (["--k", "0,8"], "--k takes samples per question of at least 1"),
                           (["--limit", "0"], "--limit must be at least 1"),
                           (["--temperature", "0"], "--temperature must be above 0 with k > 1")):  # fmt: skip
        assert main(["bench", "filter", "--pool", "demo:train", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_lmeval_prints_what_bf16_can_gain_on_this_cpu(capsys):
    from medrlvr.bench.lmeval import matmul_gflops, print_lmeval

    speed = matmul_gflops(rows=8, inner=16, outer=32, seconds=0.01)
    assert set(speed) == {"fp32", "bf16"} and all(v > 0 for v in speed.values())
    result = {"model": "m", "device": "cpu", "cpu_capability": "AVX512", "threads": 2, "limit_per_subject": 5,
              "lm_eval": {"version": "0.4", "dtype": "fp32", "batch_size": 8}, "rows": [],
              "matmul_gflops": {"fp32": 150.0, "bf16": 100.0}}  # fmt: skip
    print_lmeval(result)
    assert "fp32 150 GFLOP/s, bf16 100 GFLOP/s" in capsys.readouterr().out
