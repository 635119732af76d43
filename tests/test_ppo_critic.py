"""PPO's critic in both forms on a tiny random Llama built from a config (no download): it learns a fixed batch's
returns, trains only its own weights (never the base model's, never the policy's adapter), and comes back from
safetensors."""

import pytest
import torch

from medrlvr.train.ppo.core import value_loss
from medrlvr.train.ppo.critic import SeparateCritic, SharedCritic


def tiny_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=128)  # fmt: skip


def lora():
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)


def separate_critic(seed=0, with_lora=True):
    from transformers import AutoModel

    torch.manual_seed(seed)
    return SeparateCritic(AutoModel.from_config(tiny_config()), lora() if with_lora else None)


def policy_and_shared_critic(seed=0):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    policy = get_peft_model(AutoModelForCausalLM.from_config(tiny_config()), lora())
    return policy, SharedCritic(policy, lora())


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 128, (4, 12), generator=g)
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, :3] = 0  # a left-padded prompt
    returns = torch.rand(4, 12, generator=g) * mask
    return ids, mask, returns


def fit(critic, steps=20):
    ids, mask, returns = batch()
    with torch.no_grad():
        old_values = critic.values(ids, mask)  # the rollout's values: the clip's anchor, as in a PPO update
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss, _ = value_loss(critic.values(ids, mask), old_values, returns, mask, clip=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def snapshot(named_parameters):
    return {name: p.detach().clone() for name, p in named_parameters}


def moved(before, after, keep):
    return {n for n in before if keep(n) and not torch.equal(before[n], after[n])}


def test_values_are_float32_one_per_token_and_zero_on_padding():
    critic = SeparateCritic(separate_critic().backbone.base_model.model, None, init="small")
    ids, mask, _ = batch()
    values = critic.values(ids, mask)
    assert values.shape == (4, 12) and values.dtype == torch.float32
    assert torch.all(values[1, :3] == 0) and torch.any(values[1, 3:] != 0)


def test_a_zero_initialised_head_starts_every_value_at_zero():
    _, critic = policy_and_shared_critic()
    ids, mask, _ = batch()
    assert torch.equal(critic.values(ids, mask), torch.zeros(4, 12))


def test_the_separate_critic_learns_and_only_its_lora_and_head_move():
    critic = separate_critic()
    before = snapshot(critic.backbone.named_parameters())
    head_before = critic.head.weight.detach().clone()
    losses = fit(critic)
    after = snapshot(critic.backbone.named_parameters())
    assert losses[-1] < 0.5 * losses[0]
    assert moved(before, after, lambda n: "lora_B" in n), "the LoRA weights did not move"
    assert not moved(before, after, lambda n: "lora_" not in n), "a base weight moved"
    assert not torch.equal(head_before, critic.head.weight)


def test_the_separate_critic_without_lora_trains_its_whole_copy():
    critic = separate_critic(with_lora=False)
    before = snapshot(critic.backbone.named_parameters())
    losses = fit(critic)
    assert losses[-1] < 0.5 * losses[0]
    assert moved(before, snapshot(critic.backbone.named_parameters()), lambda n: "q_proj" in n)


def test_the_shared_critic_learns_on_its_own_adapter_and_leaves_the_policy_as_it_was():
    policy, critic = policy_and_shared_critic()
    ids, mask, _ = batch()
    with torch.no_grad():
        logits_before = policy(input_ids=ids, attention_mask=mask).logits
    before = snapshot(policy.named_parameters())
    losses = fit(critic)
    after = snapshot(policy.named_parameters())
    assert losses[-1] < 0.5 * losses[0]
    assert moved(before, after, lambda n: ".critic." in n and "lora_B" in n), "the critic's LoRA did not move"
    assert not moved(before, after, lambda n: ".critic." not in n), "a base weight or the policy's adapter moved"
    assert all(p.grad is None for n, p in policy.named_parameters() if ".default." in n)
    # the policy's adapter is the active one again, its optimizer's share is its own adapter, and the policy
    # computes what it did
    assert policy.active_adapters == ["default"]
    names = {id(p): n for n, p in policy.named_parameters()}
    policy_share = {names[id(p)] for p in critic.policy_parameters()}
    assert policy_share == {n for n in names.values() if ".default." in n}
    with torch.no_grad():
        assert torch.equal(policy(input_ids=ids, attention_mask=mask).logits, logits_before)
    # and the policy's loss never reaches the critic's adapter
    for p in critic.parameters():
        p.grad = None
    policy(input_ids=ids, attention_mask=mask).logits.sum().backward()
    assert all(p.grad is None for p in critic.parameters())
    assert any(p.grad is not None for p in critic.policy_parameters())


def test_the_shared_critic_needs_a_peft_policy_and_a_free_adapter_name():
    from transformers import AutoModelForCausalLM

    with pytest.raises(TypeError, match="PEFT model"):
        SharedCritic(AutoModelForCausalLM.from_config(tiny_config()), lora())
    policy, _ = policy_and_shared_critic()
    with pytest.raises(ValueError, match="already has an adapter named 'critic'"):
        SharedCritic(policy, lora())


@pytest.mark.parametrize("form", ["separate", "shared"])
def test_a_saved_critic_loads_into_a_fresh_one_with_the_same_values(form, tmp_path):
    make = separate_critic if form == "separate" else (lambda: policy_and_shared_critic()[1])
    critic = make()
    fit(critic, steps=3)
    critic.save(tmp_path / "critic")
    assert sorted(p.name for p in (tmp_path / "critic").iterdir()) == ["critic.json", "critic.safetensors"]
    fresh = make()
    ids, mask, _ = batch()
    assert not torch.allclose(fresh.values(ids, mask), critic.values(ids, mask))
    fresh.load(tmp_path / "critic")
    assert torch.equal(fresh.values(ids, mask), critic.values(ids, mask))
    other = policy_and_shared_critic()[1] if form == "separate" else separate_critic()
    with pytest.raises(ValueError, match=f"a {form} critic, cannot load"):
        other.load(tmp_path / "critic")


def test_a_separate_critic_loads_its_copy_from_the_policys_checkpoint(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    critic = SeparateCritic.from_pretrained(tiny_checkpoint, lora())
    policy = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    # the copy is the policy's decoder, weights and all: the same hidden states before any training
    expected = policy.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(critic.hidden_states(ids, mask), expected, atol=1e-6)
