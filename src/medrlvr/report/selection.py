"""Report sections over selection strategies: which rule chose each training set (``RUN/select/NAME/stats.json``),
how the policies trained on them compare with random selection of the same size (accuracy and well-formed rate
per strategy, spread over seeds, Welch's t and a permutation test over seeds, McNemar on the questions of matched
seeds), and what each selection looks like: its difficulty under every filter that labelled the pool
(``RUN/filter/NAME/labels.jsonl``), its subject mix, and its overlap (Jaccard) with the other selections. Reads run
files only (``arms.json``, ``manifest.json`` for the pilots, stats.json, labels.jsonl, results and predictions).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..stats import compare_seeds
from ..store import read_jsonl
from .arms import _measures, _paired_p, arm_values
from .baselines import gain_verdict
from .trust import letter_rows, predictions

STRATEGY_HEADER = ["Strategy (arm)", "Selection", "Questions", "Benchmark", "Measure", "Seeds", "Mean ± std",
                   "Min-max", "Against", "Difference", "Welch p", "Permutation p", "McNemar p (matched seeds)",
                   "Verdict"]  # fmt: skip
PROFILE_HEADER = ["Selection", "Strategy", "Questions", "Filled at random", "Subjects", "Top subjects", "Mean pass rate by filter",
                  "Share at pass rate 0 / 1 (reference filter)"]  # fmt: skip


def selections(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """selection name -> its stats.json (with ``ids`` read from train.jsonl where an old stats.json lacks them)."""
    out = {}
    for path in sorted(Path(run_dir).glob("select/*/stats.json")):
        stats = json.loads(path.read_text())
        if "ids" not in stats and (path.parent / "train.jsonl").is_file():
            stats["ids"] = sorted(row["id"] for row in read_jsonl(path.parent / "train.jsonl"))
        out[path.parent.name] = stats
    return out


def filter_rates(run_dir: str | Path) -> dict[str, dict[str, float | None]]:
    """filter name -> question id -> pass rate, from every filter run of the study."""
    out = {}
    for path in sorted(Path(run_dir).glob("filter/*/labels.jsonl")):
        out[path.parent.name] = {row["id"]: row.get("pass_rate") for row in read_jsonl(path, unique="id")}
    return out


def _filter_k(run_dir: str | Path, name: str) -> int:
    config = Path(run_dir) / "filter" / name / "config.json"
    return int(json.loads(config.read_text()).get("k", 1)) if config.is_file() else 1


def reference_filter(run_dir: str | Path, rates: dict[str, dict]) -> str | None:
    """The filter whose pass rates the difficulty histograms share: the one with the most samples per question (the
    finest pass rates: the policy as its own filter, where a recipe has one), the first named among equals."""
    return max(rates, key=lambda name: _filter_k(run_dir, name)) if rates else None


def _pilots(run_dir: str | Path) -> set[str]:
    """The policies the recipe trained as pilots (select entries' ``pilot``), from the manifest's resolved recipe."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return set()
    select = (json.loads(path.read_text()).get("resolved") or {}).get("select") or {}
    return {entry["pilot"] for entry in select.values() if isinstance(entry, dict) and entry.get("pilot")}


def _arm_kinds(run_dir, arms, chosen) -> dict[str, dict[str, Any]]:
    """Each arm trained on a selection with stats: its strategy, size, and whether it is a control or a pilot."""
    pilots = _pilots(run_dir)
    kinds = {}
    for name, arm in arms.items():
        stats = chosen.get(arm.get("selection") or "")
        if not stats:
            continue
        kinds[name] = {"strategy": stats.get("config", {}).get("strategy", "?"), "size": stats.get("selected"),
                       "selection": arm["selection"], "control": arm.get("control"),
                       "pilot": bool(set(arm.get("policies", [])) & pilots)}  # fmt: skip
    return kinds


def _reference(kinds: dict[str, dict], name: str) -> str | None:
    """The random arm (not a control, not a pilot) of the same size, else of the nearest size."""
    randoms = [n for n, k in kinds.items() if k["strategy"] == "random" and not k["control"] and not k["pilot"]]
    if not randoms or name in randoms:
        return None
    size = kinds[name]["size"] or 0
    return min(randoms, key=lambda n: (abs((kinds[n]["size"] or 0) - size), n))


def _p(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3g}"


def _verdict(welch: float | None, perm: float | None, mcnemar: float | None, seeds: int) -> str:
    """Seeds are the unit of replication: a difference "over seeds" needs Welch's or the permutation test; McNemar
    alone (seeds pooled as more questions) is said as such, since it overstates certainty."""
    few = {1: " (1 seed: no test over seeds)", 2: " (2 seeds: a permutation p is never below 1/3)"}.get(seeds, "")
    if any(p is not None and p == p and p < 0.05 for p in (welch, perm)):
        return "differs over seeds (p < 0.05)"
    if mcnemar is not None and mcnemar < 0.05:
        return "differs on the questions (McNemar), not shown over seeds" + few
    return "no difference shown" + few if any(p is not None for p in (welch, perm, mcnemar)) else "n/a"


def letter_floor(run_dir, policies: list[str], bench: str) -> str | None:
    """Why an arm's multiple-choice accuracy on ``bench`` is no gain, when it is none in every seed: the first reason
    of :func:`medrlvr.report.baselines.gain_verdict` (not above chance, not above always answering the golds' most
    frequent letter, not unlike answering its own favourite letter) for the first seed, named (the arm's mean can
    differ from that seed's accuracy); None when some seed is above all three, or the benchmark is not multiple
    choice."""
    reasons = []
    for policy in policies:
        rows = predictions(run_dir, policy, bench)
        letters = letter_rows(rows) if rows else None
        if letters is None:
            return None
        verdict = gain_verdict(*letters)
        if not verdict["trivial"]:
            return None
        reasons.append(f"{policy}: {verdict['reasons'][0]}")
    return reasons[0] if reasons else None


def strategy_rows(run_dir, table, arms) -> list[list[str]]:
    """Every arm trained on a selection, per benchmark and measure: its mean and spread over seeds, and against the
    random arm of its size the difference, Welch's t and permutation p over seeds, McNemar on matched seeds. An
    accuracy that a letter prior earns (:func:`letter_floor`, for the arm or the random arm it is set against) says so
    in the verdict before any difference: two arms below chance can differ from each other and still have learned
    nothing. An arm whose selection holds the same questions as the random arm's (a rule that keeps the whole pool
    when every filter failed every question, then samples with random's seed) says so first: the two trained on
    the same data, and a difference between them is not the rule's."""
    chosen = selections(run_dir)
    kinds = _arm_kinds(run_dir, arms, chosen)
    rows = []
    order = sorted(
        kinds, key=lambda n: (kinds[n]["pilot"], bool(kinds[n]["control"]), kinds[n]["strategy"] != "random", n)
    )
    for name in order:
        kind, arm = kinds[name], arms[name]
        ref = None if kind["pilot"] else _reference(kinds, name)
        label = name + (" (pilot)" if kind["pilot"] else f" (control: {kind['control']})" if kind["control"] else "")
        benches = sorted({b for p in arm["policies"] for b in table.get(p, {})})
        for bench in benches:
            for measure, key in _measures(table[arm["policies"][0]].get(bench, {})):
                values = arm_values(table, arm, bench, key)
                if not values:
                    continue
                mean = sum(values) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
                row = [label, kind["selection"], str(kind["size"]), bench, measure, str(len(values)),
                       f"{mean:.3f} ± {sd:.3f}", f"{min(values):.3f}-{max(values):.3f}"]  # fmt: skip
                theirs = arm_values(table, arms[ref], bench, key) if ref else []
                if not theirs:
                    plain = kind["strategy"] == "random" and not kind["pilot"] and not kind["control"]
                    rows.append(row + ["-", "-", "-", "-", "-", "reference" if plain else "-"])
                    continue
                c = compare_seeds(values, theirs)
                both = len(values) > 1 and len(theirs) > 1
                welch = c["welch"]["p_value"] if both else None
                perm = c["permutation"]["p_value"] if both else None
                field = "correct" if key == "accuracy" else "well_formed"
                mcnemar = _paired_p(run_dir, arm, arms[ref], bench, field)
                sizes = "" if kinds[ref]["size"] == kind["size"] else f" (size {kinds[ref]['size']})"
                verdict = _verdict(welch, perm, mcnemar, min(len(values), len(theirs)))
                floor = letter_floor(run_dir, arm["policies"], bench) if key == "accuracy" else None
                ref_floor = letter_floor(run_dir, arms[ref]["policies"], bench) if key == "accuracy" else None
                if floor and ref_floor:
                    verdict = f"no gain in either arm: {floor} (against random: {verdict})"
                elif floor:
                    verdict = f"no gain: {floor} (against random: {verdict})"
                ids, ref_ids = (set(chosen[kinds[n]["selection"]].get("ids", [])) for n in (name, ref))
                if ids and ids == ref_ids and kind["selection"] != kinds[ref]["selection"]:  # a control shares it
                    verdict = (
                        f"same {len(ids)} questions as {ref}'s selection (the rule chose what random did); {verdict}"
                    )
                rows.append(row + [ref + sizes, f"{c['difference']:+.3f}", _p(welch), _p(perm), _p(mcnemar),
                                   verdict])  # fmt: skip
    return rows


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def profile_rows(run_dir) -> tuple[list[list[str]], list[str], list[list[str]]]:
    """Each selection's profile, and the Jaccard overlap matrix (header and rows) between selections."""
    chosen = selections(run_dir)
    rates = filter_rates(run_dir)
    ref = reference_filter(run_dir, rates)
    rows = []
    for name, stats in chosen.items():
        ids = stats.get("ids", [])
        subjects = Counter(stats.get("by_subject", {}))
        top = ", ".join(f"{s} {c}" for s, c in subjects.most_common(3))
        means = []
        for f, by_id in rates.items():
            known = [by_id[i] for i in ids if by_id.get(i) is not None]
            means.append(f"{f} {sum(known) / len(known):.2f}" if known else f"{f} -")
        ends = "-"
        if ref:
            known = [rates[ref][i] for i in ids if rates[ref].get(i) is not None]
            if known:
                zero, one = (sum(v == end for v in known) / len(known) for end in (0, 1))
                ends = f"{zero:.2f} / {one:.2f} ({ref})"
        rows.append([name, stats.get("config", {}).get("strategy", "?"), str(stats.get("selected", len(ids))),
                     str(stats.get("filled", 0)), str(len(subjects)), top, "; ".join(means) or "-", ends])  # fmt: skip
    names = list(chosen)
    sets = {n: set(chosen[n].get("ids", [])) for n in names}
    matrix = [[n] + [f"{jaccard(sets[n], sets[m]):.2f}" for m in names] for n in names]
    return rows, ["Jaccard", *names], matrix


def strategy_figure(table, arms, run_dir):
    """Accuracy and well-formed rate per strategy arm, each seed a dot and the mean a bar, one panel per benchmark;
    random selection's mean as a dashed line."""
    kinds = _arm_kinds(run_dir, arms, selections(run_dir))
    names = [n for n in sorted(kinds, key=lambda n: (kinds[n]["strategy"] != "random", n)) if not kinds[n]["pilot"]]
    if len(names) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = sorted({b for n in names for p in arms[n]["policies"] for b in table.get(p, {})})
    fig, axes = plt.subplots(1, len(benches), figsize=(max(5, 0.7 * len(names)) * len(benches) ** 0.5 + 2, 3.8),
                             squeeze=False)  # fmt: skip
    for ax, bench in zip(axes[0], benches):
        for offset, (measure, key, color) in enumerate((("accuracy", "accuracy", "C0"),
                                                        ("well-formed", "well_formed_rate", "C1"))):  # fmt: skip
            for x, n in enumerate(names):
                values = arm_values(table, arms[n], bench, key)
                if not values:
                    continue
                pos = x + (offset - 0.5) * 0.38
                ax.bar(pos, sum(values) / len(values), width=0.36, color=color, alpha=0.45,
                       label=measure if x == 0 else None)  # fmt: skip
                ax.scatter([pos] * len(values), values, color=color, s=12, zorder=3)
        randoms = [n for n in names if kinds[n]["strategy"] == "random" and not kinds[n]["control"]]
        for r in randoms[:1]:
            values = arm_values(table, arms[r], bench, "accuracy")
            if values:
                ax.axhline(
                    sum(values) / len(values), linestyle="--", color="gray", label=f"{r} selection: mean accuracy"
                )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(bench, fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("selection strategies: mean over seeds (bars), each seed (dots)", fontsize=10)
    fig.tight_layout()
    return fig


def profile_figure(run_dir):
    """Per selection: its pass-rate histogram under the reference filter, its subject mix, and the Jaccard overlap
    heatmap."""
    chosen = selections(run_dir)
    if len(chosen) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = filter_rates(run_dir)
    ref = reference_filter(run_dir, rates)
    names = list(chosen)
    fig, (hist, mix, heat) = plt.subplots(1, 3, figsize=(16, 0.35 * len(names) + 2.5))
    if ref:
        values = sorted({v for v in rates[ref].values() if v is not None})
        left = [0.0] * len(names)
        for j, v in enumerate(values):
            counts = [sum(rates[ref].get(i) == v for i in chosen[n].get("ids", [])) for n in names]
            hist.barh(range(len(names)), counts, left=left, color=plt.cm.viridis(j / max(1, len(values) - 1)),
                      label=f"{v:.2f}")  # fmt: skip
            left = [a + b for a, b in zip(left, counts)]
        hist.set_yticks(range(len(names)))
        hist.set_yticklabels(names, fontsize=7)
        hist.set_xlabel("questions")
        hist.set_title(f"pass rate under filter {ref}", fontsize=9)
        hist.legend(fontsize=6, title="pass rate", title_fontsize=6)
    _subject_mix(mix, chosen, names, plt)
    sets = [set(chosen[n].get("ids", [])) for n in names]
    grid = [[jaccard(a, b) for b in sets] for a in sets]
    image = heat.imshow(grid, vmin=0, vmax=1, cmap="Blues")
    heat.set_xticks(range(len(names)))
    heat.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    heat.set_yticks(range(len(names)))
    heat.set_yticklabels(names, fontsize=7)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            heat.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.6 else "black")
    heat.set_title("overlap between selections (Jaccard)", fontsize=9)
    fig.colorbar(image, ax=heat, fraction=0.04)
    fig.tight_layout()
    return fig


def _subject_mix(ax, chosen, names, plt, shown: int = 8) -> None:
    """Each selection's questions by subject (stacked; the ``shown`` commonest subjects overall, the rest as other)."""
    total = Counter()
    for n in names:
        total.update(chosen[n].get("by_subject", {}))
    top = [s for s, _ in total.most_common(shown)]
    left = [0] * len(names)
    for j, subject in enumerate([*top, "other"]):
        counts = [sum(c for s, c in chosen[n].get("by_subject", {}).items() if (s == subject) == (subject != "other")
                      and (subject != "other" or s not in top)) for n in names]  # fmt: skip
        if any(counts):
            ax.barh(range(len(names)), counts, left=left, color=plt.cm.tab10(j % 10), label=subject)
        left = [a + b for a, b in zip(left, counts)]
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("questions")
    ax.set_title("subject mix", fontsize=9)
    ax.legend(fontsize=6)
