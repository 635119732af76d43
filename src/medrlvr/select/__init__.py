"""Training-set selection: strategies are pure functions of (pool, labels, settings, seed).

- ``random``: the paper's baseline, ``n`` questions drawn uniformly.
- ``ratio``: ``hard`` hard + ``easy`` easy questions from one filter's labels (the paper: 400 + 100).
- ``band``: questions whose pass rate lies in ``[lo, hi]`` (both ends inclusive), for filters run with k > 1.

``stratify=True`` draws each group in proportion to its subjects (largest remainder). When the pool cannot supply
what is asked for, :class:`SelectionError` says what is short, unless ``allow_short=True`` takes what there is.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..config import check_ranges, setting
from ..errors import UserError
from ..prompts import chat_messages, verl_rows  # noqa: F401 (verl_rows: select writes verl's parquet)
from ..records import Record
from ..store import read_jsonl, write_json, write_jsonl


class SelectionError(UserError):
    """A training set that cannot be drawn as asked (too few questions, no labels)."""


def _draw(
    candidates: list[Record], count: int, rng: random.Random, stratify: bool, what: str, allow_short: bool
) -> list[Record]:
    if count > len(candidates):
        if not allow_short:
            raise SelectionError(
                f"asked for {count} {what} questions, the pool has {len(candidates)} "
                f"(short by {count - len(candidates)}; --allow-short takes what there is)"
            )
        count = len(candidates)
    if not stratify:
        return rng.sample(candidates, count)
    by_subject: dict[str, list[Record]] = defaultdict(list)
    for r in candidates:
        by_subject[r.subject].append(r)
    subjects = sorted(by_subject)
    quotas = {s: count * len(by_subject[s]) / len(candidates) for s in subjects}
    take = {s: int(q) for s, q in quotas.items()}
    for s in sorted(subjects, key=lambda s: (-(quotas[s] - take[s]), s))[: count - sum(take.values())]:
        take[s] += 1
    chosen: list[Record] = []
    for s in subjects:
        chosen += rng.sample(by_subject[s], take[s])
    rng.shuffle(chosen)
    return chosen


def _random(pool: list[Record], labels, config: SelectConfig, rng: random.Random) -> list[Record]:
    return _draw(pool, config.n, rng, config.stratify, "random", config.allow_short)


def _ratio(pool: list[Record], labels, config: SelectConfig, rng: random.Random) -> list[Record]:
    hard = [r for r in pool if labels[r.id]["label"] == "hard"]
    easy = [r for r in pool if labels[r.id]["label"] == "easy"]
    chosen = _draw(hard, config.hard, rng, config.stratify, "hard", config.allow_short)
    chosen += _draw(easy, config.easy, rng, config.stratify, "easy", config.allow_short)
    rng.shuffle(chosen)
    return chosen


def _band(pool: list[Record], labels, config: SelectConfig, rng: random.Random) -> list[Record]:
    # a question the filter could not read (label too_long) has no pass rate and is in no band
    rates = {r.id: labels[r.id]["pass_rate"] for r in pool}
    band = [r for r in pool if rates[r.id] is not None and config.lo <= rates[r.id] <= config.hi]
    return _draw(band, config.n, rng, config.stratify, f"pass-rate [{config.lo}, {config.hi}]", config.allow_short)


class Strategy(NamedTuple):
    draw: Callable[[list[Record], Any, SelectConfig, random.Random], list[Record]]  # (pool by id, labels, config, rng)
    needs_labels: bool  # a filter's labels (a recipe's select entry names the filter)
    describe: Callable[[SelectConfig], str]  # its settings in one phrase, for ``medrlvr run --plan``


# A new strategy: a function above, an entry here, its settings in SelectConfig, a test in test_filter_select.py.
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy(_random, False, lambda c: f"n={c.n}"),
    "ratio": Strategy(_ratio, True, lambda c: f"hard={c.hard} easy={c.easy}"),
    "band": Strategy(_band, True, lambda c: f"[{c.lo}, {c.hi}] n={c.n}"),
}


@dataclass
class SelectConfig:
    strategy: str = setting(
        "ratio", choices=tuple(STRATEGIES), help="random (the baseline), ratio (hard:easy) or band"
    )
    n: int = setting(500, ge=1, help="random, band: how many questions")
    hard: int = setting(400, ge=0, help="ratio: how many hard questions (the paper: 400)")
    easy: int = setting(100, ge=0, help="ratio: how many easy questions (the paper: 100)")
    lo: float = setting(0.0, ge=0, le=1, help="band: lowest pass rate, inclusive")
    hi: float = setting(1.0, ge=0, le=1, help="band: highest pass rate, inclusive")
    stratify: bool = setting(False, help="draw in proportion to subjects")
    allow_short: bool = setting(False, help="take what there is when the pool is short")
    seed: int = setting(0, help="the draw's seed")
    decontaminate: list[str] = setting(
        default_factory=list, help="eval sets to drop 8-gram overlaps with, e.g. medqa,mmlu:medical"
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.lo <= self.hi:
            raise UserError(f"band needs 0 <= lo <= hi <= 1, got lo={self.lo} hi={self.hi}")
        if self.strategy == "ratio" and self.hard + self.easy < 1:
            raise UserError("strategy ratio with hard=0 and easy=0 selects nothing: set hard or easy")


def select(
    pool: Sequence[Record], labels: Mapping[str, Mapping[str, Any]] | None, config: SelectConfig
) -> list[Record]:
    """The training set: a pure function of its arguments (the same inputs give the same list)."""
    rng = random.Random(config.seed)
    pool = sorted(pool, key=lambda r: r.id)  # independent of the order the pool was read in
    strategy = STRATEGIES[config.strategy]
    if strategy.needs_labels:
        if labels is None:
            raise SelectionError(f"strategy {config.strategy} needs filter labels")
        missing = [r.id for r in pool if r.id not in labels]
        if missing:
            raise SelectionError(
                f"{len(missing)} pool questions have no filter label (first: {missing[0]}); "
                "run the filter over the same pool"
            )
    return strategy.draw(pool, labels, config, rng)


def stats(chosen: Sequence[Record], labels: Mapping[str, Mapping[str, Any]] | None, dropped: Sequence[dict]) -> dict:
    return {
        "selected": len(chosen),
        "by_label": dict(Counter(labels[r.id]["label"] for r in chosen)) if labels else {},
        "by_subject": dict(sorted(Counter(r.subject for r in chosen).items())),
        "by_answer": dict(sorted(Counter(r.answer for r in chosen).items())),
        "decontamination_dropped": len(dropped),
    }


def write_selection(
    chosen: Sequence[Record],
    labels,
    dropped: Sequence[dict],
    config: SelectConfig,
    out_dir: str | Path,
    parquet: bool = False,
) -> Path:
    out = Path(out_dir)
    rows = []
    for r in chosen:
        row = r.to_dict()
        if labels:
            row.update(label=labels[r.id]["label"], pass_rate=labels[r.id]["pass_rate"])
        rows.append(row)
    write_jsonl(out / "train.jsonl", rows)
    write_json(out / "stats.json", {"config": asdict(config), **stats(chosen, labels, dropped)})
    write_jsonl(out / "decontaminated.jsonl", dropped)
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(verl_rows(chosen)), out / "train.parquet")
    return out


def run_selection(
    pool: Sequence[Record],
    labels: Mapping[str, Mapping[str, Any]] | None,
    config: SelectConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    parquet: bool = False,
    eval_sets: Mapping[str, Sequence[Record]] | None = None,
) -> Path:
    """The select stage, as ``medrlvr select`` and a study run it: drop the pool questions that overlap the
    benchmarks in ``config.decontaminate`` (``eval_sets`` holds those already loaded), draw the training set, write
    train.jsonl, stats.json and decontaminated.jsonl to ``out_dir``; returns ``out_dir``."""
    from ..data import load_eval_spec
    from ..data.decontam import decontaminate

    if not pool:
        raise SelectionError("the pool is empty: there is nothing to select from (check --pool and --limit)")
    loaded = dict(eval_sets or {})
    evals = [r for spec in config.decontaminate for r in loaded.get(spec) or load_eval_spec(spec, data_dir)]
    kept, dropped = decontaminate(pool, evals) if evals else (list(pool), [])
    chosen = select(kept, labels, config)
    return write_selection(chosen, labels, dropped, config, out_dir, parquet=parquet)


def load_selection(path: str | Path) -> list[Record]:
    path = Path(path)
    path = path / "train.jsonl" if path.is_dir() else path
    return [Record.from_dict(row) for row in read_jsonl(path)]
