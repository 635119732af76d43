"""Evaluation: a model on benchmarks, per question, resumable; accuracy with 95% intervals and paired tests.

Two modes, as the field scores multiple choice:
- ``generate``: chain of thought with a prompt (``r1_zero``: the training prompt; ``filter``: the Fig. 1 prompt),
  then the shared extractor. *Strict* reads only the format the prompt asks for (answer tag, or ``\\boxed{}``);
  *flexible* reads every pattern. Both accuracies and the extraction-failure rate are reported side by side.
- ``loglik``: the log-likelihood of each option letter after the question (" A", " B", ...), as
  lm-evaluation-harness scores MMLU; the most likely letter is the answer.

Predictions are written per chunk to ``predictions.jsonl`` (fsync); a rerun skips what is done.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .data import SUBJECT2CATEGORY
from .engines import Sampling, get_engine, takes_chat
from .extract import extract_answer, extract_choice
from .prompts import chat_messages, plain_prompt, render_question
from .records import Record
from .store import JsonlStore, write_json

STRICT = {"r1_zero": ("answer_tag",), "filter": ("boxed",)}


@dataclass
class EvalConfig:
    model: str
    engine: str = "transformers"
    engine_options: dict[str, Any] = field(default_factory=dict)
    mode: str = "loglik"  # loglik | generate
    prompt: str = "r1_zero"  # generate mode: r1_zero | filter
    chat: bool | None = None
    max_new_tokens: int = 512
    num_fewshot: int = 0  # loglik: examples from the dev split
    limit: int | None = None  # seeded subsample of this many questions
    seed: int = 0
    chunk_size: int = 256  # questions per write to predictions.jsonl (and per engine call)

    def __post_init__(self) -> None:
        if self.mode not in ("loglik", "generate"):
            raise ValueError(f"mode must be loglik or generate, got {self.mode!r}")
        if self.prompt not in STRICT:
            raise ValueError(f"prompt must be one of {', '.join(STRICT)}, got {self.prompt!r}")


def eval_dir(run_dir: str | Path, model: str, benchmark: str) -> Path:
    """Where ``medrlvr eval`` writes one model's results on one benchmark: RUN/eval/MODEL/BENCHMARK (``:`` -> ``_``).
    The report reads the same layout."""
    return Path(run_dir) / "eval" / model / benchmark.replace(":", "_")


def subsample(records: Sequence[Record], limit: int | None, seed: int) -> list[Record]:
    """A seeded subsample, kept in the benchmark's order."""
    if not limit or limit >= len(records):
        return list(records)
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for i, r in enumerate(records) if i in keep]


def loglik_context(record: Record, fewshot: Sequence[Record] = ()) -> str:
    """lm-evaluation-harness's MMLU format: a header, examples with their answers, then the question and "Answer:"."""
    subject = (record.subject or record.source).replace("_", " ")
    header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    shots = "".join(f"{render_question(r)}\nAnswer: {r.answer}\n\n" for r in fewshot)
    return f"{header}{shots}{render_question(record)}\nAnswer:"


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test (two-sided binomial on the discordant pairs) for two models on the same questions."""
    if len(a) != len(b):
        raise ValueError("paired test needs the same questions for both models")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    k = min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"only_first_correct": only_a, "only_second_correct": only_b, "p_value": p}


def summarize(rows: Sequence[dict], benchmark: str) -> dict[str, Any]:
    """Accuracy (strict and flexible), failure rate, 95% CIs, by benchmark, category and subject."""

    def block(items: Sequence[dict]) -> dict[str, Any]:
        n = len(items)
        strict = sum(r["correct"] for r in items)
        out = {"n": n, "accuracy": strict / n if n else 0.0, "ci95": wilson(strict, n)}
        if items and "correct_flexible" in items[0]:
            flexible = sum(r["correct_flexible"] for r in items)
            out.update(
                accuracy_flexible=flexible / n,
                ci95_flexible=wilson(flexible, n),
                extraction_failure_rate=sum(r["answer"] is None for r in items) / n,
            )
        return out

    categories = SUBJECT2CATEGORY.get(benchmark.split(":")[0], {})
    by_subject, by_category = defaultdict(list), defaultdict(list)
    for r in rows:
        by_subject[r["subject"]].append(r)
        if r["subject"] in categories:
            by_category[categories[r["subject"]]].append(r)
    return {
        "benchmark": benchmark,
        **block(rows),
        "by_category": {c: block(v) for c, v in sorted(by_category.items())},
        "by_subject": {s: block(v) for s, v in sorted(by_subject.items())},
    }


def evaluate(
    records: Sequence[Record],
    config: EvalConfig,
    out_dir: str | Path,
    benchmark: str,
    fewshot_pool: Sequence[Record] = (),
    engine: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate one benchmark; writes predictions.jsonl and results.json in ``out_dir`` and returns the results."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = subsample(records, config.limit, config.seed)
    store = JsonlStore(out / "predictions.jsonl")
    done = {row["id"]: row for row in store}
    todo = [r for r in records if r.id not in done]
    if todo and engine is None:
        engine = get_engine(config.engine, config.model, **config.engine_options)
    chat = config.chat if config.chat is not None else takes_chat(engine)
    shots_by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in fewshot_pool:
        shots_by_subject[r.subject].append(r)
    bar = tqdm(
        total=len(records), initial=len(records) - len(todo), unit="q", desc=f"eval {benchmark}", disable=not progress
    )
    for start in range(0, len(todo), config.chunk_size):
        chunk = todo[start : start + config.chunk_size]
        rows = []
        if config.mode == "loglik":
            pairs, spans = [], []
            for r in chunk:
                context = loglik_context(r, shots_by_subject.get(r.subject, [])[: config.num_fewshot])
                spans.append((len(pairs), list(r.options)))
                pairs += [(context, f" {letter}") for letter in r.options]
            scores = engine.loglikelihood(pairs)
            for r, (offset, letters) in zip(chunk, spans):
                lls = [scores[offset + i][0] for i in range(len(letters))]
                answer = letters[max(range(len(letters)), key=lambda i: lls[i])]
                rows.append(
                    {
                        "id": r.id,
                        "subject": r.subject,
                        "gold": r.answer,
                        "answer": answer,
                        "correct": answer == r.answer,
                        "loglik": lls,
                    }
                )
        else:
            prompts = [chat_messages(r, config.prompt) if chat else plain_prompt(r, config.prompt) for r in chunk]
            sampling = Sampling(max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed)
            outputs = engine.generate(prompts, n=1, sampling=sampling)
            for r, (completion,) in zip(chunk, outputs):
                text = completion.text
                if r.options:
                    strict = extract_choice(text, dict(r.options), STRICT[config.prompt]).answer
                    flexible = extract_choice(text, dict(r.options)).answer
                else:
                    strict, flexible = extract_answer(text, strict=True), extract_answer(text)
                gold = r.answer if r.options else extract_answer(f"#### {r.answer}")
                rows.append(
                    {
                        "id": r.id,
                        "subject": r.subject,
                        "gold": r.answer,
                        "response": text,
                        "tokens": completion.tokens,
                        "answer": strict,
                        "answer_flexible": flexible,
                        "correct": strict == gold,
                        "correct_flexible": flexible == gold,
                    }
                )
        store.append(rows)
        for row in rows:
            done[row["id"]] = row
        bar.update(len(chunk))
    bar.close()
    results = {"model": config.model, "config": asdict(config), **summarize([done[r.id] for r in records], benchmark)}
    write_json(out / "results.json", results)
    return results


def paired(pred_a: str | Path, pred_b: str | Path) -> dict[str, Any]:
    """McNemar between two predictions.jsonl files on the questions both answered."""
    a = {row["id"]: row["correct"] for row in JsonlStore(pred_a)}
    b = {row["id"]: row["correct"] for row in JsonlStore(pred_b)}
    common = sorted(set(a) & set(b))
    return {"questions": len(common), **mcnemar([a[i] for i in common], [b[i] for i in common])}
