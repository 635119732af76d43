"""Training-set selection: strategies are pure functions of (pool, evidence, settings, seed), where the evidence is
what the strategy reads: nothing, one filter's labels, several filters' labels, or a pilot run's per-question
trajectories (:attr:`Strategy.needs`).

- ``random``: the paper's baseline, ``n`` questions drawn uniformly.
- ``ratio``: ``hard`` hard + ``easy`` easy questions from one filter's labels (the paper: 400 + 100).
- ``band``: questions whose pass rate lies in ``[lo, hi]`` (both ends inclusive), for filters run with k > 1.
- ``learnability``, ``variance``: by the policy's own pass rates (:mod:`medrlvr.select.passrate`).
- ``fail_then_diverse``, ``filter_agreement``: by several filters (:mod:`medrlvr.select.filters`).
- ``limr``, ``pilot_variance``: by a pilot run's reward trajectories (:mod:`medrlvr.select.pilot`).

``stratify=True`` draws each group in proportion to its subjects (largest remainder). When the pool cannot supply
what is asked for, :class:`SelectionError` says what is short, unless ``allow_short=True`` takes what there is or
``fill_short=True`` tops the rule's questions up with random ones (stats.json counts them: ``filled``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from ..config import check_ranges, setting
from ..errors import UserError
from ..prompts import chat_messages, verl_rows  # noqa: F401 (verl_rows: select writes verl's parquet)
from ..records import Record
from ..store import read_jsonl, write_json, write_jsonl
from .draw import SelectionError
from .draw import draw as _draw
from .filters import fail_then_diverse, filter_agreement
from .passrate import learnability, variance
from .pilot import limr, pilot_variance, trajectories

__all__ = [
    "STRATEGIES",
    "SelectConfig",
    "SelectionError",
    "select",
    "select_filled",
    "run_selection",
    "trajectories",
    "with_samples",
]


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
    draw: Callable[
        [list[Record], Any, SelectConfig, random.Random], list[Record]
    ]  # (pool by id, evidence, config, rng)
    # what it reads: None; "labels" (one filter's: the select entry names it); "filters" (several filters' labels,
    # name -> labels: ``filter: [A, B]``); "pilot" (question id -> accuracy per visit: ``pilot: POLICY``)
    needs: str | None
    describe: Callable[[SelectConfig], str]  # its settings in one phrase, for ``medrlvr run --plan``
    samples: int = 1  # the fewest samples per question its filter must take (a variance needs two)

    @property
    def needs_labels(self) -> bool:
        return self.needs in ("labels", "filters")


# A new strategy: a function (one module per family), an entry here, its settings in SelectConfig, a test in
# tests/test_select_strategies.py.
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy(_random, None, lambda c: f"n={c.n}"),
    "ratio": Strategy(_ratio, "labels", lambda c: f"hard={c.hard} easy={c.easy}"),
    "band": Strategy(_band, "labels", lambda c: f"[{c.lo}, {c.hi}] n={c.n}"),
    "learnability": Strategy(learnability, "labels", lambda c: f"n={c.n}, p(1-p)-weighted", 2),
    "variance": Strategy(variance, "labels", lambda c: f"n={c.n}, top k(G-k)/(G(G-1)) >= {c.min_variance}", 2),
    "fail_then_diverse": Strategy(fail_then_diverse, "filters", lambda c: f"n={c.n}, failed by all, by subject"),
    "filter_agreement": Strategy(filter_agreement, "filters", lambda c: f"n={c.n}, agreement={c.agreement}"),
    "limr": Strategy(limr, "pilot", lambda c: f"n={c.n}, top LIMR score"),
    "pilot_variance": Strategy(pilot_variance, "pilot", lambda c: f"n={c.n}, top accuracy variance over the pilot"),
}


@dataclass
class SelectConfig:
    strategy: str = setting(
        "ratio",
        choices=tuple(STRATEGIES),
        help="random (the baseline), ratio (hard:easy), band, "
        "learnability, variance, fail_then_diverse, filter_agreement, limr, pilot_variance",
    )
    n: int = setting(500, ge=1, help="every strategy but ratio: how many questions")
    hard: int = setting(400, ge=0, help="ratio: how many hard questions (the paper: 400)")
    easy: int = setting(100, ge=0, help="ratio: how many easy questions (the paper: 100)")
    lo: float = setting(0.0, ge=0, le=1, help="band: lowest pass rate, inclusive")
    hi: float = setting(1.0, ge=0, le=1, help="band: highest pass rate, inclusive")
    min_variance: float = setting(
        0.0, ge=0, le=1, help="variance: the lowest normalised group variance kept (VCRL's threshold; 0: any > 0)"
    )
    agreement: str = setting(
        "all", choices=("all", "weaker_only"), help="filter_agreement: hard for all filters, or for the weaker only"
    )
    pilot_min_visits: int = setting(
        2, ge=1, help="limr, pilot_variance: visits of a question in the pilot to score it"
    )
    stratify: bool = setting(False, help="draw in proportion to subjects")
    allow_short: bool = setting(False, help="take what there is when the pool is short")
    fill_short: bool = setting(
        False, help="fewer candidates than n: fill up with questions drawn at random from the rest (stats: filled)"
    )
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
    return select_filled(pool, labels, config)[0]


def select_filled(pool: Sequence[Record], labels: Any, config: SelectConfig) -> tuple[list[Record], int]:
    """The training set and how many of its questions ``fill_short`` drew at random (the rule's own come first)."""
    rng = random.Random(config.seed)
    pool = sorted(pool, key=lambda r: r.id)  # independent of the order the pool was read in
    strategy = STRATEGIES[config.strategy]
    if strategy.needs and labels is None:
        raise SelectionError(f"strategy {config.strategy} needs " + (
            "a pilot run's question log" if strategy.needs == "pilot" else "filter labels"))  # fmt: skip
    read = [labels] if strategy.needs == "labels" else list(labels.values()) if strategy.needs == "filters" else []
    for rows in read:
        missing = [r.id for r in pool if r.id not in rows]
        if missing:
            raise SelectionError(
                f"{len(missing)} pool questions have no filter label (first: {missing[0]}); "
                "run the filter over the same pool"
            )
    if not config.fill_short:
        return strategy.draw(pool, labels, config, rng), 0
    chosen = strategy.draw(pool, labels, replace(config, allow_short=True), rng)
    short = (config.hard + config.easy if config.strategy == "ratio" else config.n) - len(chosen)
    if short <= 0:
        return chosen, 0
    taken = {r.id for r in chosen}
    rest = [r for r in pool if r.id not in taken]
    filled = _draw(rest, short, rng, config.stratify, "further (fill_short)", config.allow_short)
    return chosen + filled, len(filled)


def with_samples(labels: Mapping[str, Mapping[str, Any]], samples: int) -> dict[str, dict[str, Any]]:
    """A filter's label rows with ``samples``: the k it sampled per question (from its settings), which the
    variance rules read."""
    return {i: {**row, "samples": samples} for i, row in labels.items()}


def label_sets(labels: Any, strategy: str) -> dict[str, Mapping[str, Mapping[str, Any]]]:
    """The filter label sets a strategy read, by name (one filter's is ``filter``): what stats.json profiles."""
    needs = STRATEGIES[strategy].needs
    if labels is None or needs == "pilot":
        return {}
    return dict(labels) if needs == "filters" else {"filter": labels}


def _histogram(values: Sequence[float | None], step: float | None = None) -> dict[str, int]:
    """Counts per value (a filter's pass rates are multiples of 1/k), or per bin of width ``step``; unanswered
    questions (too long for the filter) under "none"."""

    def key(v: float | None) -> str:
        if v is None:
            return "none"
        return f"{(min(int(v / step), int(round(1 / step)) - 1) * step if step else v):.2f}"

    return dict(sorted(Counter(key(v) for v in values).items()))


def stats(chosen: Sequence[Record], labels: Any, dropped: Sequence[dict], strategy: str = "ratio") -> dict:
    """stats.json: the counts, and the selection's profile the report compares strategies by: the selected ids
    (overlaps), the subject mix, and the pass-rate histogram under each filter the strategy read (a pilot
    strategy: the histogram of its questions' mean pilot accuracy, in bins of 0.1)."""
    sets = label_sets(labels, strategy)
    first = next(iter(sets.values()), None)
    out = {
        "selected": len(chosen),
        "by_label": dict(Counter(first[r.id]["label"] for r in chosen)) if first else {},
        "by_subject": dict(sorted(Counter(r.subject for r in chosen).items())),
        "by_answer": dict(sorted(Counter(r.answer for r in chosen).items())),
        "decontamination_dropped": len(dropped),
        "subjects": len({r.subject for r in chosen}),
        "pass_rate_histogram": {
            name: _histogram([rows[r.id]["pass_rate"] for r in chosen]) for name, rows in sets.items()
        },  # fmt: skip
        "ids": sorted(r.id for r in chosen),
    }
    if STRATEGIES[strategy].needs == "pilot" and labels is not None:
        means = [sum(labels[r.id]) / len(labels[r.id]) if labels.get(r.id) else None for r in chosen]
        out["pilot_accuracy_histogram"] = _histogram(means, 0.1)
    return out


def write_selection(
    chosen: Sequence[Record],
    labels,
    dropped: Sequence[dict],
    config: SelectConfig,
    out_dir: str | Path,
    parquet: bool = False,
    filled: int = 0,
) -> Path:
    out = Path(out_dir)
    rows = []
    one = labels if STRATEGIES[config.strategy].needs == "labels" else None
    for r in chosen:
        row = r.to_dict()
        if one:
            row.update(label=one[r.id]["label"], pass_rate=one[r.id]["pass_rate"])
        rows.append(row)
    write_jsonl(out / "train.jsonl", rows)
    profile = stats(chosen, labels, dropped, config.strategy)
    write_json(out / "stats.json", {"config": asdict(config), **profile, "filled": filled})
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
    chosen, filled = select_filled(kept, labels, config)
    return write_selection(chosen, labels, dropped, config, out_dir, parquet=parquet, filled=filled)


def load_selection(path: str | Path) -> list[Record]:
    path = Path(path)
    path = path / "train.jsonl" if path.is_dir() else path
    return [Record.from_dict(row) for row in read_jsonl(path)]
