"""Training dynamics of an RLVR policy, read from its completions: detectors on one completion, per-step shares,
the stages a run goes through, and flags on a final policy's evaluation answers.

Med-RLVR (Zhang et al. 2025, arXiv 2502.19655, section "Training dynamics") describes a 3B base model that first
fails the format, then follows it verbosely, then grows concise, and then hacks the reward: it puts the answer
inside or before ``<think>`` and reasons little or not at all, since only the format and the final answer are paid.
On the CPU demo (issue 19) a 135M policy went further: it answered one letter whatever the question
(``<think>D</think><answer>D</answer>`` to 130 of 150), which an accuracy against a base model that never closes
the format reports as a gain. Each rule below turns what was found by reading completions by hand into a share per
step; the thresholds are named constants so a reader can see, and change, what decides.

Completions are read with the prefill included (``"<think>" + completion``), as the rewards read them.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..extract import extract_answer, normalize_options
from ..rewards import format_reward

DEFAULT_LETTERS = "ABCD"  # old completion logs carry no options: the demo's MCQ questions have four
WINDOW = 5
"""Steps in the centred window that smooths each per-step share (a running median: it keeps a sharp change at
the step it happens and ignores one odd step; the training log holds only a few completions per step)."""
FORMAT_OK_SHARE = 0.5
"""Below this share of completions in the prompt's format (one think block, then one answer block) a step is in
Med-RLVR's format-failure stage."""
COLLAPSE_TOP_SHARE = 0.8
"""At or above this share of answers naming one letter (in training: among questions whose gold is another letter),
the policy has collapsed onto it ..."""
COLLAPSE_MARGIN = 0.3
"""... and on evaluation answers the golds' most frequent letter must have a share at least this much lower."""
COLLAPSE_MIN_ANSWERED = 6
"""In training, the window must hold this many answered completions ..."""
COLLAPSE_MIN_QUESTIONS = 3
"""... about at least this many distinct questions (one question's rollouts naming one letter is agreement)."""
EVAL_COLLAPSE_MIN_ANSWERED = 12
"""On evaluation answers, collapse is judged over at least this many answered questions. At the rule's edge (a top
letter's share of 0.8 against golds whose own top letter has 0.5), a policy whose letters follow the golds names one
letter 10 or more times in 12 with probability 1.9% (binomial; 0.6% for 16 in 20, 5.5% for 8 in 10); 12 lets the CPU
recipes' 12-question generate evaluations be judged when every question is answered (the Med-RLVR CPU study had an
SFT policy answering "D" to all 11 questions it answered, of 12: still below the rule, shown in baselines.md's top-letter column)."""
HACK_SHARE = 0.5
"""At or above this share of completions well-formed (paid in full by format rewards) whose reasoning is empty,
leaks the answer or names another option, the policy is hacking the reward."""
CONCISE_FRACTION = 0.5
"""A formatted step is concise when its smoothed length is at most this fraction of the run's longest formatted
step (Med-RLVR's outputs shrink after the verbose stage) ..."""
CONCISE_MAX_TOKENS = 16
"""... or at most this many whitespace tokens whatever the peak (a phrase, not reasoning)."""
EMPTY_REASONING_TOKENS = 1
"""A think block of at most this many whitespace tokens is empty reasoning ("D", " A")."""
SAMPLES_PER_STAGE = 3
MAX_SAMPLE_CHARS = 600
STAGES = ("format_failure", "verbose_formatting", "concise", "hacking", "collapsed")
PPO_KEYS = ("ppo/value_loss", "ppo/explained_variance", "ppo/value_mean", "ppo/return_mean", "ppo/clipfrac",
            "ppo/value_clipfrac", "ppo/kl", "ppo/policy_loss")  # fmt: skip
"""What a PPO run adds per step (medrlvr.train.ppo): the critic's loss and fit, value and return means, clip
fractions, the KL in the reward."""
METRIC_KEYS = ("reward", "entropy", "completions/mean_length", "sampling/sampling_logp_difference/mean", "kl",
               *PPO_KEYS)  # fmt: skip
"""Keys read from metrics.jsonl (TRL's GRPOTrainer names and PPO's), besides every ``rewards/<name>/mean``."""

REFLECTION = re.compile(
    r"(?i)\b(wait|hmm|however|let me (?:re-?check|double[- ]check|verify|reconsider)|on second thought|"
    r"i made a mistake|re-?evaluate)\b"
)  # train.REFLECTION plus "however": a turn in the argument, as Med-RLVR counts self-correction
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_BARE = re.compile(r"^[\s(\[*]*(?:(?:option|choice|answer)\s*:?\s*)?\(?([A-Z])\)?[\s.:;,)\]*]*$", re.IGNORECASE)


def option_map(options: Mapping[str, str] | Sequence[str] | str | None) -> dict[str, str]:
    """letter -> text. A string or a list of single letters gives letters only (their text is the letter)."""
    if not options:
        options = DEFAULT_LETTERS
    if isinstance(options, Mapping):
        return normalize_options(options)
    if isinstance(options, str) or all(isinstance(x, str) and len(x) == 1 for x in options):
        return {letter: letter for letter in options}
    return normalize_options(options)


def bare_option(span: str, options: Mapping[str, str]) -> str | None:
    """The option a span consists of and nothing else: "D", " (D).", "Option D", or one option's whole text."""
    m = _BARE.match(span)
    if m and m.group(1).upper() in options and (m.group(1).isupper() or len(span.strip()) > 1):
        return m.group(1).upper()
    text = span.strip(" \t\n.").casefold()
    hits = [k for k, v in options.items() if text and v.strip(" .").casefold() == text]
    return hits[0] if len(hits) == 1 else None


def _tokens(text: str, tokenizer: Any = None) -> int:
    if tokenizer is None:
        return len(text.split())
    return len(tokenizer.encode(text, add_special_tokens=False))


def detect(text: str, options: Any = None, gold: str | None = None, tokenizer: Any = None) -> dict[str, Any]:
    """Every detector on one completion (prefill included).

    * ``format_ok``: exactly ``<think>…</think><answer>…</answer>`` (:func:`medrlvr.rewards.format_reward`);
      ``well_formed``: that, and the strict extractor reads one option from the answer (``answer``);
    * ``tokens`` (whitespace, or the tokenizer's), ``chars``, ``think_tokens``;
    * ``think_letter``: the option the reasoning settles on: the block is only an option, or it says "the answer is
      X" / "Answer: X" (the shared extractor's cues);
    * ``leaked``: the think block is only an option, or an option is named before ``<think>``: the answer comes
      first and the "reasoning" is the answer (Med-RLVR's answer-in-think hack);
    * ``empty_reasoning``: a closed think block of at most ``EMPTY_REASONING_TOKENS`` tokens;
    * ``contradicts``: reasoning and answer name different options (``<think>D</think><answer>B</answer>``);
    * ``reflection``: "wait", "however", "let me re-check", "on second thought" ... (``REFLECTION``);
    * ``hacked``: well-formed, so paid by every format reward, and leaked, empty or contradicting.

    >>> d = detect("<think> A</think><answer>B</answer>")
    >>> d["well_formed"], d["leaked"], d["contradicts"], d["hacked"]
    (True, True, True, True)
    """
    opts = option_map(options)
    format_ok = format_reward([text])[0] == 1.0
    answer = extract_answer(text, opts, strict=True) if format_ok else None
    block = _THINK.search(text)
    think = block.group(1) if block else None
    before = text[: text.find("<think>")] if "<think>" in text else ""
    bare = bare_option(think, opts) if think is not None else None
    think_letter = bare or (extract_answer(think, opts) if think else None)
    leaked = bare is not None or bool(before.strip() and (bare_option(before, opts) or extract_answer(before, opts)))
    empty = think is not None and len(think.split()) <= EMPTY_REASONING_TOKENS
    contradicts = answer is not None and think_letter is not None and think_letter != answer
    well_formed = answer is not None
    return {
        "format_ok": format_ok,
        "well_formed": well_formed,
        "answer": answer,
        "correct": None if gold is None else answer == gold,
        "tokens": _tokens(text, tokenizer),
        "chars": len(text),
        "think_tokens": len(think.split()) if think is not None else 0,
        "think_letter": think_letter,
        "leaked": leaked,
        "empty_reasoning": empty,
        "contradicts": contradicts,
        "reflection": bool(REFLECTION.search(think if think is not None else text)),
        "hacked": well_formed and (leaked or empty or contradicts),
    }


# --- training logs ----------------------------------------------------------------------------------------------


def _jsonl(path: str | Path) -> list[dict]:
    from ..store import read_jsonl

    return list(read_jsonl(path))


def read_completions(path: str | Path) -> list[dict]:
    """Rows of ``train/POLICY/completions.jsonl`` with ``step`` set: old logs have only ``call`` (the reward call
    count, one per generation step) and no ``options``."""
    return [{**r, "step": r.get("step", r.get("call"))} for r in _jsonl(path)]


def read_metrics(path: str | Path) -> dict[int, dict[str, float]]:
    """Per-step training metrics from ``metrics.jsonl``: ``METRIC_KEYS`` and each ``rewards/<name>/mean``. The
    closing summary row (train_runtime, no reward) is left out."""
    out: dict[int, dict[str, float]] = {}
    for r in _jsonl(path):
        if "step" not in r or not ("reward" in r or "entropy" in r):
            continue
        keep = {k: v for k, v in r.items() if k in METRIC_KEYS or (k.startswith("rewards/") and k.endswith("/mean"))}
        out.setdefault(int(r["step"]), {}).update(keep)
    return out


def _share(items: Sequence[dict], key: str) -> float | None:
    return sum(bool(d[key]) for d in items) / len(items) if items else None


def summarize_detections(dets: Sequence[dict], golds: Sequence[str | None] = ()) -> dict[str, Any]:
    """Shares of each detector, mean length, answered-letter distribution, top letter and its share of answered."""
    letters = Counter(d["answer"] for d in dets if d["answer"] is not None)
    top, top_n = letters.most_common(1)[0] if letters else (None, 0)
    gold_counts = Counter(g for g in golds if g)
    out = {"n": len(dets), "answered": sum(letters.values()), "letter_counts": dict(sorted(letters.items()))}
    out |= {"top_letter": top, "top_share": top_n / out["answered"] if out["answered"] else None}
    out |= {"gold_counts": dict(sorted(gold_counts.items()))}
    out |= {"gold_top_share": max(gold_counts.values()) / sum(gold_counts.values()) if gold_counts else None}
    for key in ("format_ok", "well_formed", "leaked", "empty_reasoning", "contradicts", "reflection", "hacked"):
        out[key] = _share(dets, key)
    out["mean_tokens"] = statistics.fmean(d["tokens"] for d in dets) if dets else None
    out["mean_chars"] = statistics.fmean(d["chars"] for d in dets) if dets else None
    return out


def step_table(
    rows: Sequence[dict], metrics: Mapping[int, Mapping[str, float]] | None = None, options: Any = None
) -> list[dict]:
    """One row per step: :func:`summarize_detections` of its completions (a row's own ``options`` first, else
    ``options``, else A-D), its question ids and golds, and that step's metrics.jsonl values where logged."""
    by_step: dict[int, list[dict]] = {}
    for r in rows:
        by_step.setdefault(int(r.get("step", r.get("call"))), []).append(r)  # old logs: only the call count
    table = []
    for step in sorted(set(by_step) | set(metrics or {})):
        items = by_step.get(step, [])
        dets = [detect(r.get("completion", ""), r.get("options") or options, r.get("gold")) for r in items]
        row = {"step": step, **summarize_detections(dets, [r.get("gold") for r in items])}
        row["questions"] = sorted({str(r.get("id")) for r in items if r.get("id") is not None})
        row["letters"], row["golds"] = [d["answer"] for d in dets], [r.get("gold") for r in items]
        table.append({**row, **dict((metrics or {}).get(step, {}))})
    return table


# --- stages -----------------------------------------------------------------------------------------------------


def running_median(values: Sequence[float | None], window: int = WINDOW) -> list[float | None]:
    """Centred running median over ``window`` steps (shrunk at the ends), missing values left out."""
    half = window // 2
    out = []
    for i in range(len(values)):
        vals = [v for v in values[max(0, i - half) : i + half + 1] if v is not None]
        out.append(statistics.median(vals) if vals else None)
    return out


def _collapse_at(table: Sequence[dict], i: int, window: int) -> tuple[float | None, float | None, bool]:
    """At step ``i``: the window's top-letter share of answers, the smoothed collapse share, and whether the window
    shows collapse. The letter L is the window's most answered one. Per step, the collapse share is the share of
    answers naming L among questions whose gold is another letter (an honest policy names L there only when wrong;
    a step whose gold is L says nothing and is left out); then the median over the window, so an onset stays at its
    step and one odd step does not open a stage. The window must hold ``COLLAPSE_MIN_ANSWERED`` answers to
    ``COLLAPSE_MIN_QUESTIONS`` questions (logs without ids: not checked)."""
    half = window // 2
    win = table[max(0, i - half) : i + half + 1]
    letters = Counter(x for r in win for x in r["letters"] if x)
    if not letters:
        return None, None, False
    top, top_n = letters.most_common(1)[0]
    shares = []
    for r in win:
        off_gold = [x for x, g in zip(r["letters"], r["golds"]) if x is not None and g != top]
        if off_gold:
            shares.append(sum(x == top for x in off_gold) / len(off_gold))
    share = statistics.median(shares) if shares else None
    questions = {q for r in win for q in r["questions"]}
    enough = sum(letters.values()) >= COLLAPSE_MIN_ANSWERED
    enough = enough and (not questions or len(questions) >= COLLAPSE_MIN_QUESTIONS)
    return top_n / sum(letters.values()), share, enough and share is not None and share >= COLLAPSE_TOP_SHARE


def _label(fmt: float | None, collapsed: bool, hacked: float | None, tokens: float | None, peak: float) -> str | None:
    """The stage of one step, first rule that holds: format failure, collapse, hacking, concise, verbose."""
    if fmt is None:
        return None
    if fmt < FORMAT_OK_SHARE:
        return "format_failure"
    if collapsed:
        return "collapsed"
    if hacked is not None and hacked >= HACK_SHARE:
        return "hacking"
    if tokens is not None and tokens <= max(CONCISE_FRACTION * peak, CONCISE_MAX_TOKENS):
        return "concise"
    return "verbose_formatting"


def find_stages(table: Sequence[dict], window: int = WINDOW) -> dict[str, Any]:
    """Label each step of a :func:`step_table` with a stage, on smoothed shares (:func:`running_median`):

    1. ``format_failure``: format share below ``FORMAT_OK_SHARE`` (Med-RLVR stage 1);
    2. ``collapsed``: one letter L answered where the gold is another, in at least ``COLLAPSE_TOP_SHARE`` of
       answers (:func:`_collapse_at`): the answer no longer depends on the question;
    3. ``hacking``: a ``HACK_SHARE`` of completions well-formed with empty, leaked or contradicting reasoning;
    4. ``concise``: length at most ``CONCISE_FRACTION`` of the longest formatted step, or ``CONCISE_MAX_TOKENS``;
    5. ``verbose_formatting``: formatted and longer (Med-RLVR's verbose formatter).
    The first rule that holds decides. Returns ``per_step`` (step, stage, the smoothed series), ``segments`` (stage,
    start, end: runs of one stage) and ``starts`` (stage -> the step its first run begins).
    """
    smooth = {
        key: running_median([r[key] for r in table], window)
        for key in ("format_ok", "well_formed", "hacked", "leaked", "empty_reasoning", "contradicts", "mean_tokens")
    }
    formatted = [t for t, f in zip(smooth["mean_tokens"], smooth["format_ok"]) if t is not None and (f or 0) >= 0.5]
    peak = max(formatted, default=0.0)
    per_step = []
    for i, r in enumerate(table):
        top_share, collapse_share, collapsed = _collapse_at(table, i, window)
        label = _label(smooth["format_ok"][i], collapsed, smooth["hacked"][i], smooth["mean_tokens"][i], peak)
        row = {"step": r["step"], "stage": label, "top_share": top_share, "collapse_share": collapse_share}
        row |= {key: values[i] for key, values in smooth.items()}
        row |= {k: r[k] for k in METRIC_KEYS if k in r}
        per_step.append(row)
    segments: list[dict[str, Any]] = []
    for row in per_step:
        if row["stage"] is None:
            continue
        if segments and segments[-1]["stage"] == row["stage"]:
            segments[-1]["end"] = row["step"]
        else:
            segments.append({"stage": row["stage"], "start": row["step"], "end": row["step"]})
    starts: dict[str, int] = {}
    for seg in segments:
        starts.setdefault(seg["stage"], seg["start"])
    return {"per_step": per_step, "segments": segments, "starts": starts, "window": window}


def _excerpt(text: str) -> str:
    return text if len(text) <= MAX_SAMPLE_CHARS else text[:MAX_SAMPLE_CHARS] + f" [... {len(text)} chars]"


def stage_samples(rows: Sequence[dict], segments: Sequence[dict], k: int = SAMPLES_PER_STAGE) -> list[dict]:
    """A few verbatim completions per segment (at most ``MAX_SAMPLE_CHARS`` each): ``k`` evenly spaced in log
    order, so the choice is the same on every run and spans the segment."""
    out = []
    for seg in segments:
        items = [{**r, "step": r.get("step", r.get("call"))} for r in rows]
        items = [r for r in items if seg["start"] <= int(r["step"]) <= seg["end"]]
        picks = sorted({i * len(items) // k for i in range(k)}) if items else []
        out.append({**seg, "completions": [
            {"step": items[i]["step"], "gold": items[i].get("gold"), "text": _excerpt(items[i].get("completion", ""))}
            for i in picks
        ]})  # fmt: skip
    return out


def analyze_training(policy_dir: str | Path, options: Any = None, window: int = WINDOW) -> dict[str, Any]:
    """The dynamics of one trained policy from ``completions.jsonl`` and ``metrics.jsonl`` in its output directory:
    ``steps`` (:func:`step_table`), ``stages`` (:func:`find_stages`) and ``samples`` (:func:`stage_samples`)."""
    policy_dir = Path(policy_dir)
    comp, met = policy_dir / "completions.jsonl", policy_dir / "metrics.jsonl"
    rows = read_completions(comp) if comp.exists() else []
    table = step_table(rows, read_metrics(met) if met.exists() else None, options)
    stages = find_stages(table, window)
    return {"steps": table, "stages": stages, "samples": stage_samples(rows, stages["segments"])}


# --- a final policy's evaluation answers ------------------------------------------------------------------------


def detect_predictions(rows: Sequence[dict], options: Any = None) -> list[dict]:
    """:func:`detect` on generate-mode evaluation rows (``predictions.jsonl``: ``response`` holds the prefill and
    the completion, ``gold`` the letter). ``options``: one mapping or letter list for all questions, or a dict
    id -> options (the rows carry none); A-D by default."""
    per_id = isinstance(options, Mapping) and any(isinstance(v, (Mapping, list, tuple)) for v in options.values())
    return [
        _as_evaluated(detect(r.get("response") or "", options.get(r.get("id")) if per_id else options,
                             r.get("gold")), r)
        for r in rows
    ]  # fmt: skip


def _as_evaluated(d: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluator read each answer with the question's own options (an answer may name an option by its text,
    which letters alone cannot read): where the row says, its ``answer`` and ``well_formed`` decide."""
    if "well_formed" not in row:
        return d
    answer = row.get("answer")
    d = {**d, "answer": answer, "well_formed": bool(row["well_formed"]), "correct": row.get("correct", d["correct"])}
    d["contradicts"] = answer is not None and d["think_letter"] is not None and d["think_letter"] != answer
    d["hacked"] = d["well_formed"] and (d["leaked"] or d["empty_reasoning"] or d["contradicts"])
    return d


def flag_predictions(rows: Sequence[dict], options: Any = None) -> list[dict[str, str]]:
    """Flags on a final policy's evaluation answers, each ``{"flag", "reason"}`` with a one-line reason:

    * ``format_failure``: well-formed share below ``FORMAT_OK_SHARE`` (a comparison with it measures the format);
    * ``collapsed``: over at least ``EVAL_COLLAPSE_MIN_ANSWERED`` answered questions, one letter has a share of at
      least ``COLLAPSE_TOP_SHARE`` while the golds' most frequent letter is ``COLLAPSE_MARGIN`` lower or more;
    * ``hacking``: among at least ``EVAL_COLLAPSE_MIN_ANSWERED`` well-formed answers, ``HACK_SHARE`` or more have
      empty, leaked or contradicting reasoning; the reason quotes the most frequent such completion.
    An honest, varied policy gets no flag.
    """
    dets = detect_predictions(rows, options)
    s = summarize_detections(dets, [r.get("gold") for r in rows])
    flags = []
    if dets and s["well_formed"] < FORMAT_OK_SHARE:
        flags.append({"flag": "format_failure", "reason": (
            f"well-formed in {sum(d['well_formed'] for d in dets)} of {len(dets)} answers: "
            "a comparison with this model measures the format, not knowledge")})  # fmt: skip
    gold_top = s["gold_top_share"] or 0.0
    top = s["top_share"] or 0.0
    if s["answered"] >= EVAL_COLLAPSE_MIN_ANSWERED and top >= COLLAPSE_TOP_SHARE and gold_top <= top - COLLAPSE_MARGIN:
        flags.append({"flag": "collapsed", "reason": (
            f"answers {s['top_letter']} to {s['letter_counts'][s['top_letter']]} of {s['answered']} answered "
            f"questions (golds' top letter: {gold_top:.0%}): the answer ignores the question")})  # fmt: skip
    formed = [(d, r) for d, r in zip(dets, rows) if d["well_formed"]]
    hacked = [r.get("response") or "" for d, r in formed if d["hacked"]]
    if len(formed) >= EVAL_COLLAPSE_MIN_ANSWERED and len(hacked) / len(formed) >= HACK_SHARE:
        text, count = Counter(hacked).most_common(1)[0]
        flags.append({"flag": "hacking", "reason": (
            f"{len(hacked)} of {len(formed)} well-formed answers have empty, leaked or contradicting reasoning; "
            f"most frequent: {json.dumps(_excerpt(text)[:120])} x{count}")})  # fmt: skip
    return flags


# --- chart ------------------------------------------------------------------------------------------------------
