"""PPO with a critic on the TRL path (method: ppo), on a tiny random model: it trains, the policy's and the critic's
LoRA move and the base does not, the dynamics are logged, and a run killed with SIGKILL resumes to the same policy
and critic as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, train

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def train_file(tmp_path):
    records = [Record(id=f"t{i}", question=f"Which option is number {i}?", options={"A": "one", "B": "two"},
                      answer="AB"[i % 2], subject="toy") for i in range(4)]  # fmt: skip
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [r.to_dict() for r in records])
    return path


def length_reward(completions, **kwargs):
    """A random tiny model never earns the paper's rewards; a length reward differs between rollouts."""
    from medrlvr.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


def _values(tiny_checkpoint, train_file, out, method="ppo", **kw):
    return dict(model=str(tiny_checkpoint), train_file=str(train_file), output_dir=str(out), method=method,
                batch_size=2, num_generations=2, gradient_accumulation_steps=1, max_steps=3, max_completion_length=8,
                learning_rate=1e-2, critic_learning_rate=1e-2, beta=0.01, save_steps=1, lora_r=4, lora_alpha=8,
                rewards={"length": 1.0}, **kw)  # fmt: skip


def test_ppo_trains_policy_and_critic_with_lora(tiny_checkpoint, train_file, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from medrlvr import rewards

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)
    out = train(TrainConfig(**_values(tiny_checkpoint, train_file, tmp_path / "ppo")))
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any(float(v.abs().sum()) > 0 for k, v in adapter.items() if "lora_B" in k)  # the policy's LoRA moved
    critic = load_file(out / "adapter" / "critic" / "critic.safetensors")
    assert any(float(v.abs().sum()) > 0 for k, v in critic.items() if "lora_B" in k)  # and the critic's
    assert float(critic["value_head.weight"].abs().sum()) > 0  # the value head starts at zero: it learned
    base_after = load_file(tiny_checkpoint / "model.safetensors")
    reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).state_dict()
    assert all(torch.equal(base_after[k], reference[k]) for k in base_after)  # the base is untouched
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = {k for m in metrics for k in m}
    for key in ("ppo/value_loss", "ppo/policy_loss", "ppo/explained_variance", "ppo/value_mean", "ppo/return_mean",
                "ppo/clipfrac", "ppo/value_clipfrac", "ppo/kl", "entropy", "completions/mean_length",
                "sampling/sampling_logp_difference/mean"):  # fmt: skip
        assert key in logged, key


def test_critic_warmup_leaves_the_policy_alone(tiny_checkpoint, train_file, tmp_path, monkeypatch):
    from medrlvr import rewards

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)
    out = train(TrainConfig(**_values(tiny_checkpoint, train_file, tmp_path / "warm", critic_warmup_steps=3)))
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert all(float(v.abs().sum()) == 0 for k, v in adapter.items() if "lora_B" in k)  # policy never stepped
    critic = load_file(out / "adapter" / "critic" / "critic.safetensors")
    assert float(critic["value_head.weight"].abs().sum()) > 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m["ppo/critic_warmup"] == 1.0 for m in metrics if "ppo/critic_warmup" in m)


def test_ppo_settings_are_checked_before_anything_runs():
    from medrlvr.errors import UserError

    with pytest.raises(UserError, match="method ppo: dynamic_sampling, skip_zero_variance and control are GRPO.s"):
        TrainConfig(method="ppo", dynamic_sampling=True)
    with pytest.raises(UserError, match="its loss_type is one of grpo, dapo, bnpo.*got dr_grpo"):
        TrainConfig(method="ppo", loss_type="dr_grpo")
    with pytest.raises(UserError, match="setting 'lam' must be at most 1"):
        TrainConfig(method="ppo", lam=1.5)


CHILD = """
import sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
from medrlvr import rewards
from medrlvr.train import TrainConfig, train
from test_ppo import length_reward
rewards.REWARDS["length"] = length_reward
train(TrainConfig(**{values!r}))
"""


def _child(values: dict) -> list[str]:
    code = CHILD.format(src=str(SRC), tests=str(Path(__file__).parent), values=values)
    return [sys.executable, "-c", code]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ppo", "grpo"])
def test_a_run_killed_with_sigkill_resumes_to_the_same_policy_and_critic(tiny_checkpoint, train_file, tmp_path,
                                                                          method):  # fmt: skip
    """kill -9 after the first checkpoint is marked complete; the rerun resumes from it and ends with the adapter (and
    PPO's critic) of a run that was never interrupted. A reward that differs between rollouts, so that every step
    moves the policy (GRPO's resumption once held only because the paper's rewards all tie on a random model)."""
    import torch

    whole = _values(tiny_checkpoint, train_file, tmp_path / "whole", method=method)
    subprocess.run(_child(whole), check=True, capture_output=True)
    cut = _values(tiny_checkpoint, train_file, tmp_path / "cut", method=method)
    process = subprocess.Popen(_child(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "cut" / "checkpoint-1" / "medrlvr-complete.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the first checkpoint was never written"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "cut" / "train_done.json").exists()
    subprocess.run(_child(cut), check=True, capture_output=True)
    for name in ("adapter_model.safetensors", "critic/critic.safetensors")[: 2 if method == "ppo" else 1]:
        a = load_file(tmp_path / "whole" / "adapter" / name)
        b = load_file(tmp_path / "cut" / "adapter" / name)
        assert a.keys() == b.keys()
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name


def test_on_policy_loss_equals_the_two_pass_form(tiny_checkpoint, train_file, tmp_path, monkeypatch):
    """One epoch, one mini-batch: the advantages computed in the loss from its own forward passes (no separate
    no-grad pass of the policy and the critic over the rollout batch) give the same policy and critic as the
    two-pass form that several epochs or mini-batches need (without dropout: with it, the two forms see different
    dropout masks, as two passes of any PPO do)."""

    from medrlvr import rewards
    from medrlvr.train.ppo.trainer import MedrlvrPPOTrainer

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)
    passes = []
    fused = train(
        TrainConfig(
            **{**_values(tiny_checkpoint, train_file, tmp_path / "fused"), "max_steps": 2, "lora_dropout": 0.0}
        )
    )
    original = MedrlvrPPOTrainer._values
    monkeypatch.setattr(MedrlvrPPOTrainer, "on_policy", lambda self: False)
    monkeypatch.setattr(MedrlvrPPOTrainer, "_values", lambda self, inputs: passes.append(1) or original(self, inputs))
    two_pass = train(
        TrainConfig(**{**_values(tiny_checkpoint, train_file, tmp_path / "two"), "max_steps": 2, "lora_dropout": 0.0})
    )
    assert len(passes) == 4  # the two-pass form did run: a no-grad critic pass and the loss's, per step
    for name in ("adapter_model.safetensors", "critic/critic.safetensors"):
        a, b = load_file(fused / "adapter" / name), load_file(two_pass / "adapter" / name)
        assert a.keys() == b.keys()
        assert any(float(v.abs().sum()) > 0 for v in a.values())
        for key in a:  # float noise between the passes; Adam turns a near-zero gradient's sign into a full step
            assert float((a[key] - b[key]).norm()) <= 0.02 * float(a[key].norm()) + 1e-6, key
    read = lambda out: [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    for m1, m2 in zip(read(fused), read(two_pass), strict=True):
        for key in ("ppo/kl", "ppo/value_mean", "ppo/return_mean", "ppo/explained_variance", "ppo/value_loss"):
            if key in m1:
                assert m1[key] == pytest.approx(m2[key], rel=1e-4, abs=1e-6), key


def test_a_lora_critic_holds_no_second_copy_of_the_base(tiny_checkpoint):
    """The separate critic's frozen base weights are the policy's own tensors (LoRA: neither ever changes them),
    its adapter and head its own; a fully trained policy shares nothing."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from medrlvr.train.ppo.critic import SeparateCritic

    policy = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    policy.requires_grad_(False)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="FEATURE_EXTRACTION")
    critic = SeparateCritic.from_pretrained(tiny_checkpoint, lora=lora)
    shared = critic.share_frozen(policy)
    decoder = {n: p.data_ptr() for n, p in policy.get_decoder().named_parameters()}
    frozen = [(n, p) for n, p in critic.backbone.get_base_model().named_parameters() if not p.requires_grad]
    assert frozen and all(p.data_ptr() == decoder[n.replace(".base_layer.", ".")] for n, p in frozen)
    assert shared == sum(p.numel() * p.element_size() for _, p in frozen)
    assert all(p.data_ptr() not in decoder.values() for p in critic.parameters())  # its trained weights are its own
    ids = torch.tensor([[1, 2, 3, 4]])
    values = critic.values(ids, torch.ones_like(ids))
    values.sum().backward()  # the critic's loss reaches its adapter and head, never the policy's weights
    assert all(p.grad is None for p in policy.parameters())
    trained = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)  # full fine-tuning: its weights move
    assert SeparateCritic.from_pretrained(tiny_checkpoint, lora=lora).share_frozen(trained) == 0
