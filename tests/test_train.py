"""GRPO with LoRA on a tiny random model: what must change changes, what must not does not, rewards are logged,
and an interrupted run resumes from its checkpoint."""

import json

import pytest
from safetensors.torch import load_file

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import REFLECTION, TrainConfig, load_config, self_reflection_reward, train


@pytest.fixture
def train_file(tmp_path):
    records = [
        Record(
            id=f"t{i}",
            question=f"Which option is number {i}?",
            options={"A": "one", "B": "two"},
            answer="AB"[i % 2],
            subject="toy",
            explanation="Because.",
        )
        for i in range(4)
    ]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [r.to_dict() for r in records])
    return path


def _config(tiny_checkpoint, train_file, out, **kw):
    base = dict(
        model=str(tiny_checkpoint),
        train_file=str(train_file),
        output_dir=str(out),
        batch_size=2,
        num_generations=2,
        gradient_accumulation_steps=1,
        max_steps=2,
        max_completion_length=8,
        learning_rate=1e-2,
        save_steps=1,
        lora_r=4,
        lora_alpha=8,
    )
    return TrainConfig(**{**base, **kw})


def length_reward(completions, **kwargs):
    """A random tiny model never earns the paper's rewards, so every group ties and gives no gradient; the
    completion's length differs between rollouts and does."""
    from medrlvr.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


def test_grpo_two_steps_with_lora(tiny_checkpoint, train_file, tmp_path, monkeypatch):
    from medrlvr import rewards

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)
    out = train(
        _config(
            tiny_checkpoint,
            train_file,
            tmp_path / "grpo",
            rewards={"format": 1.0, "accuracy": 1.0, "xml_count": 1.0, "length": 1.0},
        )
    )
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().sum()) > 0 for v in lora_b)  # LoRA B starts at zero: it moved
    base_after = load_file(tiny_checkpoint / "model.safetensors")
    import torch
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).state_dict()
    assert all(torch.equal(base_after[k], reference[k]) for k in base_after)  # the base checkpoint is untouched
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = {k for m in metrics for k in m}
    for key in (
        "rewards/format_reward/mean",
        "rewards/accuracy_reward/mean",
        "rewards/xml_count_reward/mean",
        "rewards/self_reflection_reward/mean",
        "frac_reward_zero_std",
        "learning_rate",
    ):
        assert key in logged, key
    assert (out / "completions.jsonl").read_text().strip()


def test_grpo_resumes_from_checkpoint(tiny_checkpoint, train_file, tmp_path):
    out = tmp_path / "resume"
    train(_config(tiny_checkpoint, train_file, out, max_steps=1))
    assert (out / "checkpoint-1").exists()
    train(_config(tiny_checkpoint, train_file, out, max_steps=2))
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) >= 1 and 2 in steps and (out / "checkpoint-2").exists()
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_sft_baseline(tiny_checkpoint, train_file, tmp_path):
    out = train(_config(tiny_checkpoint, train_file, tmp_path / "sft", method="sft", merge=True))
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "merged" / "config.json").exists()


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  model: m\n  rewards: {accuracy: 2.0, format: 0.5}\n")
    config = load_config(path, ["learning_rate=1e-5", "lora=false"])
    assert config.rewards == {"accuracy": 2.0, "format": 0.5} and config.learning_rate == 1e-5 and not config.lora
    assert (config.batch_size, config.num_generations, config.gradient_accumulation_steps) == (3, 3, 4)
    with pytest.raises(ValueError, match="unknown setting 'lr'"):
        load_config(None, ["lr=1"])
    with pytest.raises(ValueError, match="unknown reward"):
        load_config(None, ["rewards={nope: 1}"])
    assert self_reflection_reward(["Wait, let me re-check.", "B"]) == [1.0, 0.0] and REFLECTION.search("hmm")


@pytest.mark.slow
def test_grpo_on_smollm2_then_the_adapter_evaluates(real_data, tmp_path):
    from medrlvr.data import load_pool
    from medrlvr.engines import Sampling, get_engine

    path = tmp_path / "train.jsonl"
    write_jsonl(path, [r.to_dict() for r in load_pool("medmcqa:dev", real_data)[:4]])
    config = TrainConfig(
        model="smollm2-135m-instruct",
        train_file=str(path),
        output_dir=str(tmp_path / "out"),
        batch_size=1,
        gradient_accumulation_steps=1,
        max_steps=2,
        max_completion_length=32,
        save_steps=1,
    )
    out = train(config)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/accuracy_reward/mean" in m for m in metrics) and (out / "checkpoint-2").exists()
    engine = get_engine("transformers", str(out / "adapter"))  # base model loaded under the adapter
    text = engine.generate(["What is 2+2?"], sampling=Sampling(max_new_tokens=8, temperature=0))[0][0]
    assert text.tokens > 0
