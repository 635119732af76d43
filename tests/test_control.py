"""The random-reward control pays coin flips with the real rewards' mean, independent of the completion."""

from types import SimpleNamespace

from medrlvr.train.grpo.control import RandomRewardControl


def _right(completions, answer=None, **kw):
    return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]


def test_coin_flips_keep_the_mean_and_ignore_the_completion():
    control = RandomRewardControl([_right], [2.0], seed=3)
    completions = ["A"] * 300 + ["B"] * 700
    answers = ["A"] * 1000  # real mean reward: 0.3 * 2.0 = 0.6
    paid = control(completions, answer=answers, trainer_state=SimpleNamespace(global_step=5))
    assert set(paid) <= {0.0, 2.0}
    assert abs(sum(paid) / len(paid) - 0.6) < 0.1
    right = [p for p, c in zip(paid, completions) if c == "A"]
    wrong = [p for p, c in zip(paid, completions) if c == "B"]
    # the right answers are paid no more often than the wrong ones (the real reward would pay only them)
    assert abs(sum(right) / len(right) - sum(wrong) / len(wrong)) < 0.25


def test_same_step_same_coins_and_a_none_reward_counts_zero():
    def maybe(completions, **kw):
        return [None] * len(completions)

    a = RandomRewardControl([_right, maybe], [1.0, 1.0], seed=1)
    b = RandomRewardControl([_right, maybe], [1.0, 1.0], seed=1)
    state = SimpleNamespace(global_step=7)
    args = (["A", "B", "A", "A"],)
    assert a(*args, answer=["A"] * 4, trainer_state=state) == b(*args, answer=["A"] * 4, trainer_state=state)
    assert a.real_totals(["A", "B"], answer=["A", "A"]) == [1.0, 0.0]
    assert a.top == 2.0


def test_a_control_arm_trains_on_coin_flips_and_logs_the_real_rewards(tiny_checkpoint, tmp_path):
    """The control's coin flips are what TRL trains on (weight 1); the real rewards are still logged (weight 0)."""
    import json

    from medrlvr.records import Record
    from medrlvr.store import write_jsonl
    from medrlvr.train import TrainConfig, run

    records = [Record(id=f"t{i}", question=f"Which option is number {i}?", options={"A": "one", "B": "two"},
                      answer="AB"[i % 2], subject="toy") for i in range(4)]  # fmt: skip
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    config = TrainConfig(model=str(tiny_checkpoint), train_file=str(tmp_path / "train.jsonl"),
                         output_dir=str(tmp_path / "control"), batch_size=2, num_generations=2,
                         gradient_accumulation_steps=1, max_steps=2, max_completion_length=8, learning_rate=1e-2,
                         save_steps=10, lora_r=4, lora_alpha=8, control="random_reward",
                         rollout_engine="trl")  # fmt: skip
    out = run(config)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = {k for m in metrics for k in m}
    assert "rewards/random_reward_control/mean" in logged and "rewards/accuracy_reward/mean" in logged
