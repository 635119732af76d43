"""Report charts (matplotlib, Agg): training reward curves, radar charts of subjects (Open-Medical-R1's Fig. 3),
per-category bars with 95% intervals (its Fig. 4-15)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..store import read_jsonl
from .dynamics import find_stages

REWARD_CURVES = (
    ("rewards/format_reward/mean", "format"),
    ("rewards/accuracy_reward/mean", "accuracy"),
    ("rewards/xml_count_reward/mean", "xml_count"),
    ("rewards/choice_reward/mean", "choice (names one option)"),
    ("frac_reward_zero_std", "groups with no gradient"),
)


def training_summary(run_dir: str | Path, models: list[str] | None = None) -> tuple[list[list[str]], Any]:
    """Per trained policy: steps, first and last logged mean reward, and a chart with one panel per policy holding
    its per-step reward curves (format, accuracy, xml_count, and any other logged reward)."""
    runs = {}
    for path in sorted(Path(run_dir).glob("train/*/metrics.jsonl")):
        if models is not None and path.parent.name not in models:
            continue
        rows = list(read_jsonl(path))
        rows = [r for r in rows if "reward" in r or "loss" in r]
        if rows:
            runs[path.parent.name] = rows
    if not runs:
        return [], None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = []
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), sharey=True, squeeze=False)
    for ax, (name, rows) in zip(axes[0], runs.items()):
        key = "reward" if any("reward" in r for r in rows) else "loss"
        points = [(r["step"], r[key]) for r in rows if key in r]
        curves = [(k, label) for k, label in REWARD_CURVES if any(k in r for r in rows)]
        for k, label in curves:
            series = [(r["step"], r[k]) for r in rows if r.get(k) is not None]
            ax.plot([x for x, _ in series], [y for _, y in series], label=label,
                    linestyle=":" if k == "frac_reward_zero_std" else "-")  # fmt: skip
        if not curves:
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=key)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.05 if curves else None)
        fmt = [r["rewards/format_reward/mean"] for r in rows if "rewards/format_reward/mean" in r]
        acc = [r["rewards/accuracy_reward/mean"] for r in rows if "rewards/accuracy_reward/mean" in r]
        mean_fmt = f"{sum(fmt) / len(fmt):.3f}" if fmt else "-"
        mean_acc = f"{sum(acc) / len(acc):.3f}" if acc else "-"
        first, last = points[0], points[-1]
        gap = [r[GAP] for r in rows if r.get(GAP) is not None]
        gap_text = f"{min(gap):.4f}-{max(gap):.4f}" if gap else "-"
        summary.append([name, key, str(last[0]), f"{first[1]:.3f}", f"{last[1]:.3f}", mean_fmt, mean_acc, gap_text])
    axes[0][0].set_ylabel("mean reward per step")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("training: each reward's mean per step (GRPO)", fontsize=10)
    fig.tight_layout()
    return summary, fig


TRAINING_HEADER = ["Policy", "Metric", "Last step", "First", "Last", "Mean format reward", "Mean accuracy reward",
                   "Sampler/trainer log-prob gap (per-step mean, range)"]  # fmt: skip
GAP = "sampling/sampling_logp_difference/mean"


def radar(table: dict[str, dict[str, dict]], benchmark: str, key: str = "by_subject"):
    """A radar chart of one benchmark's subjects (or categories), one line per model; None with < 3 axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    axes = sorted({s for per in table.values() for s in per.get(benchmark, {}).get(key, {})})
    if len(axes) < 3:
        return None
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False).tolist()
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="polar")
    for model, per in table.items():
        groups = per.get(benchmark, {}).get(key, {})
        values = [groups.get(a, {}).get("accuracy", 0.0) for a in axes]
        ax.plot(angles + angles[:1], values + values[:1], label=model)
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels([a.replace("_", " ") for a in axes], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"{benchmark}: accuracy by {key.removeprefix('by_')}")
    ax.legend(loc="lower right", fontsize=7, bbox_to_anchor=(1.25, -0.1))
    return fig


def bars(table: dict[str, dict[str, dict]], benchmark: str):
    """Per-category bars (each model a colour) with 95% interval whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = sorted({c for per in table.values() for c in per.get(benchmark, {}).get("by_category", {})})
    if not cats:
        return None
    fig, ax = plt.subplots(figsize=(max(5, len(cats) * 1.2), 4))
    width = 0.8 / max(1, len(table))
    for i, (model, per) in enumerate(table.items()):
        groups = per.get(benchmark, {}).get("by_category", {})
        acc = [groups.get(c, {}).get("accuracy", 0.0) for c in cats]
        err = [
            [a - groups.get(c, {}).get("ci95", (a, a))[0] for c, a in zip(cats, acc)],
            [groups.get(c, {}).get("ci95", (a, a))[1] - a for c, a in zip(cats, acc)],
        ]
        ax.bar(np.arange(len(cats)) + i * width, acc, width, yerr=err, capsize=2, label=model)
    ax.set_xticks(np.arange(len(cats)) + width * (len(table) - 1) / 2)
    ax.set_xticklabels([c.replace("_", " ") for c in cats], rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{benchmark}: accuracy by category (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_dynamics(steps: Sequence[dict] | dict[str, Any], path: str | Path, title: str = "") -> list[Path]:
    """Smoothed well-formed, top-letter (also where the gold is another letter), leaked, empty-reasoning and hacked
    shares, mean length and entropy against step, stage starts as vertical lines; ``steps`` is a :func:`step_table`
    or :func:`find_stages` result. Writes PATH.png and PATH.svg and returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = steps if isinstance(steps, Mapping) else find_stages(steps)
    rows = stages["per_step"]
    x = [r["step"] for r in rows]
    ppo = any(r.get("ppo/value_loss") is not None for r in rows)  # a PPO run: a fourth panel for its critic
    fig, axes = plt.subplots(4 if ppo else 3, 1, figsize=(8, 10.5 if ppo else 8), sharex=True)
    series = {"well_formed": ("well-formed", "-"), "top_share": ("top-letter share", "-"),
              "collapse_share": ("top letter where gold differs", "--"), "leaked": ("leaked answer", ":"),
              "empty_reasoning": ("empty reasoning", "-."), "hacked": ("hacked", (0, (1, 3)))}  # fmt: skip
    for key, (label, style) in series.items():
        values = [r.get(key) if r.get(key) is not None else float("nan") for r in rows]
        axes[0].plot(x, values, label=label, linestyle=style)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("share")
    axes[1].plot(x, [r.get("mean_tokens") or float("nan") for r in rows], color="tab:purple")
    axes[1].set_ylabel("mean length (tokens)")
    axes[2].plot(x, [r.get("entropy", float("nan")) for r in rows], color="tab:gray", label="entropy")
    axes[2].set_ylabel("entropy")
    gap = [r.get("sampling/sampling_logp_difference/mean", float("nan")) for r in rows]
    if any(g == g for g in gap):  # the sampler/trainer log-prob gap, where the rollouts reported log-probs
        twin = axes[2].twinx()
        twin.plot(x, gap, color="tab:red", linestyle="--", label="sampler/trainer |log-prob gap|")
        twin.set_ylabel("mean |log-prob gap|", color="tab:red")
        twin.legend(fontsize=7, loc="upper right")
    if ppo:
        _plot_critic(axes[3], x, rows)
    axes[-1].set_xlabel("step")
    for ax in axes:
        for seg in stages["segments"]:
            ax.axvline(seg["start"], color="black", linestyle=":", linewidth=0.8)
    for seg in stages["segments"]:
        axes[0].annotate(seg["stage"], (seg["start"], 1.02), fontsize=7, rotation=30, annotation_clip=False)
    axes[0].legend(fontsize=7, loc="center right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the name is added to, not cut at its last dot: an arm's name holds values such as 0.0005
    out = [path.with_name(f"{path.name}.png"), path.with_name(f"{path.name}.svg")]
    for p in out:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return out


def _plot_critic(ax, x, rows) -> None:
    """PPO's critic per step: its value loss, explained variance of the returns, and the value and return means."""

    def series(key):
        return [r.get(key) if r.get(key) is not None else float("nan") for r in rows]

    ax.plot(x, series("ppo/value_loss"), color="tab:blue", label="value loss")
    ax.plot(x, series("ppo/value_mean"), color="tab:green", linestyle="--", label="value mean")
    ax.plot(x, series("ppo/return_mean"), color="tab:olive", linestyle=":", label="return mean")
    ax.set_ylabel("critic")
    twin = ax.twinx()
    twin.plot(x, series("ppo/explained_variance"), color="tab:orange", label="explained variance")
    twin.set_ylabel("explained variance", color="tab:orange")
    ax.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")
