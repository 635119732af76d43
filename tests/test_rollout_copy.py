"""The rollout copy (medrlvr.train.grpo.rollout.RolloutModel) is the policy: on a bf16 base a LoRA update of one step at
the paper's learning rate moves the copy's log-probabilities as it moves the policy's (a copy that merges the update
into bf16 weights rounds most of it away), and the copy stops on the policy's own end tokens."""

import pytest
import torch
from conftest import make_tiny_model, make_tiny_tokenizer

from medrlvr.train.grpo.rollout import RolloutModel, rollout_attention


def _sequence_logps(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1).sum(-1)


def _lora_policy(seed=0):
    from peft import LoraConfig, get_peft_model

    tokenizer = make_tiny_tokenizer()
    base = make_tiny_model(tokenizer, seed=seed).to(torch.bfloat16)
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(base, config), tokenizer


def test_one_small_lora_step_moves_the_copy_as_it_moves_the_policy():
    policy, tokenizer = _lora_policy()
    copy = RolloutModel(policy, torch.bfloat16, "cpu")
    generator = torch.Generator().manual_seed(0)
    train_ids = torch.randint(10, len(tokenizer), (4, 24), generator=generator)
    probe_ids = torch.randint(10, len(tokenizer), (8, 24), generator=generator)
    policy_before, copy_before = _sequence_logps(policy, probe_ids), _sequence_logps(copy.model, probe_ids)
    assert torch.allclose(policy_before, copy_before, atol=1e-3)  # B = 0: both are the base
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=2e-5)
    for _ in range(1):  # one step of a consistent supervised signal: raise the training sequences' likelihood
        logits = policy(input_ids=train_ids).logits[:, :-1].float()
        loss = -torch.log_softmax(logits, -1).gather(-1, train_ids[:, 1:, None]).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    copy.sync(policy)
    policy_change = _sequence_logps(policy, probe_ids) - policy_before
    copy_change = _sequence_logps(copy.model, probe_ids) - copy_before
    cosine = torch.nn.functional.cosine_similarity(policy_change, copy_change, dim=0)
    assert float(policy_change.abs().max()) > 0  # the step moved the policy
    assert float(cosine) >= 0.99, f"cosine {float(cosine):.3f}"


def test_the_copy_stops_on_every_end_token_of_the_policys_generation_config():
    from medrlvr.engines import Sampling
    from medrlvr.engines.hf import TransformersEngine

    tokenizer = make_tiny_tokenizer()
    policy = make_tiny_model(tokenizer, seed=4)
    prompt = tokenizer(text=["Which option?"])["input_ids"]
    with torch.no_grad():  # the policy's greedy first token becomes an end token (as <end_of_turn> is for Gemma)
        first = int(policy(input_ids=torch.tensor(prompt)).logits[0, -1].argmax())
    assert first != tokenizer.eos_token_id
    policy.generation_config.eos_token_id = [tokenizer.eos_token_id, first]
    copy = RolloutModel(policy, torch.float32, "cpu")
    assert copy.model.generation_config.eos_token_id == [tokenizer.eos_token_id, first]
    engine = TransformersEngine(None, model_obj=copy.model, tokenizer=tokenizer, dtype="fp32", device="cpu")
    out = engine.generate_ids(prompt, n=1, sampling=Sampling(max_new_tokens=8, temperature=0.0), logprobs=True)
    assert out[0][0].token_ids == [first]  # stopped on it


def test_gemma2_style_softcapped_attention_runs_eager():
    from types import SimpleNamespace

    assert rollout_attention(SimpleNamespace(attn_logit_softcapping=50.0), "medrlvr_decode") == "eager"
    assert rollout_attention(SimpleNamespace(attn_logit_softcapping=None), "medrlvr_decode") == "medrlvr_decode"


def test_a_4bit_policy_is_one_clear_error():
    from medrlvr.train.grpo.rollout import check_rollout_support

    class Quantized(torch.nn.Module):
        is_loaded_in_4bit = True

    with pytest.raises(ValueError, match="cannot sample from a quantized"):
        check_rollout_support(Quantized())


def test_full_fine_tuning_keeps_fp32_master_weights_on_a_gpu_too(tiny_checkpoint):
    from medrlvr.modeling import load_for_training

    def dtype(**kw):
        model, _ = load_for_training(str(tiny_checkpoint), qlora=False, trust_remote_code=False, **kw)
        return next(model.parameters()).dtype

    assert dtype(on_gpu=True, bf16=True, frozen=False) == torch.float32  # trained: fp32 for the optimizer
    assert dtype(on_gpu=True, bf16=True, frozen=True) == torch.bfloat16  # a frozen LoRA base: bf16
