"""GRPO with LoRA on a tiny random model: what must change changes, what must not does not, rewards are logged,
and an interrupted run resumes from its checkpoint."""

import json

import pytest
from safetensors.torch import load_file

from medrlvr.records import Record
from medrlvr.store import write_jsonl
from medrlvr.train import TrainConfig, load_config, train
from medrlvr.train.grpo import REFLECTION, self_reflection_reward


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
    # each question's rewards per step (what a pilot run's selection reads): the batch's questions, their means
    # average to the step's logged reward
    rows = [json.loads(line) for line in (out / "question_rewards.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in rows}) == [1, 2]
    for step in (1, 2):
        mine = [r for r in rows if r["step"] == step]
        assert len(mine) == 2 and {r["id"] for r in mine} <= {"t0", "t1", "t2", "t3"}
        assert all(r["rollouts"] == 2 and 0 <= r["accuracy"] <= 1 for r in mine)
        logged_reward = next(m["reward"] for m in metrics if m["step"] == step and "reward" in m)
        assert sum(r["reward"] for r in mine) / 2 == pytest.approx(logged_reward, abs=1e-4)


def test_question_rewards_group_rollouts_by_question():
    import torch

    from medrlvr.train.grpo.loss import question_rewards

    # two processes of 4 rows each, gathered; this is process 1: rows 4-7, questions b (x2) and c (x2)
    per_func = torch.tensor([[9.0, 9.0]] * 4 + [[1.0, 0.5], [0.0, 0.5], [1.0, float("nan")], [1.0, 0.0]])
    scores = torch.tensor([2.0, 0.0, 1.0, 3.0])
    rows = question_rewards(scores, per_func, ["accuracy_reward", "format_reward"], 1, ["b", "b", "c", "c"])
    assert rows == [{"id": "b", "rollouts": 2, "reward": 1.0, "accuracy": 0.5},
                    {"id": "c", "rollouts": 2, "reward": 2.0, "accuracy": 1.0}]  # fmt: skip
    assert question_rewards(scores, per_func, ["format_reward", "x"], 1, ["b", "b", "c", "c"])[0]["accuracy"] is None


class Interrupt(Exception):
    pass


def _interrupt_after_saving(monkeypatch, step):
    """Make training stop (as a kill would) right after the checkpoint of ``step`` is written."""
    import importlib

    from transformers import TrainerCallback

    train_module = importlib.import_module("medrlvr.train.callbacks")
    original = train_module.callbacks

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Interrupt

    monkeypatch.setattr(train_module, "callbacks", lambda out: original(out) + [Stop()])


def _adapter(out):
    return load_file(out / "adapter" / "adapter_model.safetensors")


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(
    tiny_checkpoint, train_file, tmp_path, monkeypatch
):
    import torch

    whole = train(_config(tiny_checkpoint, train_file, tmp_path / "whole", max_steps=2))
    with monkeypatch.context() as m:
        _interrupt_after_saving(m, 1)
        with pytest.raises(Interrupt):
            train(_config(tiny_checkpoint, train_file, tmp_path / "cut", max_steps=2))
    assert (tmp_path / "cut" / "checkpoint-1").exists() and not (tmp_path / "cut" / "adapter").exists()
    # what a kill during step 2 leaves: its rows in the step logs, the last one cut mid-line
    for name in ("completions.jsonl", "question_rewards.jsonl", "metrics.jsonl"):
        with open(tmp_path / "cut" / name, "a") as f:
            f.write(json.dumps({"step": 2, "id": "from-the-killed-run"}) + '\n{"step": 2, "id": "cu')
    resumed = train(_config(tiny_checkpoint, train_file, tmp_path / "cut", max_steps=2))
    state = json.loads((resumed / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    a, b = _adapter(whole), _adapter(resumed)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    for name, key in (("completions.jsonl", ("step",)), ("question_rewards.jsonl", ("step", "id")),
                      ("metrics.jsonl", ("step",))):  # fmt: skip
        rows = [[tuple(json.loads(x).get(k) for k in key) for x in open(d / name)] for d in (whole, resumed)]
        assert rows[0] == rows[1], name  # the killed run's rows of step 2 are gone, the resumed run's are there


def test_a_checkpoint_cut_while_saving_is_never_resumed(tiny_checkpoint, train_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after_saving(m, 1)
        with pytest.raises(Interrupt):
            train(_config(tiny_checkpoint, train_file, out, max_steps=2))
    # a kill while checkpoint-2 was being written: the folder holds only what PEFT writes first
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "README.md").write_text("partial")
    train(_config(tiny_checkpoint, train_file, out, max_steps=2))
    assert (out / "checkpoint-2.incomplete" / "README.md").exists()  # set aside, not deleted, not resumed
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (out / "checkpoint-2" / "medrlvr-complete.json").exists()


def test_a_finished_run_is_not_trained_again(tiny_checkpoint, train_file, tmp_path):
    from medrlvr.train import TrainError

    out = train(_config(tiny_checkpoint, train_file, tmp_path / "done", max_steps=1))
    metrics = (out / "metrics.jsonl").read_text()
    adapter = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    train(_config(tiny_checkpoint, train_file, tmp_path / "done", max_steps=1, save_steps=5))  # same training
    assert (out / "metrics.jsonl").read_text() == metrics
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == adapter
    with pytest.raises(TrainError, match="finished training with other settings .*max_steps"):
        train(_config(tiny_checkpoint, train_file, tmp_path / "done", max_steps=2))


def test_a_training_set_smaller_than_one_step_is_an_error(tiny_checkpoint, train_file, tmp_path):
    from medrlvr.train import TrainError

    with pytest.raises(TrainError, match=r"has 4 questions; one optimizer step needs .* 2 x 4 = 8"):
        train(_config(tiny_checkpoint, train_file, tmp_path / "small", gradient_accumulation_steps=4))
    assert not (tmp_path / "small").exists()


def test_test_split_records_are_refused_as_training_data(tiny_checkpoint, tmp_path):
    from medrlvr.data import DataError

    rows = [
        Record(id=f"x{i}", question="Q?", options={"A": "a", "B": "b"}, answer="A", split="test").to_dict()
        for i in range(4)
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match="test"):
        train(_config(tiny_checkpoint, tmp_path / "train.jsonl", tmp_path / "out"))


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


def test_the_completion_log_says_which_step_and_question_each_completion_came_from(tmp_path):
    from types import SimpleNamespace

    from medrlvr.train.grpo import CompletionSampler

    sampler = CompletionSampler(tmp_path / "completions.jsonl", per_step=3)
    columns = dict(id=["q1", "q1", "q2", "q2"], answer=["A", "A", "B", "B"], options=['{"A": "one", "B": "two"}'] * 4)
    prompts = ["P1", "P1", "P2", "P2"]
    for step in (0, 1):
        scores = sampler(["c1", "c2", "c3", "c4"], prompts=prompts, trainer_state=SimpleNamespace(global_step=step),
                         **columns)  # fmt: skip
        assert scores == [0.0] * 4  # a zero-weight reward: it only writes
    rows = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert [(r["step"], r["call"], r["id"], r["gold"], r["completion"]) for r in rows] == [
        (1, 1, "q1", "A", "c1"), (1, 1, "q1", "A", "c2"), (1, 1, "q2", "B", "c3"),
        (2, 2, "q1", "A", "c1"), (2, 2, "q1", "A", "c2"), (2, 2, "q2", "B", "c3"),
    ]  # fmt: skip
    assert rows[0]["options"] == {"A": "one", "B": "two"}
    assert [r.get("prompt") for r in rows] == ["P1", None, "P2", None, None, None]  # each id's prompt once


def test_resuming_drops_the_step_logs_rows_after_the_checkpoint(tmp_path):
    from medrlvr.train.checkpoints import trim_step_logs

    rows = [{"step": 1, "id": "a"}, {"step": 2, "id": "a"}, {"step": 3, "id": "a"}]
    (tmp_path / "question_rewards.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3')
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    assert trim_step_logs(tmp_path, 2) == {"metrics.jsonl": 0, "question_rewards.jsonl": 2}
    kept = [json.loads(x) for x in (tmp_path / "question_rewards.jsonl").read_text().splitlines()]
    assert kept == rows[:2] and (tmp_path / "metrics.jsonl").read_text() == json.dumps({"step": 1}) + "\n"
    assert not list(tmp_path.glob("*.partial"))
