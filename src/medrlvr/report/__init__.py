"""The report: reads evaluation result files only (never runs a model) and writes Open-Medical-R1's Table 1
(models x benchmarks) as markdown, CSV and LaTeX, radar charts of each benchmark's subjects (its Fig. 3),
per-category bar charts (Fig. 4 to 15), and one self-contained HTML page (charts inlined as SVG).

Input layout: ``RUN/eval/MODEL/BENCHMARK/results.json`` as written by ``medrlvr eval``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from ..data import folder_name
from ..store import read_jsonl


def collect(
    run_dir: str | Path, models: list[str] | None = None, benchmarks: list[str] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """model -> benchmark -> results, from every results.json under RUN/eval (only ``models``, in that order,
    and only ``benchmarks``, when given)."""
    table: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in models or []}
    for path in sorted(Path(run_dir).glob("eval/*/*/results.json")):
        model = path.parent.parent.name
        if models is not None and model not in table:
            continue
        results = json.loads(path.read_text())
        bench = results.get("benchmark", path.parent.name)
        if benchmarks is None or bench in benchmarks:
            table.setdefault(model, {})[bench] = results
    table = {m: per for m, per in table.items() if per}
    if not table:
        raise FileNotFoundError(f"no results under {Path(run_dir) / 'eval'}: run `medrlvr eval` first")
    return table


def paired_table(run_dir: str | Path, table: dict[str, dict[str, dict]], baseline: str) -> list[list[str]]:
    """Each model against ``baseline`` on each benchmark, on the questions both answered: the difference, the
    discordant pairs and the exact McNemar p-value, for accuracy and (generate mode) for well-formed answers that
    name one option."""
    from ..evaluate import eval_dir, paired

    rows = []
    for model, per in table.items():
        if model == baseline:
            continue
        for bench in sorted(per):
            mine = eval_dir(run_dir, model, bench) / "predictions.jsonl"
            theirs = eval_dir(run_dir, baseline, bench) / "predictions.jsonl"
            if not (mine.is_file() and theirs.is_file()):
                continue
            measures = [("accuracy", "correct", "accuracy")]
            if "well_formed_rate" in per[bench]:
                measures.append(("well-formed, names one option", "well_formed", "well_formed_rate"))
            for label, field, summary_key in measures:
                r = paired(theirs, mine, field)
                base = table.get(baseline, {}).get(bench, {}).get(summary_key, float("nan"))
                diff = per[bench][summary_key] - base
                rows.append([model, bench, label, str(r["questions"]), f"{per[bench][summary_key]:.3f}",
                             f"{diff:+.3f}", str(r["only_second_correct"]), str(r["only_first_correct"]),
                             f"{r['p_value']:.3g}"])  # fmt: skip
    return rows


PAIRED_HEADER = ["Model", "Benchmark", "Measure", "Questions", "Rate", "Δ vs base", "Only here", "Only in base"]
PAIRED_HEADER.append("McNemar p")
GENERATE_HEADER = ["Model", "Benchmark", "n", "In format", "Well-formed + one option", "In format, no option",
                   "Extraction failures", "Strict accuracy", "Flexible accuracy"]  # fmt: skip


def generate_table(table: dict[str, dict[str, dict]]) -> list[list[str]]:
    """Generate-mode results: how often the answer is in the prompt's format, how often it is also a committed
    answer (exactly one option, read strictly), how many in-format answers name no option (``<answer> DNA here
    </answer>``: the format reward's blind spot), and both accuracies."""
    rows = []
    for model, per in table.items():
        for bench, res in sorted(per.items()):
            if "well_formed_rate" not in res:
                continue
            lo, hi = res["ci95_well_formed"]
            rows.append([model, bench, str(res["n"]), f"{res['format_rate']:.3f}",
                         f"{res['well_formed_rate']:.3f} [{lo:.3f}, {hi:.3f}]", str(res["formatted_without_option"]),
                         f"{res['extraction_failure_rate']:.3f}", f"{res['accuracy']:.3f}",
                         f"{res['accuracy_flexible']:.3f}"])  # fmt: skip
    return rows


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
        summary.append([name, key, str(last[0]), f"{first[1]:.3f}", f"{last[1]:.3f}", mean_fmt, mean_acc])
    axes[0][0].set_ylabel("mean reward per step")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("training: each reward's mean per step (GRPO)", fontsize=10)
    fig.tight_layout()
    return summary, fig


TRAINING_HEADER = ["Policy", "Metric", "Last step", "First", "Last", "Mean format reward", "Mean accuracy reward"]


def _cell(res: dict[str, Any] | None) -> str:
    if not res:
        return "-"
    lo, hi = res["ci95"]
    return f"{res['accuracy']:.4f} [{lo:.3f}, {hi:.3f}]"


def table1(table: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    benchmarks = sorted({b for per in table.values() for b in per})
    rows = [[model] + [_cell(per.get(b)) for b in benchmarks] for model, per in table.items()]
    return ["Model", *benchmarks], rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def to_latex(header: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    body = "\n".join(" & ".join(esc(c) for c in r) + r" \\" for r in rows)
    return (
        f"\\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}\n\\toprule\n{' & '.join(esc(h) for h in header)} \\\\\n"
        f"\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}\n"
    )


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


def report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    models: list[str] | None = None,
    baseline: str | None = None,
    title: str = "medrlvr report",
    benchmarks: list[str] | None = None,
) -> Path:
    """Write RUN/report/{table1.md,csv,tex, *.png, *.svg, index.html}; returns the report folder. ``models``
    limits and orders the rows; ``baseline`` (e.g. ``base``) adds paired tests of every other model against it;
    training curves are drawn from RUN/train/*/metrics.jsonl when there are any."""
    table = collect(run_dir, models, benchmarks)
    out = Path(out_dir or Path(run_dir) / "report")
    out.mkdir(parents=True, exist_ok=True)
    header, rows = table1(table)
    (out / "table1.md").write_text(to_markdown(header, rows))
    (out / "table1.tex").write_text(to_latex(header, rows))
    _write_csv(out / "table1.csv", table)
    paired_rows = paired_table(run_dir, table, baseline) if baseline and baseline in table else []
    if paired_rows:
        (out / "paired.md").write_text(to_markdown(PAIRED_HEADER, paired_rows))
    generate_rows = generate_table(table)
    if generate_rows:
        (out / "generate.md").write_text(to_markdown(GENERATE_HEADER, generate_rows))
    training_rows, training_fig = training_summary(run_dir, models)
    if training_rows:
        (out / "training.md").write_text(to_markdown(TRAINING_HEADER, training_rows))
    figures = [("training", training_fig)]
    for bench in header[1:]:
        stem = folder_name(bench)
        figures += [(f"radar_{stem}", radar(table, bench)), (f"categories_{stem}", bars(table, bench))]
    svgs = _save_figures(out, figures)
    sections = f"<h2>Table 1</h2>{html_table(header, rows)}"
    if generate_rows:
        sections += f"<h2>Generate mode: format and committed answers</h2>{html_table(GENERATE_HEADER, generate_rows)}"
    if paired_rows:
        sections += f"<h2>Against the base model (paired, exact McNemar)</h2>{html_table(PAIRED_HEADER, paired_rows)}"
    if training_rows:
        sections += f"<h2>Training</h2>{html_table(TRAINING_HEADER, training_rows)}"
    charts = "".join(
        f"<figure>{svg[svg.find('<svg') :]}<figcaption>{html.escape(stem)}</figcaption></figure>" for stem, svg in svgs
    )
    (out / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}figure{display:inline-block;margin:1em}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Accuracy with 95% Wilson intervals. Source: "
        f"{html.escape(str(run_dir))}/eval</p>{sections}<h2>Charts</h2>{charts}</body></html>\n"
    )
    return out


def _write_csv(path: Path, table: dict[str, dict[str, dict]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "benchmark", "accuracy", "ci95_low", "ci95_high", "n"])
        for model, per in table.items():
            for bench, res in sorted(per.items()):
                low, high = res["ci95"]
                writer.writerow([model, bench, f"{res['accuracy']:.4f}", f"{low:.4f}", f"{high:.4f}", res["n"]])


def _save_figures(out: Path, figures: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Each figure as STEM.png and STEM.svg; returns (stem, svg text) for the HTML page."""
    svgs = []
    for stem, fig in figures:
        if fig is None:
            continue
        import matplotlib.pyplot as plt

        fig.savefig(out / f"{stem}.png", dpi=120, bbox_inches="tight")
        fig.savefig(out / f"{stem}.svg", bbox_inches="tight")
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", bbox_inches="tight")
        svgs.append((stem, buffer.getvalue()))
        plt.close(fig)
    return svgs


def html_table(head: list[str], body: list[list[str]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"
