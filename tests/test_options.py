"""Option orders (medrlvr.options) and shuffled options in training: over many seeded permutations the gold's text
never changes, every reward of a remapped completion equals the reward of the original, anchored options never move;
a tiny random model trains with ``shuffle_options`` and its completion log records each permutation."""

import json
import random

import pytest

from medrlvr.options import (
    anchored,
    movable,
    new_letter,
    old_letter,
    permute,
    pinned,
    rotations,
    shuffled,
    why_fixed,
)
from medrlvr.records import Record
from medrlvr.rewards import REWARDS
from medrlvr.store import write_jsonl

QUESTIONS = [
    Record(
        id="plain",
        question="Which drug?",
        options={"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Insulin"},
        answer="C",
    ),  # fmt: skip
    Record(
        id="last",
        question="Which?",
        options={"A": "Iron", "B": "Zinc", "C": "Copper", "D": "All of the above"},
        answer="D",
    ),  # fmt: skip
    Record(
        id="both",
        question="Which?",
        options={"A": "Fever", "B": "Rash", "C": "Both A and B", "D": "Cough", "E": "None of these"},
        answer="A",
    ),  # fmt: skip
    Record(
        id="zh", question="下列哪项正确?", options={"A": "甲", "B": "乙", "C": "丙", "D": "以上都不对"}, answer="B"
    ),
    Record(id="ten", question="Pick one", options={k: f"option {k}" for k in "ABCDEFGHIJ"}, answer="G"),
    Record(id="two", question="Yes?", options={"A": "yes", "B": "no"}, answer="B"),
]


@pytest.mark.parametrize("text", ["All of the above", "none of these.", "None of the above", "Both of these",
                                  "Neither A nor B", "both (a) and (c).", "All of the options given are correct",
                                  "Can be any of the above", "以上都是", "以上都不对", "其他选项均可", "都不是", "A和B",
                                  "A，B和C均对"])  # fmt: skip
def test_options_that_speak_about_the_others_are_anchored(text):
    letters = "ABCDE"
    from medrlvr.options import letter_references

    assert anchored(text) or letter_references(text, letters)


@pytest.mark.parametrize("text", ["Aspirin", "EEG", "Age", "GABA", "Both kidneys", "All patients recover",
                                  "以上腹痛", "大都", "None of the patients"])  # fmt: skip
def test_content_options_are_not_anchored(text):
    from medrlvr.options import letter_references

    assert not anchored(text) and not letter_references(text, "ABCD")


def test_letters_named_by_an_option_are_pinned_but_statement_letters_are_not():
    assert pinned({"A": "Fever", "B": "Rash", "C": "Both A and B", "D": "Cough"}) == {"A", "B", "C"}
    assert pinned({"A": "ab", "B": "bc", "C": "abc", "D": "abcd"}) == set()  # the stem's statements a, b, c, d
    assert pinned({"A": "DCBA", "B": "ABCD", "C": "BDCA", "D": "ACDB"}) == set()  # an order of statements


def _completions(record: Record) -> list[str]:
    """Completions that name each option by letter, by letter and text, and by text alone, plus unclean ones."""
    out = []
    for letter, text in record.options.items():
        out += [f"<think>x</think><answer>{letter}</answer>", f"<think>x</think><answer>{letter}. {text}</answer>",
                f"<think>x</think><answer>{text}</answer>", f"<think>x</think><answer>The answer is {letter}</answer>"]  # fmt: skip
    return out + ["<think>x</think><answer>A or B</answer>", "no tags at all", ""]


def _remap(completion: str, record: Record, order) -> str:
    """The completion as it would read under ``order``: every option letter in the answer moved with its option."""
    for letter in record.options:
        for form in (f">{letter}<", f">{letter}. ", f"is {letter}<"):
            if form in completion:
                return completion.replace(form, form.replace(letter, new_letter(letter, order)))
    return completion


def test_over_many_seeded_permutations_gold_text_rewards_and_anchors_hold():
    for record in QUESTIONS:
        keep = pinned(record.options)
        for seed in range(60):
            order = shuffled(record, random.Random(seed))
            moved = permute(record, order)
            assert moved.answer_text == record.answer_text  # the gold's text never changes
            assert moved.id == record.id and moved.question == record.question
            assert sorted(moved.options.values()) == sorted(record.options.values())
            for letter in keep:  # anchored options never move
                assert moved.options[letter] == record.options[letter]
            for letter in record.options:
                assert old_letter(new_letter(letter, order), order) == letter
            columns = {"answer": [record.answer], "options": [json.dumps(dict(record.options))]}
            moved_columns = {"answer": [moved.answer], "options": [json.dumps(dict(moved.options))]}
            for completion in _completions(record):
                remapped = _remap(completion, record, order)
                for name, reward in REWARDS.items():
                    assert reward([remapped], **moved_columns) == reward([completion], **columns), (name, completion)


def test_shuffles_reach_every_order_of_the_free_options():
    record = QUESTIONS[1]  # D anchored: 3! orders of A, B, C
    seen = {shuffled(record, random.Random(seed)) for seed in range(200)}
    assert len(seen) == 6 and all(order[3] == "D" for order in seen)


def test_rotations_put_the_gold_once_in_every_free_place():
    for record in QUESTIONS[:4]:
        orders = rotations(record)
        free = movable(record)
        assert orders[0] == tuple(record.options) and len(orders) == len(free)
        if record.answer in free:
            assert sorted(new_letter(record.answer, o) for o in orders) == sorted(free)
    ten = rotations(QUESTIONS[4], limit=4, seed=1)
    assert len(ten) == 4 and ten[0] == tuple("ABCDEFGHIJ") and len(set(ten)) == 4
    assert ten == rotations(QUESTIONS[4], limit=4, seed=1)  # seeded
    assert rotations(QUESTIONS[5]) == [("A", "B"), ("B", "A")]


def test_a_question_whose_options_cannot_move_says_why():
    stuck = Record(id="s", question="?", options={"A": "Iron", "B": "All of the above", "C": "None of the above"},
                   answer="A")  # fmt: skip
    assert why_fixed(stuck) == "1 of 3 options free to move (2 anchored)"
    assert rotations(stuck) == [("A", "B", "C")]
    assert why_fixed(Record(id="n", question="2+2?", options={}, answer="4")) == "no options"
    assert why_fixed(QUESTIONS[0]) is None
    with pytest.raises(ValueError, match="not a permutation"):
        permute(QUESTIONS[0], ("A", "B", "C"))


# --- training with shuffled options ----------------------------------------------------------------------------


def _length_reward(completions, **kwargs):
    from medrlvr.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


def test_option_shuffle_relabels_the_prompt_and_remaps_the_reward_columns():
    from conftest import make_tiny_tokenizer

    from medrlvr.train import TrainConfig
    from medrlvr.train.dataset import OptionShuffle, build_dataset

    config = TrainConfig(shuffle_options=True, chat=False)
    tokenizer = make_tiny_tokenizer()
    rows = list(build_dataset(QUESTIONS[:2], tokenizer, config))
    shuffle = OptionShuffle(rows, tokenizer, config)
    changed = 0
    for step in range(8):
        for row in rows:
            prompt, columns = shuffle(row["prompt"], step)
            assert shuffle(row["prompt"], step) == (prompt, columns)  # seeded by (seed, step, id)
            options = json.loads(columns["options"])
            order = columns["permutation"]
            original = json.loads(row["options"])
            assert options[columns["answer"]] == original[row["answer"]]
            assert all(options[new] == original[old] for new, old in zip("ABCD", order))
            assert all(f"{new}. {text}" in prompt for new, text in options.items())  # relabelled in the prompt
            changed += prompt != row["prompt"]
    assert changed > 8


def test_training_with_shuffled_options_runs_and_logs_the_permutations(tiny_checkpoint, tmp_path, monkeypatch):
    from medrlvr import rewards
    from medrlvr.train import TrainConfig, train

    monkeypatch.setitem(rewards.REWARDS, "length", _length_reward)
    records = [Record(id=f"t{i}", question=f"Which option is number {i}?",
                      options={"A": "one", "B": "two", "C": "three", "D": "None of these"}, answer="ABC"[i % 3],
                      subject="toy") for i in range(4)]  # fmt: skip
    write_jsonl(tmp_path / "train.jsonl", [r.to_dict() for r in records])
    config = TrainConfig(model=str(tiny_checkpoint), train_file=str(tmp_path / "train.jsonl"),
                         output_dir=str(tmp_path / "out"), batch_size=2, num_generations=2,
                         gradient_accumulation_steps=1, max_steps=2, max_completion_length=6, learning_rate=1e-2,
                         save_steps=10, lora_r=4, lora_alpha=8, shuffle_options=True,
                         rewards={"accuracy": 1.0, "length": 1.0})  # fmt: skip
    out = train(config)
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert rows and all(len(r["permutation"]) == 4 and r["permutation"][3] == "D" for r in rows)
    by_id = {r.id: r for r in records}
    for r in rows:  # the logged gold and options are the permuted ones, and agree with the original question
        original = by_id[r["id"]]
        assert r["options"][r["gold"]] == original.answer_text
        assert [original.options[old] for old in r["permutation"]] == list(r["options"].values())
    prompts = [r for r in rows if "prompt" in r]
    assert prompts and all(f"A. {r['options']['A']}" in r["prompt"] for r in prompts)


def test_shuffled_options_need_rl_and_our_rollouts():
    from medrlvr.errors import UserError
    from medrlvr.train import TrainConfig

    with pytest.raises(UserError, match="shuffle_options permutes medrlvr's rollouts"):
        TrainConfig(shuffle_options=True, rollout_engine="trl")
    with pytest.raises(UserError, match="needs method grpo or ppo"):
        TrainConfig(shuffle_options=True, method="sft")


def test_shuffled_options_and_skipping_are_refused_together():
    from medrlvr.errors import UserError
    from medrlvr.train import TrainConfig

    with pytest.raises(UserError, match="skip_zero_variance' and shuffle_options cannot be combined"):
        TrainConfig(shuffle_options=True, skip_zero_variance={"after": 1, "probability": 0.5})
