"""The difficulty filter of Open-Medical-R1 (section 2.2): a filter model answers each candidate question with
the Fig. 1 prompt, and a question is *easy* if it was answered correctly in the prescribed format (the final
answer in ``\\boxed{}``), else *hard*.

With ``k`` samples per question: ``pass_rate`` is the share of samples answered correctly in the boxed format,
and a question is easy iff ``pass_rate >= easy_min_pass_rate`` (default 1.0: every sample right; with ``k=1``
this is exactly the paper's rule). responses.jsonl keeps each question's k answers (text, extracted letters,
right or not); labels.jsonl gives per question ``id``, ``label``, ``pass_rate``, ``samples`` and ``correct``: what
selection rules on pass rates read. The engine prefills a question's prompt once for its k samples
(:meth:`medrlvr.engines.hf.TransformersEngine.generate_ids`); ``medrlvr bench filter`` times k against 1.

The filter can be the policy itself (a recipe's ``model: policy``: the self-filter, :mod:`medrlvr.study.recipe`).

Questions are processed in fixed chunks, each with its own seed (``seed + chunk index``), and a chunk is written
to the store whole. A run killed at any moment loses at most the chunk in flight; rerunning the same command
skips the chunks on disk and recomputes the missing ones exactly as an uninterrupted run would have.

A question whose prompt does not fit the filter model's context (with ``max_new_tokens`` to answer in) is not
sent to the model: it is labelled ``too_long`` (neither easy nor hard, so no selection takes it) and counted in
stats.json.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import check_ranges, setting
from .engines import EngineSettings, Sampling, get_engine, takes_chat
from .engines.context import ContextGuard
from .errors import UserError
from .extract import extract_choice
from .prompts import render
from .records import Record
from .store import JsonlStore, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)


@dataclass
class FilterConfig(EngineSettings):
    k: int = setting(1, ge=1, help="samples per question (the paper: 1)")
    temperature: float = setting(0.0, ge=0, help="0 = greedy, the natural choice for one sample; use > 0 with k > 1")
    top_p: float = setting(1.0, gt=0, le=1, help="nucleus sampling: the probability mass sampled from")
    max_new_tokens: int = setting(256, ge=1, help="tokens generated per answer at most")
    easy_min_pass_rate: float = setting(
        1.0, gt=0, le=1, help="easy iff this share of the k samples is right in the boxed format"
    )
    # True: a sample counts as right only with its answer inside \boxed{} (the paper's "right format"); False: any
    # answer pattern counts (for models too small to follow the format: see recipes/demo-cpu.yaml)
    strict: bool = setting(
        True, help="right only with the answer inside \\boxed{} (the paper); off: any answer pattern"
    )
    chat: bool | None = setting(None, help="use the chat template (default: if the model has one, else plain text)")
    chunk_size: int = setting(64, ge=1, help="questions per chunk: the unit of work written at once and of resumption")
    seed: int = setting(0, help="sampling seed")

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.k > 1 and self.temperature == 0:
            raise UserError("k > 1 with temperature 0 gives k identical answers: set temperature > 0")


def judge(
    record: Record, texts: Sequence[str], easy_min_pass_rate: float = 1.0, strict_format: bool = True
) -> dict[str, Any]:
    """Score one question's responses: boxed (strict) and any-pattern (flexible) answers, format, pass rate, label.
    ``correct`` (and so the pass rate) reads the boxed answer, or any pattern with ``strict_format=False``."""
    options = dict(record.options)
    strict = [extract_choice(t, options, ("boxed",)).answer for t in texts]
    flexible = [extract_choice(t, options).answer for t in texts]
    correct = [a == record.answer for a in (strict if strict_format else flexible)]
    pass_rate = sum(correct) / len(texts)
    return {
        "answers": strict,
        "answers_flexible": flexible,
        "format_ok": [a is not None for a in strict],
        "correct": correct,
        "pass_rate": pass_rate,
        "label": "easy" if pass_rate >= easy_min_pass_rate else "hard",
    }


def filter_pool(
    pool: Sequence[Record], config: FilterConfig, out_dir: str | Path, engine: Any = None, progress: bool = True
) -> Path:
    """The filter stage, as ``medrlvr filter`` and a study run it: label every question of ``pool`` with
    ``config.model``; returns ``out_dir`` holding responses.jsonl (the store, raw responses kept for audit),
    labels.jsonl and stats.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not pool:
        raise UserError("the pool is empty: there is nothing to filter (check --pool and --limit)")
    _check_settings(out, pool, config)
    store = JsonlStore(out / "responses.jsonl")
    done = {row["id"]: row for row in store}
    chunks = [list(pool[i : i + config.chunk_size]) for i in range(0, len(pool), config.chunk_size)]
    todo = [(i, chunk) for i, chunk in enumerate(chunks) if any(r.id not in done for r in chunk)]
    if todo and engine is None:
        engine = get_engine(config.engine, config.model, **config.engine_options)
    chat = config.chat if config.chat is not None else takes_chat(engine)
    guard = ContextGuard(engine) if todo else None

    from tqdm import tqdm

    bar = tqdm(
        total=len(pool),
        initial=len(pool) - sum(len(c) for _, c in todo),
        unit="q",
        desc=f"filter {config.model}",
        disable=not progress,
    )
    started, processed = time.perf_counter(), 0
    for index, chunk in todo:
        rows = _label_chunk(chunk, index, guard, config, chat)
        store.append(rows)
        done.update((row["id"], row) for row in rows)
        processed += len(chunk)
        bar.update(len(chunk))
    bar.close()
    elapsed = time.perf_counter() - started
    labels = [_label_row(done[r.id]) for r in pool]
    write_jsonl(out / "labels.jsonl", labels)
    write_json(out / "stats.json", _stats([done[r.id] for r in pool], config, processed, elapsed))
    return out


def _label_row(row: dict[str, Any]) -> dict[str, Any]:
    """A question's row of labels.jsonl: its label and pass rate, and the counts behind the rate (``samples``
    answers, ``correct`` of them right), which rules on the k samples read (a group's reward variance
    ``correct * (samples - correct)``); the k answers themselves stay in responses.jsonl."""
    return {"id": row["id"], "label": row["label"], "pass_rate": row["pass_rate"], "samples": len(row["correct"]),
            "correct": sum(row["correct"])}  # fmt: skip


def _check_settings(out: Path, pool: Sequence[Record], config: FilterConfig) -> None:
    """Write config.json, refusing a folder that holds a filter run of other settings or another pool."""
    ids = [r.id for r in pool]
    if len(set(ids)) != len(ids):
        raise UserError("the pool has duplicate question ids")
    settings = {**asdict(config), "pool_size": len(pool), "pool_ids_head": ids[:5]}
    settings_path = out / "config.json"
    if settings_path.exists():
        previous = json.loads(settings_path.read_text())
        changed = [k for k in settings if k not in ("engine_options",) and previous.get(k) != settings[k]]
        if changed:
            raise UserError(
                f"{out} holds a filter run with other settings ({', '.join(changed)}); use another run directory"
            )
    write_json(settings_path, settings)


def _label_chunk(chunk: Sequence[Record], index: int, guard: ContextGuard, config: FilterConfig, chat: bool):
    """The rows of one chunk: ``k`` answers per question, sampled with the chunk's own seed, and their label."""
    prompts = [render(r, "filter", chat) for r in chunk]
    sampling = Sampling(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed + index,
    )
    outputs = guard.generate(prompts, n=config.k, sampling=sampling)
    rows = []
    for i, (record, completions) in enumerate(zip(chunk, outputs)):
        row = {"id": record.id, "chunk": index, "subject": record.subject, "gold": record.answer}
        if i in guard.too_long:  # not sent: nothing was answered, so no label either way
            row.update(responses=[], tokens=[], finish_reasons=[], answers=[], answers_flexible=[],
                       format_ok=[], correct=[], pass_rate=None, label="too_long",
                       prompt_tokens=guard.too_long[i])  # fmt: skip
            rows.append(row)
            continue
        texts = [c.text for c in completions]
        row.update(
            responses=texts,
            tokens=[c.tokens for c in completions],
            finish_reasons=[c.finish_reason for c in completions],
            **judge(record, texts, config.easy_min_pass_rate, config.strict),
        )
        rows.append(row)
    return rows


def _stats(rows: Sequence[dict], config: FilterConfig, processed: int, elapsed: float) -> dict[str, Any]:
    """stats.json: labels, the share of answers in the boxed format, accuracy, and this run's speed."""
    too_long = [row["id"] for row in rows if row["label"] == "too_long"]
    if too_long:
        log.warning(
            "filter %s: %d of %d questions do not fit the model's context with max_new_tokens=%d and were not "
            "labelled (first: %s)",
            config.model,
            len(too_long),
            len(rows),
            config.max_new_tokens,
            too_long[0],
        )
    return {
        "model": config.model,
        "questions": len(rows),
        "labels": dict(Counter(row["label"] for row in rows)),
        "too_long": len(too_long),
        "format_ok_rate": sum(sum(r["format_ok"]) for r in rows) / max(1, sum(len(r["format_ok"]) for r in rows)),
        "accuracy_strict": sum(sum(a == r["gold"] for a in r["answers"]) for r in rows)
        / max(1, sum(len(r["answers"]) for r in rows)),
        "accuracy_flexible": sum(sum(a == r["gold"] for a in r["answers_flexible"]) for r in rows)
        / max(1, sum(len(r["answers_flexible"]) for r in rows)),
        "mean_tokens": sum(sum(r["tokens"]) for r in rows) / max(1, sum(len(r["tokens"]) for r in rows)),
        "this_run": {
            "questions": processed,
            "seconds": round(elapsed, 2),
            "questions_per_second": round(processed / elapsed, 4) if processed and elapsed else None,
        },
    }


def load_labels(filter_dir: str | Path) -> dict[str, dict[str, Any]]:
    """id -> {"label", "pass_rate"} from a filter run's labels.jsonl."""
    path = Path(filter_dir) / "labels.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `medrlvr filter` first")
    return {row["id"]: row for row in read_jsonl(path, unique="id")}
