"""Report sections over arms (``RUN/arms.json``, written by the study): each arm's mean and between-seed spread,
differences between arms tested against seed variance, the random-reward control, and sweeps (accuracy and
well-formed rate against each swept value, paired tests of adjacent points and of each point against random
selection of the same size). Reads result files only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..stats import compare_seeds, mcnemar, t_two_sided_p
from .trust import predictions

SEEDS_HEADER = ["Arm", "Benchmark", "Measure", "Seeds", "Mean", "Std", "Min-max", "95% CI of the mean", "Control"]
COMPARE_HEADER = ["Arm", "Against", "Benchmark", "Measure", "Difference", "Welch t (df), p", "Permutation p",
                  "Paired McNemar p (questions x matched seeds)"]  # fmt: skip
PASS_HEADER = ["Model", "Benchmark", "Samples", "pass@1", "pass@k [95% CI]"]


def load_arms(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(run_dir) / "arms.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _measures(per_bench: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("accuracy", "accuracy")]
    if "well_formed_rate" in per_bench:
        out.append(("well-formed", "well_formed_rate"))
    return out


def _t_interval(values: list[float]) -> tuple[float, float] | None:
    """95% t interval of a mean over seeds (None with one seed)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    lo, hi = 0.0, 100.0  # the t quantile by bisection on the two-sided p (no scipy needed)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided_p(mid, n - 1) > 0.05 else (lo, mid)
    half = hi * sd / math.sqrt(n)
    return mean - half, mean + half


def arm_values(table, arm: dict[str, Any], bench: str, key: str) -> list[float]:
    return [table[p][bench][key] for p in arm["policies"] if bench in table.get(p, {}) and key in table[p][bench]]


def seeds_rows(table, arms) -> list[list[str]]:
    rows = []
    for name, arm in arms.items():
        benches = sorted({b for p in arm["policies"] for b in table.get(p, {})})
        for bench in benches:
            for label, key in _measures(table[arm["policies"][0]].get(bench, {})):
                values = arm_values(table, arm, bench, key)
                if not values:
                    continue
                mean = sum(values) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
                ci = _t_interval(values)
                rows.append([name, bench, label, str(len(values)), f"{mean:.3f}", f"{sd:.3f}",
                             f"{min(values):.3f}-{max(values):.3f}", f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-",
                             arm.get("control") or ""])  # fmt: skip
    return rows


def _paired_p(run_dir, a: dict, b: dict, bench: str, field: str) -> float | None:
    """Exact McNemar on the questions of every matched seed pair (seed i of one arm with seed i of the other)."""
    first, second = [], []
    for pa, pb in zip(a["policies"], b["policies"]):
        ra, rb = predictions(run_dir, pa, bench), predictions(run_dir, pb, bench)
        if not ra or not rb:
            return None
        by_id = {r["id"]: r for r in rb}
        for r in ra:
            if r["id"] in by_id and field in r:
                first.append(bool(r[field]))
                second.append(bool(by_id[r["id"]][field]))
    return mcnemar(first, second)["p_value"] if first else None


def _pairs(arms: dict[str, dict]) -> list[tuple[str, str]]:
    """Which arms to compare: in a sweep, adjacent grid points, each point against random selection of its size and
    against the random-reward control; otherwise every arm against the control and against the first arm."""
    names = list(arms)
    pairs = []
    sweeps = {a.get("sweep") for a in arms.values() if a.get("sweep")}
    for sweep in sweeps:
        points = [n for n in names if arms[n].get("sweep") == sweep and "random_of_size" not in arms[n]]
        pairs += list(zip(points[1:], points[:-1]))
        randoms = {arms[n]["random_of_size"]: n for n in names if "random_of_size" in arms[n]}
        for n in points:
            size = arms[n].get("size")
            if size in randoms:
                pairs.append((n, randoms[size]))
    rest = [n for n in names if not arms[n].get("sweep")]
    controls = [n for n in rest if arms[n].get("control")]
    for sweep in sweeps:  # each grid point against the control as well: what the rewards add to training itself
        pairs += [(n, c) for n in names if arms[n].get("sweep") == sweep for c in controls]
    for n in rest:
        pairs += [(n, c) for c in controls if c != n]
        if rest and n != rest[0] and n not in controls and (n, rest[0]) not in pairs:
            pairs.append((n, rest[0]))
    return pairs


def compare_rows(run_dir, table, arms) -> list[list[str]]:
    rows = []
    for a, b in _pairs(arms):
        benches = sorted({x for p in arms[a]["policies"] for x in table.get(p, {})})
        for bench in benches:
            for label, key in _measures(table[arms[a]["policies"][0]].get(bench, {})):
                va, vb = arm_values(table, arms[a], bench, key), arm_values(table, arms[b], bench, key)
                if not va or not vb:
                    continue
                c = compare_seeds(va, vb)
                w, perm = c["welch"], c["permutation"]
                welch = f"{w['t']:.2f} ({w['df']:.1f}), {w['p_value']:.3g}" if len(va) > 1 and len(vb) > 1 else "-"
                field = "correct" if key == "accuracy" else "well_formed"
                p = _paired_p(run_dir, arms[a], arms[b], bench, field)
                rows.append([a, b, bench, label, f"{c['difference']:+.3f}", welch,
                             f"{perm['p_value']:.3g}" if len(va) > 1 and len(vb) > 1 else "-",
                             "-" if p is None else f"{p:.3g}"])  # fmt: skip
    return rows


def pass_rows(table) -> list[list[str]]:
    rows = []
    for model, per in table.items():
        for bench, res in sorted(per.items()):
            for k, est in sorted((res.get("pass_at_k") or {}).items(), key=lambda kv: int(kv[0])):
                if int(k) == 1:
                    continue
                lo, hi = est["ci"]
                one = res["pass_at_k"].get("1", {}).get("mean", float("nan"))
                rows.append([model, bench, str(res.get("samples", "")), f"{one:.3f}",
                             f"pass@{k} {est['mean']:.3f} [{lo:.3f}, {hi:.3f}]"])  # fmt: skip
    return rows


def sweep_figure(table, arms, sweep: str):
    """Accuracy (and well-formed rate) of each grid point, mean over seeds with a 95% t interval (one seed: its
    Wilson interval), against the point's values; random selection of the same size as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [n for n, a in arms.items() if a.get("sweep") == sweep and "random_of_size" not in a]
    randoms = [n for n, a in arms.items() if a.get("sweep") == sweep and "random_of_size" in a]
    if not points:
        return None
    benches = sorted({b for n in points for p in arms[n]["policies"] for b in table.get(p, {})})
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 3.6), squeeze=False)
    labels = [n.removeprefix(f"{sweep}-") for n in points]
    for ax, bench in zip(axes[0], benches):
        for label, key in (("accuracy", "accuracy"), ("well-formed", "well_formed_rate")):
            means, errs = _series(table, arms, points, bench, key)
            if not all(math.isnan(m) for m in means):
                ax.errorbar(range(len(points)), means, yerr=errs, marker="o", capsize=3, label=label)
        for r in randoms:
            values = arm_values(table, arms[r], bench, "accuracy")
            if values:
                ax.axhline(sum(values) / len(values), linestyle="--", color="gray", label=f"{r} accuracy")
        ax.set_xticks(range(len(points)))
        ax.set_xticklabels(labels, rotation=25, fontsize=7, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(bench, fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"sweep {sweep}: mean over seeds, 95% interval", fontsize=10)
    fig.tight_layout()
    return fig


def _series(table, arms, points, bench, key) -> tuple[list[float], list[list[float]]]:
    means, low, high = [], [], []
    for n in points:
        values = arm_values(table, arms[n], bench, key)
        if not values:
            means.append(float("nan"))
            low.append(0.0)
            high.append(0.0)
            continue
        mean = sum(values) / len(values)
        ci = _t_interval(values)
        if ci is None:
            res = table[arms[n]["policies"][0]][bench]
            ci = res["ci95"] if key == "accuracy" else res.get("ci95_well_formed", (mean, mean))
        means.append(mean)
        low.append(max(0.0, mean - ci[0]))
        high.append(max(0.0, ci[1] - mean))
    return means, [low, high]
