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
    from medrlvr.grpo.loss import MedrlvrGRPOTrainer

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
