"""The report: reads evaluation result files only (never runs a model) and writes Open-Medical-R1's Table 1
(models x benchmarks) as markdown, CSV and LaTeX, radar charts of each benchmark's subjects (its Fig. 3),
per-category bar charts (Fig. 4 to 15), and one self-contained HTML page (charts inlined as SVG).

Input layout: ``RUN/eval/MODEL/BENCHMARK/results.json`` as written by ``medrlvr eval``.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from .charts import TRAINING_HEADER, bars, radar, training_summary
from .tables import (
    GENERATE_HEADER,
    PAIRED_HEADER,
    collect,
    generate_table,
    paired_table,
    table1,
    to_latex,
    to_markdown,
)

__all__ = ["collect", "generate_table", "paired_table", "report", "table1", "training_summary"]


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
    with open(out / "table1.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "benchmark", "accuracy", "ci95_low", "ci95_high", "n"])
        for model, per in table.items():
            for bench, res in sorted(per.items()):
                writer.writerow(
                    [
                        model,
                        bench,
                        f"{res['accuracy']:.4f}",
                        f"{res['ci95'][0]:.4f}",
                        f"{res['ci95'][1]:.4f}",
                        res["n"],
                    ]
                )
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
        stem = bench.replace(":", "_")
        figures += [(f"radar_{stem}", radar(table, bench)), (f"categories_{stem}", bars(table, bench))]
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

    def html_table(head: list[str], body: list[list[str]]) -> str:
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
        return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"

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
