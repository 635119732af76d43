"""GRPO variants (medrlvr.train.grpo.VARIANTS) and the rollouts' importance-sampling correction: for each, medrlvr's
trainer (its rollouts' log-probs, its completion-only log-prob patch, its scoring and loss) gives the loss and the
gradients that TRL's own code gives when the same rollouts come from vLLM; and each trains through train.run."""

import json

import pytest
import torch
from conftest import make_tiny_model, make_tiny_tokenizer
from trl import GRPOTrainer

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, build_trainer, run

VARIANTS = ["grpo", "dr_grpo", "dapo", "gspo", "cispo"]


def length_reward(completions, **kwargs):
    from medrlvr.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


@pytest.fixture(autouse=True)
def length_rewards(monkeypatch):
    from medrlvr import rewards

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)


def _records(n=4):
    return [Record(id=f"t{i}", question=f"Which option is number {i}?", options={"A": "one", "B": "two"},
                   answer="AB"[i % 2], subject="toy") for i in range(n)]  # fmt: skip


def _config(tmp_path, **kw):
    base = dict(
        model="in-memory", train_file=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "out"), batch_size=2,
        num_generations=2, gradient_accumulation_steps=1, max_steps=2, max_completion_length=8, learning_rate=5e-2,
        save_steps=100, lora_r=4, lora_alpha=8, lora_dropout=0.0, bf16=False, rollout_engine="medrlvr",
        rollout_dtype="bf16", rewards={"length": 1.0}, temperature=1.0,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _trainer(tmp_path, **kw):
    tokenizer = make_tiny_tokenizer()
    records = _records()
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    trainer = build_trainer(_config(tmp_path, **kw), records, make_tiny_model(tokenizer, seed=1), tokenizer)
    with torch.no_grad():  # a LoRA that matters
        generator = torch.Generator().manual_seed(0)
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def _loss_and_grads(trainer, inputs, trl_own: bool):
    """Score the batch and take the loss's gradients, through medrlvr's trainer or through TRL's own code with
    TRL's vLLM flag on (and TRL's own log-prob computation)."""
    if trl_own:
        trainer.use_vllm = True  # TRL's vLLM path: its flag, its scoring and loss code, its log-probs
        trainer._last_loaded_step = trainer.state.global_step  # no vLLM engine to sync
        trainer._get_per_token_logps_and_entropies = GRPOTrainer._get_per_token_logps_and_entropies.__get__(trainer)
    try:
        trainer.model.train()
        out = trainer._generate_and_score_completions([dict(x) for x in inputs])
        trainer.model.zero_grad()
        loss = trainer._compute_loss(trainer.model, out)
        loss.backward()
        grads = [p.grad.clone() for p in trainer.model.parameters() if p.requires_grad]
    finally:
        trainer.use_vllm = False
        trainer.__dict__.pop("_get_per_token_logps_and_entropies", None)
    return out, loss.detach(), grads


def _same(trainer, **expect):
    rows = [dict(row) for row in trainer.train_dataset][:2]
    inputs = [row for row in rows for _ in range(2)]  # TRL's sampler: each prompt num_generations times
    captured = trainer.rollout_func([x["prompt"] for x in inputs], trainer)  # medrlvr's rollouts, bf16 log-probs
    trainer.rollout_func = lambda prompts, trainer: captured  # both paths score the same rollouts
    ours = _loss_and_grads(trainer, inputs, trl_own=False)
    theirs = _loss_and_grads(trainer, inputs, trl_own=True)
    assert torch.allclose(ours[1], theirs[1], atol=1e-5, rtol=1e-4), (ours[1], theirs[1])
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-3) for a, b in zip(ours[2], theirs[2]))
    assert any(float(g.abs().sum()) > 0 for g in ours[2])
    return ours[0], theirs[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variants_loss_and_gradients_equal_trls(tmp_path, variant):
    trainer = _trainer(tmp_path, variant=variant)
    _same(trainer)


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
def test_importance_sampling_on_our_rollouts_is_trls_for_vllm(tmp_path, mode):
    trainer = _trainer(tmp_path, rollout_importance_sampling=mode, rollout_importance_sampling_max=1.001,
                       rollout_importance_sampling_min=0.999)  # fmt: skip
    ours, theirs = _same(trainer)
    assert torch.allclose(ours["importance_sampling_ratio"], theirs["importance_sampling_ratio"])
    # bf16 sampling against fp32 training: the tight bounds bite (the correction does something here)
    ratio = ours["importance_sampling_ratio"]
    assert float((ratio - 1).abs().max()) > 0


def test_top_entropy_quantile_loss_equals_trls(tmp_path):
    _same(_trainer(tmp_path, top_entropy_quantile=0.5))


def test_a_variant_sets_its_settings_where_the_recipe_leaves_the_default():
    dapo = TrainConfig(variant="dapo", max_completion_length=100)
    assert (dapo.loss_type, dapo.epsilon_high, dapo.dynamic_sampling, dapo.beta) == ("dapo", 0.28, True, 0.0)
    assert dapo.overlong_buffer == 20
    assert TrainConfig(variant="dapo", epsilon_high=0.3, overlong_buffer=0).epsilon_high == 0.3  # explicit wins
    gspo = TrainConfig(variant="gspo")
    assert (gspo.importance_sampling_level, gspo.epsilon, gspo.epsilon_high) == ("sequence", 3e-4, 4e-4)
    assert TrainConfig(variant="cispo").loss_type == "cispo"
    assert (TrainConfig(variant="dr_grpo").loss_type, TrainConfig(variant="dr_grpo").scale_rewards) == (
        "dr_grpo", "none")  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_trains_through_run(tmp_path, tiny_checkpoint, variant):
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in _records()])
    out = run(_config(tmp_path, model=str(tiny_checkpoint), variant=variant, rollout_dtype="auto"))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "loss" in m]
    assert len(steps) == 2 and all("sampling/sampling_logp_difference/max" in m for m in steps)
    assert json.loads((out / "train_config.json").read_text())["variant"] == variant
