"""GRPO rollouts through medrlvr's engine (medrlvr.train.grpo.rollout) on a tiny random model: the same tokens as TRL's own
generation for the same weights, sampled from the live policy after every optimizer step, log-probabilities that
match a recomputation, and DAPO dynamic sampling that hands TRL only groups with a gradient."""

import json

import pytest
import torch
from conftest import make_tiny_model, make_tiny_tokenizer

from medrlvr.engines import Sampling
from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, build_trainer, train
from medrlvr.train.grpo import grpo_settings
from medrlvr.train.grpo.rollout import Rollouts, Scorer, group_is_tied


def _records(n=6):
    return [
        Record(
            id=f"t{i}",
            question=f"Which option is number {i}?",
            options={"A": "one", "B": "two"},
            answer="AB"[i % 2],
            subject="toy",
        )
        for i in range(n)
    ]


def length_reward(completions, **kwargs):
    """A random tiny model never earns the paper's rewards; a completion's length differs between rollouts."""
    from medrlvr.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


@pytest.fixture
def length_rewards(monkeypatch):
    from medrlvr import rewards

    monkeypatch.setitem(rewards.REWARDS, "length", length_reward)


def _config(tmp_path, **kw):
    base = dict(
        model="in-memory",
        train_file=str(tmp_path / "train.jsonl"),
        output_dir=str(tmp_path / "out"),
        batch_size=2,
        num_generations=2,
        gradient_accumulation_steps=1,
        max_steps=2,
        max_completion_length=10,
        learning_rate=5e-2,
        save_steps=100,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        beta=0.0,
        bf16=False,
        rollout_engine="medrlvr",
        rollout_dtype="fp32",
        rewards={"length": 1.0},
        prefill="<think>",
    )
    return TrainConfig(**{**base, **kw})


def _trainer(tmp_path, greedy_trl=False, **kw):
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer, seed=1)
    config = _config(tmp_path, **kw)
    records = _records()
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    trainer = build_trainer(config, records, model, tokenizer)
    if greedy_trl:  # TRL's own generate, greedy, to compare with (generation_kwargs are refused with our rollouts)
        trainer.generation_config.do_sample = False
    return trainer, config


def _randomize_lora(trainer, seed=3):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def _greedy(rollouts: Rollouts, max_new_tokens=10) -> Rollouts:
    rollouts.sampling = Sampling(max_new_tokens=max_new_tokens, temperature=0.0)
    return rollouts


def _trl_own_generation(trainer, prompts):
    """TRL's own path: the trainer without a rollout_func generates with transformers' generate (greedy here)."""
    ours, trainer.rollout_func = trainer.rollout_func, None
    try:
        prompt_ids, completion_ids, *_ = trainer._generate(prompts)
    finally:
        trainer.rollout_func = ours
    return prompt_ids, completion_ids


def _prompts(trainer, n=3):
    return [row["prompt"] for row in trainer.train_dataset][:n]


def test_greedy_fp32_rollouts_equal_trls_own_generation(tmp_path, length_rewards):
    trainer, _ = _trainer(tmp_path, greedy_trl=True)
    _randomize_lora(trainer)  # a LoRA that changes the outputs: the copy must carry it
    prompts = _prompts(trainer)
    assert all(p.endswith("<think>") for p in prompts)  # the prefill is part of what the model continues
    trl_prompt_ids, trl_completion_ids = _trl_own_generation(trainer, prompts)
    out = _greedy(trainer.rollout_func)(prompts, trainer)
    assert out["prompt_ids"] == [list(p) for p in trl_prompt_ids]
    assert out["completion_ids"] == [list(c) for c in trl_completion_ids]
    # and the LoRA mattered: without it the greedy tokens differ
    with trainer.model.disable_adapter():
        _, base_ids = _trl_own_generation(trainer, prompts)
    assert [list(c) for c in base_ids] != out["completion_ids"]


def test_after_an_optimizer_step_rollouts_come_from_the_updated_weights(tmp_path, length_rewards):
    trainer, _ = _trainer(tmp_path, greedy_trl=True)
    prompts = _prompts(trainer)
    rollouts = trainer.rollout_func
    before = _greedy(rollouts)(prompts, trainer)["completion_ids"]
    rollouts.sampling = Sampling(max_new_tokens=10, temperature=1.0)  # training samples
    trainer.train()
    assert trainer.state.global_step == 2 and rollouts.model.syncs >= 3
    after = _greedy(rollouts)(prompts, trainer)["completion_ids"]
    _, trl_after = _trl_own_generation(trainer, prompts)
    assert after != before  # training moved the policy (so a stale copy would be caught below)
    assert after == [list(c) for c in trl_after]  # the copy samples what the trained policy samples
    copy = rollouts.model.params  # in the policy's dtype, the copy holds the frozen base weights once
    frozen = {n: p for n, p in trainer.model.named_parameters() if not p.requires_grad}
    assert frozen and {p.data_ptr() for p in frozen.values()} <= {p.data_ptr() for p in copy.values()}


def test_logprobs_match_a_recomputation_within_bf16_tolerance(tmp_path, length_rewards):
    trainer, config = _trainer(tmp_path, rollout_dtype="bf16")
    _randomize_lora(trainer)
    prompts = [p for p in _prompts(trainer, 2) for _ in range(2)]
    out = trainer.rollout_func(prompts, trainer)
    model = trainer.model.eval()
    diffs = []
    with torch.no_grad():
        for prompt_ids, completion_ids, logprobs in zip(out["prompt_ids"], out["completion_ids"], out["logprobs"]):
            assert len(logprobs) == len(completion_ids) > 0
            ids = torch.tensor([prompt_ids + completion_ids])
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float() / config.temperature
            reference = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)
            diffs += (reference - torch.tensor(logprobs)).abs().tolist()
    assert max(diffs) < 0.1 and sum(diffs) / len(diffs) < 0.03


def test_grpo_settings_pin_what_the_paper_ran_with():
    from trl import GRPOConfig

    config = TrainConfig()
    args = GRPOConfig(output_dir="unused", use_cpu=True, **grpo_settings(config, [1.0, 1.0, 1.0], "medrlvr"))
    assert (args.loss_type, args.beta, args.scale_rewards, args.epsilon) == ("grpo", 0.04, "group", 0.2)
    assert (args.temperature, args.top_p, args.top_k, args.num_iterations) == (0.9, 1.0, 0, 1)
    assert args.mask_truncated_completions is False and args.per_device_train_batch_size == 9
    assert args.epsilon_high == 0.2  # epsilon_high unset: the clip is symmetric
    clip_higher = grpo_settings(TrainConfig(epsilon_high=0.28), [1.0], "medrlvr")
    assert (clip_higher["epsilon"], clip_higher["epsilon_high"]) == (0.2, 0.28)


# TRL defaults that medrlvr relies on without passing them. If TRL changes one, this fails: pin it in grpo_settings.
RELIED_ON_TRL_DEFAULTS = {
    "delta": None,
    "disable_dropout": False,
    "sync_ref_model": False,
    "use_liger_kernel": False,
    "cast_lm_head_to_fp32": False,
    "num_generations_eval": None,
}


def test_trl_defaults_we_rely_on_have_not_moved():
    from trl import GRPOConfig

    args = GRPOConfig(output_dir="unused", use_cpu=True)
    moved = {k: getattr(args, k) for k, v in RELIED_ON_TRL_DEFAULTS.items() if getattr(args, k) != v}
    assert not moved, f"TRL changed these defaults: {moved}; pin them in medrlvr.train.grpo.grpo_settings"


# --- dynamic sampling ---------------------------------------------------------------------------------------


class ScriptedRollouts(Rollouts):
    """Rollouts whose 'generation' is scripted: prompts starting with 'tie' give every rollout the same text (all
    equal rewards), the others give rollouts of different lengths."""

    def _generate(self, engine, prompts, seed):
        self.generated = getattr(self, "generated", 0) + len(prompts)
        completion_ids = []
        for i, p in enumerate(prompts):
            k = i % self.num_generations
            completion_ids.append([7] * (3 if p.startswith("tie") else 1 + k))
        return [[1, 2]] * len(prompts), completion_ids, [[-0.5] * len(c) for c in completion_ids]


def _scripted(n_tie, n_mixed, max_resample, G=2):
    rows = {f"tie-{i}": {"prompt": f"tie-{i}", "answer": "A", "id": f"tie-{i}"} for i in range(n_tie)}
    rows |= {f"mixed-{i}": {"prompt": f"mixed-{i}", "answer": "B", "id": f"mixed-{i}"} for i in range(n_mixed)}
    return ScriptedRollouts(
        sampling=Sampling(max_new_tokens=4, temperature=1.0),
        num_generations=G,
        rows=rows,
        dynamic=True,
        max_resample=max_resample,
        scorer=Scorer([lambda completions, **kw: [len(c) for c in completions]], [1.0]),
        decode=lambda ids: "x" * len(ids),
    )


def test_dynamic_sampling_replaces_tied_groups_with_groups_that_have_a_gradient():
    rollouts = _scripted(n_tie=6, n_mixed=6, max_resample=4)
    batch = [p for p in ["tie-0", "tie-1", "tie-2", "mixed-0"] for _ in range(2)]
    out = rollouts._dynamic(None, batch, *rollouts._generate(None, batch, 0), step=0, seed=0)
    log = rollouts.last
    assert log.tied_before == 0.75 and log.tied_after == 0.0 and not log.budget_exhausted
    assert log.groups_kept == 4 and log.groups_generated > 4 and log.rounds >= 1
    assert len(out["completion_ids"]) == 8 and len(out["prompt_ids"]) == 8 and len(out["logprobs"]) == 8
    # the rows TRL scores carry the replacing questions' own columns, group by group
    assert all(i.startswith("mixed") for i in out["id"]) and set(out["answer"]) == {"B"}
    groups = [out["completion_ids"][i : i + 2] for i in range(0, 8, 2)]
    assert not any(group_is_tied([len(c) for c in g]) for g in groups)


def test_dynamic_sampling_says_when_the_budget_ran_out():
    rollouts = _scripted(n_tie=10, n_mixed=1, max_resample=1)
    batch = [p for p in ["tie-0", "tie-1", "tie-2"] for _ in range(2)]
    out = rollouts._dynamic(None, batch, *rollouts._generate(None, batch, 0), step=5, seed=0)
    log = rollouts.last
    assert log.budget_exhausted and log.rounds == 1 and len(out["completion_ids"]) == 6
    assert log.tied_after > 0 and log.groups_kept < 3
    again = _scripted(n_tie=10, n_mixed=1, max_resample=1)
    again_out = again._dynamic(None, batch, *again._generate(None, batch, 0), step=5, seed=0)
    assert again_out["id"] == out["id"]  # the same step draws the same further questions (resumable)


def test_dynamic_sampling_in_training_logs_and_trains(tmp_path, tiny_checkpoint, length_rewards):
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in _records()])
    config = _config(tmp_path, model=str(tiny_checkpoint), dynamic_sampling=True, max_resample=2, save_steps=1)
    out = train(config)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    step = next(m for m in metrics if "dynamic_sampling/groups_generated" in m)
    assert step["dynamic_sampling/groups_kept"] <= step["dynamic_sampling/groups_generated"]
    assert "dynamic_sampling/frac_reward_zero_std_after" in step and "frac_reward_zero_std" in step
    # every step logs the gap between the sampler's log-probs and the trainer's, with TRL's names
    steps = [m for m in metrics if "loss" in m]
    keys = ("sampling/sampling_logp_difference/mean", "sampling/sampling_logp_difference/max",
            "sampling/importance_sampling_ratio/min", "sampling/importance_sampling_ratio/mean",
            "sampling/importance_sampling_ratio/max")  # fmt: skip
    assert len(steps) == 2 and all(k in m for m in steps for k in keys)


def test_dynamic_sampling_needs_our_rollouts():
    with pytest.raises(ValueError, match="dynamic_sampling needs rollout_engine medrlvr"):
        TrainConfig(dynamic_sampling=True, rollout_engine="trl")
    with pytest.raises(ValueError, match="stop ends medrlvr's rollouts; rollout_engine trl does not apply it"):
        TrainConfig(stop=["</answer>"], rollout_engine="trl")


def test_settings_our_rollouts_cannot_honour_are_errors(tmp_path, length_rewards):
    cases = [
        ({"min_p": 0.1}, "extra.min_p is not applied by rollout_engine medrlvr"),
        ({"generation_kwargs": {}}, "extra.generation_kwargs is not applied"),
        ({"vllm_importance_sampling_mode": "token_mask"}, "rollout_importance_sampling"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            _trainer(tmp_path, extra=extra)
    with pytest.raises(ValueError, match="rollout_importance_sampling needs rollouts that report"):
        _trainer(tmp_path, rollout_engine="trl", rollout_importance_sampling="token_truncate")


def test_dynamic_sampling_resolves_auto_to_our_rollouts(monkeypatch):
    import importlib.util

    from medrlvr.train.grpo import resolve_rollout_engine

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # "vLLM is installed"
    assert resolve_rollout_engine(TrainConfig(), on_gpu=True) == "vllm"
    assert resolve_rollout_engine(TrainConfig(dynamic_sampling=True), on_gpu=True) == "medrlvr"
    assert resolve_rollout_engine(TrainConfig(variant="dapo"), on_gpu=True) == "medrlvr"


def test_replaced_groups_carry_their_own_prompt_and_each_rank_draws_its_own():
    batch = [p for p in ["tie-0", "tie-1", "tie-2", "mixed-0"] for _ in range(2)]
    outs = []
    for rank in (0, 1):
        rollouts = _scripted(n_tie=6, n_mixed=8, max_resample=4)
        outs.append(rollouts._dynamic(None, batch, *rollouts._generate(None, batch, 0), step=0, seed=0, rank=rank))
    assert all(p == i for p, i in zip(outs[0]["prompt"], outs[0]["id"]))  # each row's own prompt (id == prompt)
    assert outs[0]["prompt"][:2] == ["mixed-0", "mixed-0"]
    assert outs[0]["id"] != outs[1]["id"]  # the ranks drew different further questions


# --- skipping before sampling (GRESO) -------------------------------------------------------------------------


class _Trainer:
    """What the rollout function reads of a trainer: the step, the process, and where metrics go."""

    def __init__(self):
        from types import SimpleNamespace

        self.state = SimpleNamespace(global_step=0)
        self.accelerator = SimpleNamespace(process_index=0)
        self.metrics: dict[str, list[float]] = {}

    def _log_metric(self, name, value):
        self.metrics.setdefault(name, []).append(value)


class SkippingRollouts(ScriptedRollouts):
    def _engine(self, trainer):
        return None

    def _generate(self, engine, prompts, seed):
        self.sampled = getattr(self, "sampled", []) + [prompts[:: self.num_generations]]
        return super()._generate(engine, prompts, seed)


def _skipping(skip_after=2, probability=1.0, dynamic=False, n_tie=4, n_mixed=8):
    base = _scripted(n_tie=n_tie, n_mixed=n_mixed, max_resample=2)
    return SkippingRollouts(**{**base.__dict__, "dynamic": dynamic, "skip_after": skip_after,
                               "skip_probability": probability})  # fmt: skip


def _steps(rollouts, steps, start=0, batch=4, G=2):
    """TRL's sampler as a plain cycle over the questions: ``batch`` of them per step, each G times in a row."""
    trainer = _Trainer()
    names = list(rollouts.rows)
    for step in range(start, start + steps):
        trainer.state.global_step = step
        drawn = [names[(step * batch + i) % len(names)] for i in range(batch)]
        rollouts([p for p in drawn for _ in range(G)], trainer)
    return trainer


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_question_whose_groups_always_tie_is_sampled_less(dynamic):
    """tie-* questions always tie. Without skipping the cycle samples each of the 12 questions alike; with
    skip_zero_variance {after: 2, probability: 0.5} a tie-* question is sampled less once its last two groups
    tied, the skipped ones' rollouts are counted, and another question takes each skipped one's place."""
    plain = _skipping(skip_after=0, dynamic=dynamic)
    _steps(plain, 24)
    skipping = _skipping(skip_after=2, probability=0.5, dynamic=dynamic)
    trainer = _steps(skipping, 24)

    def tie_share(r):
        drawn = [p for step in r.sampled for p in step]
        return sum(p.startswith("tie") for p in drawn) / len(drawn)

    assert tie_share(skipping) < 0.8 * tie_share(plain)
    skipped = trainer.metrics["skip_zero_variance/questions_skipped"]
    assert sum(skipped) > 0 and trainer.metrics["skip_zero_variance/rollouts_saved"] == [2 * s for s in skipped]
    assert all(len(step) == 4 or dynamic for step in skipping.sampled)  # a full batch, the skipped ones replaced
    assert trainer.metrics["skip_zero_variance/questions_tied_out"][-1] == 4  # every tie-* question tied out
    assert all(seen == [True, True] for p, seen in skipping.history.items() if p.startswith("tie"))
    if not dynamic:  # TRL's rewards get the replacing questions' own prompt and columns
        out = skipping([p for p in ["tie-0", "tie-1", "mixed-0", "mixed-1"] for _ in range(2)], trainer)
        assert out["prompt"] == [i for i in out["id"]] and len(out["completion_ids"]) == 8


def test_the_skip_state_resumes_exactly_from_a_checkpoint():
    """A run stopped after 5 steps and resumed from its saved state (through JSON, as the checkpoint holds it)
    samples what an uninterrupted run samples; resumed without the state it would not."""
    whole = _skipping(probability=0.5)
    _steps(whole, 12)
    first = _skipping(probability=0.5)
    _steps(first, 5)
    state = json.loads(json.dumps(first.state_dict()))
    assert set(state["history"]) <= set(first.rows) and state["skip_after"] == 2
    resumed = _skipping(probability=0.5)
    resumed.load_state_dict(state)
    _steps(resumed, 7, start=5)
    assert first.sampled + resumed.sampled == whole.sampled
    forgot = _skipping(probability=0.5)
    _steps(forgot, 7, start=5)
    assert first.sampled + forgot.sampled != whole.sampled


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"after": 0, "probability": 0.5}, r"'after' \(groups that all tied before a skip\) must be a whole number"),
        ({"after": 1.5, "probability": 0.5}, "'after'.* must be a whole number >= 1, got 1.5"),
        ({"after": 2, "probability": 0}, "'probability' must be above 0 and at most 1, got 0"),
        ({"after": 2, "probability": 1.5}, "'probability' must be above 0 and at most 1, got 1.5"),
        ({"after": 2}, r"takes \{after: N, probability: p\}: missing probability"),
        ({"after": 2, "probability": 0.5, "every": 3}, "unknown key 'every'"),
        ("often", "must be a mapping"),
    ],
)
def test_bad_skip_settings_are_one_line(value, message, capsys):
    from medrlvr.cli import main
    from medrlvr.config import build
    from medrlvr.errors import UserError

    with pytest.raises(UserError, match=message):
        build(TrainConfig, {"skip_zero_variance": value}, "train", error=UserError)
    assert main(["train", "train_file=x.jsonl", f"skip_zero_variance={json.dumps(value)}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "skip_zero_variance" in err and "Traceback" not in err


def test_skipping_needs_our_rollouts_and_a_real_reward():
    from medrlvr.errors import UserError

    with pytest.raises(UserError, match="skip_zero_variance' needs rollout_engine medrlvr"):
        TrainConfig(skip_zero_variance={"after": 2, "probability": 0.5}, rollout_engine="trl")
    with pytest.raises(UserError, match="skip_zero_variance' with control random_reward"):
        TrainConfig(skip_zero_variance={"after": 2, "probability": 0.5}, control="random_reward")
    config = TrainConfig(skip_zero_variance={"after": 2.0, "probability": 1})
    assert config.skip_zero_variance == {"after": 2, "probability": 1.0}


def test_skipping_in_training_logs_and_saves_its_state(tmp_path, tiny_checkpoint, length_rewards):
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in _records()])
    config = _config(tmp_path, model=str(tiny_checkpoint), skip_zero_variance={"after": 1, "probability": 1.0},
                     save_steps=1)  # fmt: skip
    out = train(config)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "skip_zero_variance/rollouts_generated" in m]
    assert len(steps) == 2 and all(m["skip_zero_variance/rollouts_generated"] == 4 for m in steps)
    state = json.loads((out / "checkpoint-2" / "rollout_state-rank0.json").read_text())
    assert state["skip_after"] == 1 and set(state["history"]) <= {r.id for r in _records()} and state["history"]
    resumed = build_trainer(config, _records())  # what medrlvr.train.run does before resuming from a checkpoint
    resumed.restore(out / "checkpoint-2")
    assert resumed.rollout_func.state_dict() == state
