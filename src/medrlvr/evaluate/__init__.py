"""Evaluation: a model on benchmarks, per question, resumable; accuracy with 95% intervals and paired tests.

Two modes, as the field scores multiple choice:
- ``generate``: chain of thought with a prompt (``r1_zero``: the training prompt; ``filter``: the Fig. 1 prompt),
  then the shared extractor. *Strict* reads only the format the prompt asks for (answer tag, or ``\\boxed{}``);
  *flexible* reads every pattern. Both accuracies and the extraction-failure rate are reported side by side.
- ``loglik``: the log-likelihood of each option letter after the question (" A", " B", ...), as
  lm-evaluation-harness scores MMLU; the most likely letter is the answer. The engine scores the letters from fp32
  logits whatever the model's dtype (bf16 logits tie in steps of 1/16 nat). Letters that still tie exactly are a
  tie, not the first of them: the row names them (``tied``), has no single answer, and earns 1/k of a point when the
  gold is among the k (``credit``); accuracy is the mean credit and results.json counts the ``ties``.

Predictions are written per chunk of questions to ``predictions.jsonl`` (fsync; 16 questions in generate mode, 1024 in
loglik mode by default), so a kill loses at most the chunk in flight and a rerun skips what is done. Each row
carries the *prediction key*: the hash of what decides an answer (mode, the model's fingerprint, the engine, and
for generate mode the prompt, chat, prefill and max_new_tokens; for loglik mode the number of shots). Rows of
another key are never reused: a file holding them is set aside as ``predictions-KEY.jsonl`` and taken back when
that key is asked for again.

A question that does not fit the model's context is not sent; it is scored as unanswered and counted
(``too_long`` in results.json).

Robustness probes, each in its own module and its own keyed store beside the predictions, reported in results.json:
every row is labelled reasoning- or knowledge-heavy and accuracy is given for each (:mod:`.split`, ``by_kind``);
``adversarial_prefill`` asks again with the answer begun by an argument for a wrong option (:mod:`.prefill`,
``prefill.jsonl``); ``open_form`` asks without the options and grades the free answer (:mod:`.openform`,
``open_form.jsonl``).
``circular``: each multiple-choice question is also asked under the rotations of its options, in both modes
(:mod:`medrlvr.evaluate.circular`: all-rotations-right accuracy, per-rotation accuracy, position bias).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..config import check_ranges, setting
from ..data import SUBJECT2CATEGORY, BenchmarkSpec, DataError
from ..engines import EngineSettings, Sampling, get_engine, takes_chat
from ..engines.context import ContextGuard
from ..errors import UserError
from ..extract import boxed_blocks, extract_answer, extract_choice
from ..prompts import adversarial_prefill, render, render_question
from ..records import Record
from ..rewards import format_reward
from ..rundir import eval_dir
from ..stats import wilson
from ..store import JsonlStore, write_json
from . import circular, openform, prefill, split

log = logging.getLogger(__name__)
STRICT = {"r1_zero": ("answer_tag",), "filter": ("boxed",)}
# Settings whose rows live in stores keyed by what decides them (the probes' own files; circular rows under their
# own prediction key): switching one on or off over a finished evaluation computes only what no store holds, so a
# study reruns such a stage over its old outputs (medrlvr.study.runner) instead of setting them aside.
KEYED_PROBES = ("adversarial_prefill", "open_form", "judge_model", "judge_options", "circular", "circular_rotations")


@dataclass
class EvalConfig(EngineSettings):
    mode: str = setting("loglik", choices=("loglik", "generate"), help="score the options, or generate an answer")
    prompt: str = setting("r1_zero", choices=tuple(STRICT), help="generate mode: the prompt")
    chat: bool | None = setting(None, help="use the chat template (default: if the model has one, else plain text)")
    max_new_tokens: int = setting(512, ge=1, help="generate mode: tokens per answer at most")
    num_fewshot: int = setting(0, ge=0, help="loglik: examples from the dev split")
    limit: int | None = setting(None, ge=1, help="a seeded subsample of N questions per benchmark (default: all)")
    seed: int = setting(0, help="the subsample's seed")
    # Questions per engine call and per write to predictions.jsonl: a kill loses at most one chunk. Bigger chunks
    # batch better: the engine sorts a chunk's rows by length. None: 16 in generate mode (seconds to a minute of
    # generation on a CPU), 1024 in loglik mode (0-shot MMLU on a 2-core CPU: 1.2x the speed of 64-question chunks,
    # and about 2.5 minutes of work that a kill can lose).
    chunk_size: int | None = setting(
        None, ge=1, help="questions per engine call and per write to predictions.jsonl; a kill loses at most one "
        "chunk (default: 16 in generate mode, 1024 in loglik mode)"
    )  # fmt: skip
    prefill: str | None = setting(
        None, help='generate mode: text the answer starts with, as in training (e.g. "<think>")'
    )
    samples: int = setting(
        1, ge=1, help="generate mode: answers sampled per question for pass@k (1: one greedy answer); the row's "
        "answer is the first sample"
    )  # fmt: skip
    temperature: float = setting(1.0, gt=0, help="generate mode with samples > 1: the sampling temperature")
    stop: list[str] = setting(
        default_factory=list, help='generate mode: an answer ends where one of these ends (e.g. "</answer>", as '
        "training's rollouts did); the string stays in the answer"
    )  # fmt: skip

    adversarial_prefill: bool = setting(
        False, help="generate mode: ask each question again with the answer begun by a sentence arguing for a "
        "seeded wrong option (BioMed-R1's probe); reports accuracy under it and the flips against the plain answers"
    )  # fmt: skip
    open_form: bool = setting(
        False, help="also ask each question without its options and grade the free answer against the gold "
        "option's text (exact and normalised match, and judge_model if given), beside the multiple-choice accuracy"
    )  # fmt: skip
    judge_model: str | None = setting(
        None, help="open_form: the served model that judges free answers on an OpenAI-compatible server (its "
        "base_url in judge_options; the key is $OPENAI_API_KEY)"
    )  # fmt: skip
    judge_options: dict[str, Any] = setting(
        default_factory=dict, help="open_form judge's engine options, as JSON or key=value (base_url, concurrency)"
    )
    circular: bool = setting(
        False, help="also ask each question under every rotation of its options (MMBench's CircularEval): "
        "all-rotations-right and per-rotation accuracy and position bias in results.json"
    )  # fmt: skip
    circular_rotations: int = setting(
        5, ge=2, help="circular: rotations per question at most; a question with more options free to move "
        "(MMLU-Pro's ten) gets this many seeded ones, the original order first"
    )  # fmt: skip

    def __post_init__(self) -> None:
        # 0 or a negative number used to mean "all" or "all but N" through Python's slicing: refused by the ranges
        check_ranges(self)
        if self.judge_model and not self.open_form:
            raise UserError("setting 'judge_model' judges open-form answers: set open_form too")

    def check_probes(self) -> None:
        """The probes fit the mode; checked once the mode is final (``NAME@generate`` sets it per benchmark)."""
        if self.adversarial_prefill and self.mode != "generate":
            raise UserError(
                "setting 'adversarial_prefill' needs mode generate (the prefill begins a generated answer)"
            )

    @property
    def chunk(self) -> int:
        return self.chunk_size or (16 if self.mode == "generate" else 1024)


def subsample(records: Sequence[Record], limit: int | None, seed: int) -> list[Record]:
    """A seeded subsample of ``limit`` questions (None: all), kept in the benchmark's order."""
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1 (or None for all), got {limit}")
    if limit is None or limit >= len(records):
        return list(records)
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for i, r in enumerate(records) if i in keep]


def loglik_context(record: Record, fewshot: Sequence[Record] = ()) -> str:
    """lm-evaluation-harness's MMLU format: a header, examples with their answers, then the question and "Answer:"."""
    subject = (record.subject or record.source).replace("_", " ")
    header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    shots = "".join(f"{render_question(r)}\nAnswer: {r.answer}\n\n" for r in fewshot)
    return f"{header}{shots}{render_question(record)}\nAnswer:"


def summarize(rows: Sequence[dict], benchmark: str) -> dict[str, Any]:
    """Accuracy (strict and flexible), failure rate, 95% CIs, by benchmark, category and subject."""

    def block(items: Sequence[dict]) -> dict[str, Any]:
        n = len(items)
        strict = sum(r.get("credit", r["correct"]) for r in items)  # loglik: split credit for ties
        out = {"n": n, "accuracy": strict / n if n else 0.0, "ci95": wilson(strict, n)}
        if items and "loglik" in items[0]:
            out["ties"] = sum("tied" in r for r in items)
        if items and "correct_flexible" in items[0]:
            flexible = sum(r["correct_flexible"] for r in items)
            out.update(
                accuracy_flexible=flexible / n,
                ci95_flexible=wilson(flexible, n),
                extraction_failure_rate=sum(r["answer"] is None for r in items) / n,
            )
        if items and "well_formed" in items[0]:
            in_format = sum(bool(r["format_ok"]) for r in items)
            well_formed = sum(bool(r["well_formed"]) for r in items)
            out.update(
                format_rate=in_format / n,  # the prompt's format, whatever the answer says
                well_formed_rate=well_formed / n,  # in format and naming exactly one option (strict extraction)
                ci95_well_formed=wilson(well_formed, n),
                formatted_without_option=in_format - well_formed,  # e.g. <answer> DNA here </answer>
            )
        return out

    categories = SUBJECT2CATEGORY.get(BenchmarkSpec.parse(benchmark).name, {})
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


WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt")


def model_fingerprint(model: str, engine: str = "transformers") -> str:
    """Which weights answer. Local weights (a .gguf, a checkpoint or adapter folder, a packaged model) are known by
    a cheap identity of each weight file (size, sha256 of its first and last MiB), so weights retrained at the same
    path are another model; a hub id or a served model is known only by its name."""
    from ..models import ModelError, _file_key, resolve

    if engine == "openai":
        return model
    try:
        ref = resolve(model)
    except ModelError:
        return model
    path = Path(ref.location)
    if ref.kind == "gguf":
        return f"gguf:{_file_key(path)}"
    if ref.kind != "dir":
        return model
    parts = [f"{p.name}:{_file_key(p)}" for p in sorted(path.iterdir()) if p.suffix in WEIGHTS and p.is_file()]
    if (path / "adapter_config.json").is_file():  # the same adapter on another base is another model
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        parts.append(f"base:{base}")
    return "dir:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def prediction_settings(config: EvalConfig, fingerprint: str | None = None) -> dict[str, Any]:
    """What decides each answer; predictions made under other settings are never reused. The subsample (limit,
    seed) and chunk size are not here: they choose which questions are asked, not how they are answered."""
    settings: dict[str, Any] = {
        "mode": config.mode,
        "engine": config.engine,
        "model": fingerprint or model_fingerprint(config.model, config.engine),
    }
    if config.mode == "loglik":
        settings["num_fewshot"] = config.num_fewshot
        settings["scoring"] = "fp32-head,ties"  # rows of the bf16-logit scorer (first letter wins a tie) not reused
    else:
        settings.update(
            prompt=config.prompt,
            chat=config.chat,
            prefill=config.prefill,
            max_new_tokens=config.max_new_tokens,
            fields=2,  # rows with format_ok / well_formed: rows written before them are not mixed in
        )
        if config.samples > 1:  # only then: greedy predictions keep the keys they were written under
            settings.update(samples=config.samples, temperature=config.temperature)
        if config.stop:  # likewise
            settings["stop"] = list(config.stop)
    if config.circular:  # only then: plain predictions keep their keys
        settings["circular"] = {"rotations": config.circular_rotations, "seed": config.seed}
    return settings


def stage_settings(config: EvalConfig) -> dict[str, Any]:
    """The settings a study keys an evaluation stage by, in three parts: ``config`` (a change recomputes the stage),
    ``subsample`` and ``probes`` (a change reruns it over its old outputs: predictions are stored per question, and
    probe rows under their own keys). The model, its engine options and the chunk size are not settings of the
    result."""
    return {
        "config": {k: v for k, v in asdict(config).items()
                   if k not in ("model", "engine_options", "chunk_size", "limit", "seed", *KEYED_PROBES)},
        "subsample": {"limit": config.limit, "seed": config.seed},
        "probes": {name: getattr(config, name) for name in KEYED_PROBES},
    }  # fmt: skip


def _strict(text: str, record: Record, prompt: str) -> str | None:
    """The answer read only in the prompted format (the answer tag, or \\boxed{} for the filter prompt)."""
    if record.options:
        return extract_choice(text, dict(record.options), STRICT[prompt]).answer
    return extract_answer(text, strict=True)


def pass_at_k_results(rows: Sequence[dict]) -> dict[str, Any]:
    """pass@k (Chen et al.'s unbiased estimator) for k = 1, 2, 4, ... up to the samples per question, with 95%
    bootstrap intervals over questions (:func:`medrlvr.report.baselines.pass_at_k_summary`)."""
    from ..stats import pass_at_k_summary

    counts = [(r["samples"], r["samples_correct"]) for r in rows if "samples" in r]
    if not counts:
        return {}
    n = min(c[0] for c in counts)
    ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n} | {n})
    out = {}
    for k in ks:
        summary = pass_at_k_summary(counts, k)
        out[str(k)] = {"mean": summary["mean"], "ci": list(summary["ci"])}
    return {"samples": n, "pass_at_k": out}


def prediction_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def open_predictions(out: Path, key: str, name: str = "predictions") -> JsonlStore:
    """``out/predictions.jsonl`` (``out/NAME.jsonl``) holding only rows made under ``key``. A file of another key is
    set aside as ``predictions-OTHER.jsonl`` (rows from before keys existed: ``predictions-unkeyed.jsonl``), and a
    file set aside earlier under ``key`` is taken back, so switching settings back and forth loses and mixes
    nothing."""
    path = out / f"{name}.jsonl"
    if path.exists():
        keys = {row.get("key") for row in JsonlStore(path, unique=None)}  # a mixed file may repeat ids
        if keys and keys != {key}:
            other = next(iter(keys)) if len(keys) == 1 else "mixed"
            os.replace(path, out / f"{name}-{other or 'unkeyed'}.jsonl")
    kept = out / f"{name}-{key}.jsonl"
    if not path.exists() and kept.exists():
        os.replace(kept, path)
    return JsonlStore(path)


def evaluate(
    records: Sequence[Record],
    config: EvalConfig,
    out_dir: str | Path,
    benchmark: str,
    fewshot_pool: Sequence[Record] = (),
    engine: Any = None,
    progress: bool = True,
    fingerprint: str | None = None,
    judge: Any = None,
) -> dict[str, Any]:
    """Evaluate one benchmark; writes predictions.jsonl and results.json in ``out_dir`` and returns the results.
    ``fingerprint`` names the model's weights (default: :func:`model_fingerprint`) in the prediction key; ``judge``
    is the open-form judge's engine (default: ``config.judge_model`` on its server, when set)."""
    from tqdm import tqdm

    config.check_probes()
    out = Path(out_dir)
    records = subsample(records, config.limit, config.seed)
    if not records:
        raise DataError(f"{benchmark}: no questions to evaluate (is its file empty?)")
    if config.circular:
        circular.check_circular(records, benchmark)
    out.mkdir(parents=True, exist_ok=True)
    settings = prediction_settings(config, fingerprint)
    key = prediction_key(settings)
    store = open_predictions(out, key)
    done = {row["id"]: row for row in store}
    todo = [r for r in records if r.id not in done]
    if todo and engine is None:
        engine = get_engine(config.engine, config.model, **config.engine_options)
    chat = config.chat if config.chat is not None else takes_chat(engine)
    guard = ContextGuard(engine) if todo else None
    shots_by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in fewshot_pool:
        shots_by_subject[r.subject].append(r)
    bar = tqdm(
        total=len(records), initial=len(records) - len(todo), unit="q", desc=f"eval {benchmark}", disable=not progress
    )
    for start in range(0, len(todo), config.chunk):
        chunk = todo[start : start + config.chunk]
        asked, plans = circular.plan(chunk, config.circular_rotations, config.seed) if config.circular else (chunk, [])
        rows = (_loglik_rows(asked, guard, shots_by_subject, config.num_fewshot) if config.mode == "loglik"
                else _generate_rows(asked, guard, config, chat))  # fmt: skip
        if config.circular:  # a question's rotations are asked in one engine call: the stem runs once for them
            rows = circular.fold(rows, plans)
        kinds = {r.id: split.question_kind(r) for r in chunk}
        for row in rows:
            row.update(key=key, kind=kinds.get(row["id"]))  # the reasoning/knowledge label, stored with the row
        store.append(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(chunk))
    bar.close()
    rows = [done[r.id] for r in records]
    split.label(records, rows)

    def model() -> tuple[ContextGuard, bool]:  # for the probes: the engine, loaded only if a probe has work
        nonlocal engine, guard
        if engine is None:
            engine = get_engine(config.engine, config.model, **config.engine_options)
        guard = guard or ContextGuard(engine)
        return guard, config.chat if config.chat is not None else takes_chat(engine)

    probes = _probes(records, rows, config, out, settings, model, judge, progress, benchmark)
    too_long = sum("too_long" in row for row in rows)
    if too_long:
        log.warning("eval %s: %d of %d questions do not fit the model's context; scored as unanswered",
                    benchmark, too_long, len(rows))  # fmt: skip
    results = {
        "model": config.model,
        "config": asdict(config),
        "prediction_key": key,
        "prediction_settings": settings,
        **summarize(rows, benchmark),
        **({"accuracy_is": LOGLIK_ACCURACY} if config.mode == "loglik" else {}),
        **pass_at_k_results(rows),
        "too_long": too_long,
        "by_kind": split.results(rows),
        **probes,
    }
    if config.circular:
        results["circular"] = circular.summarize(rows)
        if results["circular"]["skipped"]:
            log.warning("eval %s: %d questions cannot be rotated (%s); not scored as circular", benchmark,
                        results["circular"]["skipped"], results["circular"]["skipped_reasons"])  # fmt: skip
    write_json(out / "results.json", results)
    return results


def _probe_rows(out: Path, name: str, settings: dict[str, Any], records: Sequence[Record], chunk: int, make,
                desc: str) -> list[dict]:  # fmt: skip
    """One row per record in ``out/NAME.jsonl``, kept under the key of ``settings`` as predictions are; rows not yet
    made are made by ``make(records)``, a chunk at a time (a kill loses at most one chunk)."""
    from tqdm import tqdm

    key = prediction_key(settings)
    store = open_predictions(out, key, name)
    done = {row["id"]: row for row in store}
    todo = [r for r in records if r.id not in done]
    with tqdm(total=len(records), initial=len(records) - len(todo), unit="q", desc=desc, disable=desc == "") as bar:
        for start in range(0, len(todo), chunk):
            rows = make(todo[start : start + chunk])
            for row in rows:
                row["key"] = key
            store.append(rows)
            done.update((row["id"], row) for row in rows)
            bar.update(len(rows))
    return [done[r.id] for r in records]


def _probes(records, rows, config: EvalConfig, out: Path, settings, model, judge, progress: bool, benchmark: str):
    """The probes ``config`` asks for, each run on what its store lacks: results.json's ``adversarial_prefill`` and
    ``open_form`` blocks."""
    found: dict[str, Any] = {}
    if config.adversarial_prefill:

        def pushed(chunk: Sequence[Record]) -> list[dict]:
            ask = [r for r in chunk if r.options]
            wrong = {r.id: prefill.wrong_option(r, config.seed) for r in ask}
            texts = [adversarial_prefill(r, wrong[r.id], config.prefill) for r in ask]
            made = {}
            if ask:
                guard, chat = model()
                for row in _generate_rows(ask, guard, replace(config, samples=1), chat, texts):  # one greedy answer
                    made[row["id"]] = prefill.probe_row(row, wrong[row["id"]])
            return [made.get(r.id) or prefill.skipped_row(r) for r in chunk]

        probed = _probe_rows(out, "prefill", prefill.settings(settings, config.seed), records, config.chunk, pushed,
                             f"prefill {benchmark}" if progress else "")  # fmt: skip
        found["adversarial_prefill"] = prefill.summarize(rows, probed)
    if config.open_form:
        if judge is None and config.judge_model:  # no request is made until a free answer needs judging
            judge = openform.judge_engine(config.judge_model, config.judge_options)
        made = _probe_rows(out, "open_form", openform.settings(settings, config), records, config.chunk,
                           lambda chunk: openform.ask(chunk, model, config, judge),
                           f"open form {benchmark}" if progress else "")  # fmt: skip
        found["open_form"] = openform.summarize(rows, made)
    return found


LOGLIK_ACCURACY = "mean credit: 1 when the gold letter alone is the most likely, 1/k when it is one of k tied"


def _loglik_rows(chunk: Sequence[Record], guard: ContextGuard, shots_by_subject, num_fewshot: int) -> list[dict]:
    """One prediction row per question: the option letter the model finds most likely after the question, or the
    letters that tie for it (``tied``: no single answer, ``correct`` false, ``credit`` 1/k if the gold is one of
    the k)."""
    pairs, spans = [], []
    for r in chunk:
        context = loglik_context(r, shots_by_subject.get(r.subject, [])[:num_fewshot])
        spans.append((len(pairs), list(r.options)))
        pairs += [(context, f" {letter}") for letter in r.options]
    scores = guard.loglikelihood(pairs)
    rows = []
    for r, (offset, letters) in zip(chunk, spans):
        row = {"id": r.id, "subject": r.subject, "gold": r.answer}
        if offset in guard.too_long:  # not sent to the model: unanswered
            rows.append({**row, "answer": None, "correct": False, "credit": 0.0, "loglik": None,
                         "too_long": guard.too_long[offset]})  # fmt: skip
            continue
        lls = [scores[offset + i][0] for i in range(len(letters))]
        best = [letter for letter, ll in zip(letters, lls) if ll == max(lls)]
        if len(best) > 1:  # a tie is reported as one, never as the first of its letters
            credit = 1 / len(best) if r.answer in best else 0.0
            rows.append({**row, "answer": None, "correct": False, "credit": credit, "tied": best, "loglik": lls})
            continue
        answer = best[0]
        rows.append({**row, "answer": answer, "correct": answer == r.answer, "credit": float(answer == r.answer),
                     "loglik": lls})  # fmt: skip
    return rows


def _generate_rows(
    chunk: Sequence[Record], guard: ContextGuard, config: EvalConfig, chat: bool, prefills: Sequence[str] | None = None
) -> list[dict]:
    """One prediction row per question: a greedy answer to the prompt (with ``samples`` > 1, the first of that
    many sampled answers, and how many of them are right), read strictly and flexibly. ``prefills``: each
    question's own prefill in place of ``config.prefill`` (the adversarial-prefill probe)."""
    prefills = list(prefills) if prefills is not None else [config.prefill] * len(chunk)
    prompts = [render(r, config.prompt, chat, p) for r, p in zip(chunk, prefills)]
    temperature = config.temperature if config.samples > 1 else 0.0
    sampling = Sampling(max_new_tokens=config.max_new_tokens, temperature=temperature, seed=config.seed,
                        stop=tuple(config.stop), include_stop=True)  # fmt: skip
    outputs = guard.generate(prompts, n=config.samples, sampling=sampling)
    rows = []
    for r, p, (completion, *others) in zip(chunk, prefills, outputs):
        text = (p or "") + completion.text  # the prefill is part of the answer, as in training
        strict = _strict(text, r, config.prompt)
        flexible = extract_choice(text, dict(r.options)).answer if r.options else extract_answer(text)
        gold = r.answer if r.options else extract_answer(f"#### {r.answer}")
        # the prompt's format: <think>...</think><answer>...</answer> (r1_zero) or a \boxed{} answer (filter)
        format_ok = format_reward([text])[0] == 1.0 if config.prompt == "r1_zero" else bool(boxed_blocks(text))
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
                "format_ok": format_ok,
                "well_formed": format_ok and strict is not None,  # in format and naming one option
            }
        )
        if r.options:
            rows[-1]["n_options"] = len(r.options)
        if others:  # pass@k: how many of the samples are right (strict reading)
            rows[-1]["samples"] = 1 + len(others)
            rows[-1]["samples_correct"] = int(rows[-1]["correct"]) + sum(
                _strict((p or "") + o.text, r, config.prompt) == gold for o in others
            )
    for i, tokens in guard.too_long.items():  # held back: an empty completion, scored as unanswered
        rows[i]["too_long"] = tokens
    return rows


def run(
    model: str,
    jobs: Sequence[tuple[BenchmarkSpec, EvalConfig]],
    run_dir: str | Path,
    data_dir: str | None = None,
    *,
    progress: bool = True,
) -> Path:
    """``medrlvr eval``: one model (``config.model``; ``model`` is its name in the run) on each ``(benchmark,
    config)`` of ``jobs``, each into RUN/eval/MODEL/FOLDER (predictions.jsonl, results.json); returns RUN/eval/MODEL.
    The engine is loaded once, for the first benchmark, and closed at the end. (A study drives :func:`evaluate` per
    benchmark itself, with its stage cache: :mod:`medrlvr.study.runner`.)"""
    for spec, config in jobs:
        try:
            config.check_probes()
        except UserError as e:
            raise UserError(f"{spec.label}: {e}") from None
    with contextlib.ExitStack() as stack:
        engine = None
        for spec, config in jobs:
            records = spec.load(data_dir)  # a bad data file is one line before any model is loaded
            if config.circular:
                circular.check_circular(records, spec.label)
            shots = spec.fewshot_pool(data_dir) if config.num_fewshot else []
            if engine is None:
                engine = get_engine(config.engine, config.model, **config.engine_options)
                stack.callback(engine.close)
            evaluate(records, config, eval_dir(run_dir, model, spec.label), spec.label, shots, engine=engine,
                     progress=progress)  # fmt: skip
    return Path(run_dir) / "eval" / model
