"""The training questions and the trainer's dataset: a train.jsonl (test-split records refused), one row per
question with the columns the rewards read and the prompt (GRPO, PPO) or prompt and target (SFT); and, with
``shuffle_options``, each rollout group's question in a seeded permutation of its options (:class:`OptionShuffle`)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..options import permute, shuffled
from ..prompts import render
from ..records import Record
from .config import RL_METHODS, TrainConfig, TrainError


def training_records(train_file: str | Path) -> list[Any]:
    """The training questions (a train.jsonl or the selection folder holding one); test-split records are refused:
    test splits are for evaluation only."""
    from ..data import load_records_file

    if not str(train_file):
        raise TrainError("train_file is not set: give train_file=RUN/select/STRATEGY/train.jsonl")
    path = Path(train_file)
    return load_records_file(path / "train.jsonl" if path.is_dir() else path, pool=True)


def check_size(records: Sequence[Any], config: TrainConfig) -> None:
    need = config.batch_size * config.gradient_accumulation_steps
    if len(records) < need:
        raise TrainError(
            f"{config.train_file} has {len(records)} questions; one optimizer step needs batch_size x "
            f"gradient_accumulation_steps = {config.batch_size} x {config.gradient_accumulation_steps} = {need}"
        )


def _uses_chat(tokenizer, config: TrainConfig) -> bool:
    """``config.chat``, or by default whether the tokenizer has a chat template."""
    return config.chat if config.chat is not None else bool(getattr(tokenizer, "chat_template", None))


def prompt_text(record, tokenizer, config: TrainConfig) -> str:
    """The GRPO prompt as the text the model continues: the chat template applied (when the model has one), the
    prefill appended. Both rollout engines (TRL's generate, medrlvr's) tokenize this same text."""
    from ..modeling import render_prompt

    return render_prompt(tokenizer, render(record, config.prompt, _uses_chat(tokenizer, config), config.prefill))


def build_dataset(records, tokenizer, config: TrainConfig):
    """The trainer's dataset: a row per question with the columns rewards read (id, answer, options as JSON,
    subject) and the prompt (GRPO) or the prompt and target (SFT: the R1-Zero format with the explanation)."""
    from datasets import Dataset

    chat = _uses_chat(tokenizer, config)
    rows = []
    for r in records:
        row = {
            "id": r.id,
            "answer": r.answer,
            "options": json.dumps(dict(r.options), ensure_ascii=False),
            "subject": r.subject,
        }
        if config.method in RL_METHODS:
            row["prompt"] = prompt_text(r, tokenizer, config)
            if config.shuffle_options:  # what OptionShuffle re-renders the question from
                row["question"] = r.question
        else:  # SFT target: the R1-Zero format with the data's explanation (if any) as the reasoning
            reasoning = r.explanation or f"The answer is {r.answer}."
            target = f"<think>{reasoning}</think>\n<answer>{r.answer}</answer>"
            if chat:
                row["messages"] = [*render(r, config.prompt, chat), {"role": "assistant", "content": target}]
            else:
                row["prompt"], row["completion"] = render(r, config.prompt, chat), " " + target
        rows.append(row)
    return Dataset.from_list(rows)


class OptionShuffle:
    """``shuffle_options``: a rollout group's question with its options in a seeded permutation.

    Called with a dataset row's prompt and the optimizer step, it returns the prompt of the same question with its
    options reordered (:func:`medrlvr.options.shuffled`: options that speak about the others keep their places) and
    the reward columns of that order: ``answer`` (the gold's new letter), ``options`` (the new lettering, JSON) and
    ``permutation`` (the original letters in their new places, e.g. "CABD"; None for a question without options).
    The order is drawn from ``random.Random(f"{seed}:{step}:{id}")``: a group's rollouts share it, each step draws
    anew, and a resumed run draws what an uninterrupted one would."""

    def __init__(self, rows, tokenizer, config: TrainConfig):
        self.tokenizer, self.config, self.seed = tokenizer, config, config.seed
        self.records = {}
        for row in rows:
            options = json.loads(row["options"])
            if options:
                self.records[row["prompt"]] = Record(id=row["id"], question=row["question"], options=options,
                                                     answer=row["answer"], subject=row.get("subject") or "")  # fmt: skip

    def __call__(self, prompt: str, step: int) -> tuple[str, dict[str, Any]]:
        record = self.records.get(prompt)
        if record is None:
            return prompt, {"permutation": None}
        order = shuffled(record, random.Random(f"{self.seed}:{step}:{record.id}"))
        moved = permute(record, order)
        columns = {"answer": moved.answer, "options": json.dumps(dict(moved.options), ensure_ascii=False),
                   "permutation": "".join(order)}  # fmt: skip
        return prompt_text(moved, self.tokenizer, self.config), columns
