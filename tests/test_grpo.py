"""medrlvr's GRPOTrainer (medrlvr.train.grpo.loss): on a CPU the completion log-probabilities, entropies and their gradients
equal TRL's own computation, with and without the prompt's forward pass shared by a group's rollouts."""

import pytest
import torch
from conftest import make_tiny_model, make_tiny_tokenizer

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, build_trainer


def _trainer(tmp_path):
    tokenizer = make_tiny_tokenizer()
    records = [
        Record(id=f"t{i}", question=f"Which option is number {i}?", options={"A": "one", "B": "two"}, answer="A")
        for i in range(4)
    ]
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    config = TrainConfig(
        model="in-memory", train_file=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "out"), batch_size=2,
        num_generations=2, gradient_accumulation_steps=1, max_completion_length=6, lora_r=4, lora_alpha=8,
        lora_dropout=0.0, bf16=False, beta=0.0, temperature=0.7,
    )  # fmt: skip
    trainer = build_trainer(config, records, make_tiny_model(tokenizer, seed=2), tokenizer)
    with torch.no_grad():  # a LoRA that matters
        generator = torch.Generator().manual_seed(0)
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return trainer


def _batch(pad_id, head: int = 0):
    """TRL's layout: [left-padded prompt | right-padded completion]; prompts of two lengths, each shared by two rows
    (a group), rows in shuffled order; with ``head``, both prompts start with the same ``head`` tokens (a system
    prompt)."""
    g = torch.Generator().manual_seed(1)
    common = torch.randint(10, 100, (head,), generator=g)
    prompts = [torch.cat([common, torch.randint(10, 100, (n,), generator=g)]) for n in (7, 4)]
    rows, masks = [], []
    for p, completion_length in [(0, 6), (1, 3), (0, 4), (1, 6)]:
        prompt = prompts[p]
        completion = torch.randint(10, 100, (completion_length,), generator=g)
        left, right = 7 + head - len(prompt), 6 - completion_length
        rows.append(torch.cat([torch.full((left,), pad_id), prompt, completion, torch.full((right,), pad_id)]))
        masks.append(torch.cat([torch.zeros(left), torch.ones(len(prompt) + completion_length), torch.zeros(right)]))
    return torch.stack(rows), torch.stack(masks).long()


@pytest.mark.parametrize("share, head", [(False, 0), (True, 0), (True, 20)], ids=["whole", "shared", "shared-head"])
def test_completion_logprobs_entropies_and_gradients_equal_trls(tmp_path, share, head, monkeypatch):
    from medrlvr.train.grpo import loss  # (medrlvr.train is also the API function: import from it)

    trainer = _trainer(tmp_path)
    trainer.share_prompts = share
    ids, mask = _batch(trainer.processing_class.pad_token_id, head)
    heads = []  # the common prefix the shared path found (it runs once, before the prompts' own tokens)
    from medrlvr.engines.cache import shared_prefix

    monkeypatch.setattr(loss, "shared_prefix", lambda seqs, keep: heads.append(shared_prefix(seqs, keep)) or heads[-1])
    completion_mask = mask[:, -6:].float()
    lora = [p for n, p in trainer.model.named_parameters() if p.requires_grad]

    def run(method, entropy_weight=0.0):
        trainer.model.zero_grad()
        logps, entropies, _ = method(trainer.model, ids, mask, 6, compute_entropy=True)
        ((logps + entropy_weight * entropies) * completion_mask).sum().backward()
        return logps.detach() * completion_mask, entropies.detach() * completion_mask, [p.grad.clone() for p in lora]

    ours = run(trainer._get_per_token_logps_and_entropies)
    trl_own = super(type(trainer), trainer)._get_per_token_logps_and_entropies
    theirs = run(trl_own)
    assert torch.allclose(ours[0], theirs[0], atol=1e-4)
    assert torch.allclose(ours[1], theirs[1], atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-3) for a, b in zip(ours[2], theirs[2]))
    assert any(float(g.abs().sum()) > 0 for g in ours[2])
    assert len(heads) == share and (not share or (heads[0] >= 16) == (head > 0))  # the paths this case is about
    # the entropies keep their gradient (TRL's entropy bonus, entropy_coef, differentiates them)
    ours, theirs = run(trainer._get_per_token_logps_and_entropies, 0.5), run(trl_own, 0.5)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-3) for a, b in zip(ours[2], theirs[2]))
