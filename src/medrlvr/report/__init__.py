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
from typing import Any

from ..data import folder_name
from . import arms as arm_sections
from . import circular, probes, trust
from . import selection as selection_sections
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
    training curves and dynamics are drawn from RUN/train/*/{metrics,completions}.jsonl when there are any.

    Before any gain: every multiple-choice accuracy is set against chance and constant answers (``baselines.md``),
    a model whose generate-mode answers collapsed onto one letter, hacked the format or never answer in it is
    flagged in Table 1, and each policy's training stages are in ``dynamics.md``. The robustness probes a benchmark
    ran have a table each (:mod:`medrlvr.report.probes`: ``split.md``, ``prefill.md``, ``open_form.md``). Benchmarks
    evaluated with ``circular`` get ``circular.md`` (accuracy right under every rotation, position bias), a
    ``position_bias`` flag where one position is chosen well above its share of the golds, and a baseline reason
    where the circular accuracy is not above chance."""
    table = collect(run_dir, models, benchmarks)
    out = Path(out_dir or Path(run_dir) / "report")
    out.mkdir(parents=True, exist_ok=True)
    flags = trust.flags(run_dir, table)
    for model, found in circular.flags(table).items():  # position bias, read from circular evaluations
        flags.setdefault(model, []).extend(found)
    header, rows = table1(table)
    benches = header[1:]
    if flags:  # a column of its own: the model's name stays its name (CSV, LaTeX and scripts read it)
        header = [*header, "Flags"]
        rows = [[*row, trust.flag_label(flags.get(row[0], [])).strip() or "-"] for row in rows]
    (out / "table1.md").write_text(to_markdown(header, rows))
    (out / "table1.tex").write_text(to_latex(header, rows))
    _write_csv(out / "table1.csv", table)
    sections = [("Table 1", header, rows)]
    flag_rows = [[m, f["flag"].replace("_", " "), f["benchmark"], f["reason"]] for m, fs in flags.items() for f in fs]
    trivial_rows, _ = trust.trivial_table(run_dir, table, baseline)
    paired_rows = paired_table(run_dir, table, baseline) if baseline and baseline in table else []
    sections += [
        ("Flags: what the answers show, read from the completions", FLAG_HEADER, flag_rows),
        ("Against trivial answers: chance, the best constant letter, the model's own favourite letter",
         trust.TRIVIAL_HEADER, trivial_rows),
        ("Generate mode: format and committed answers", GENERATE_HEADER, generate_table(table)),
        ("Against the base model (paired, exact McNemar)", PAIRED_HEADER, paired_rows),
        (circular.TITLE, circular.HEADER, circular.rows(table)),
    ]  # fmt: skip
    for _, head, body in ((n, h, b) for n, h, b in sections[1:] if b):
        (out / f"{_STEMS[head[-1]]}.md").write_text(to_markdown(head, body))
    for stem, name, head, body in probes.sections(table):  # split.md, prefill.md, open_form.md
        (out / f"{stem}.md").write_text(to_markdown(head, body))
        sections.append((name, head, body))
    training_fig, found, extra = _training_sections(out, run_dir, models, sections)
    figures = [("training", training_fig)]
    arms = arm_sections.load_arms(run_dir)
    if arms and any(len(a["policies"]) > 1 or a.get("control") or a.get("sweep") for a in arms.values()):
        sections += _arm_sections(out, run_dir, table, arms)
        figures += [(f"sweep_{s}", arm_sections.sweep_figure(table, arms, s))
                    for s in sorted({a["sweep"] for a in arms.values() if a.get("sweep")})]  # fmt: skip
    if len(selection_sections.selections(run_dir)) > 1:  # one selection: nothing to compare it with
        sections += _selection_sections(out, run_dir, table, arms)
        figures += [("strategies", selection_sections.strategy_figure(table, arms, run_dir)),
                    ("selections", selection_sections.profile_figure(run_dir))]  # fmt: skip
    pass_rows = arm_sections.pass_rows(table)
    if pass_rows:
        (out / "pass_at_k.md").write_text(to_markdown(arm_sections.PASS_HEADER, pass_rows))
        sections.append(("pass@k (unbiased estimator; bootstrap interval over questions)", arm_sections.PASS_HEADER,
                         pass_rows))  # fmt: skip
    for bench in benches:
        stem = folder_name(bench)
        figures += [(f"radar_{stem}", radar(table, bench)), (f"categories_{stem}", bars(table, bench))]
    svgs = _save_figures(figures, out) + [(f"dynamics_{p}", (out / f"dynamics_{p}.svg").read_text()) for p in found]
    _write_html(out / "index.html", title, run_dir, sections, extra, svgs)
    return out


FLAG_HEADER = ["Model", "Flag", "Benchmark", "Why"]


def _training_sections(out: Path, run_dir, models, sections: list) -> tuple[Any, dict, str]:
    """The training table and reward chart, and each policy's dynamics (stages, chart, verbatim completions);
    adds their tables to ``sections`` and returns the reward chart, the dynamics and the page's extra HTML."""
    training_rows, training_fig = training_summary(run_dir, models)
    if training_rows:
        (out / "training.md").write_text(to_markdown(TRAINING_HEADER, training_rows))
        sections.append(("Training", TRAINING_HEADER, training_rows))
    found = trust.dynamics(run_dir, out, models)
    extra = ""
    if found:
        (out / "dynamics.md").write_text(trust.dynamics_markdown(found, to_markdown))
        sections.append(("Training dynamics: stages by the rules of medrlvr.report.dynamics", trust.DYNAMICS_HEADER,
                         trust.dynamics_rows(found)))  # fmt: skip
        extra = "<h3>Completions of each stage, verbatim</h3>" + trust.dynamics_html(found)
    return training_fig, found, extra


def _arm_sections(out: Path, run_dir, table, arms) -> list[tuple[str, list[str], list[list[str]]]]:
    """Seeds and arms: each arm's mean and spread over seeds, and arms compared against seed variance."""
    seed_rows = arm_sections.seeds_rows(table, arms)
    compare = arm_sections.compare_rows(run_dir, table, arms)
    (out / "arms.md").write_text(to_markdown(arm_sections.SEEDS_HEADER, seed_rows) + "\n"
                                 + to_markdown(arm_sections.COMPARE_HEADER, compare))  # fmt: skip
    return [("Arms: mean and spread over seeds", arm_sections.SEEDS_HEADER, seed_rows),
            (COMPARE_TITLE, arm_sections.COMPARE_HEADER, compare)]  # fmt: skip


def _selection_sections(out: Path, run_dir, table, arms) -> list[tuple[str, list[str], list[list[str]]]]:
    """The strategies compared with random selection of their size, and each selection's profile and overlaps."""
    strategy_rows = selection_sections.strategy_rows(run_dir, table, arms) if arms else []
    profiles, overlap_header, overlaps = selection_sections.profile_rows(run_dir)
    if strategy_rows:
        (out / "strategies.md").write_text(to_markdown(selection_sections.STRATEGY_HEADER, strategy_rows))
    (out / "selections.md").write_text(to_markdown(selection_sections.PROFILE_HEADER, profiles) + "\n"
                                       + to_markdown(overlap_header, overlaps))  # fmt: skip
    return [("Selection strategies against random selection of the same size (seeds as the unit; McNemar on "
             "matched seeds' questions)", selection_sections.STRATEGY_HEADER, strategy_rows),
            ("Selections: size, subjects, difficulty under each filter", selection_sections.PROFILE_HEADER, profiles),
            ("Selections: overlap (Jaccard of their questions)", overlap_header, overlaps)]  # fmt: skip


COMPARE_TITLE = ("Arms compared against seed variance (Welch's t and a permutation test on per-seed values; McNemar "
                 "on matched seeds' questions)")  # fmt: skip


_STEMS = {"Why": "flags", "Verdict": "baselines", "Flexible accuracy": "generate", "McNemar p": "paired",
          "Position bias (TV)": "circular"}  # fmt: skip


def _write_csv(path: Path, table: dict[str, dict[str, dict]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "benchmark", "accuracy", "ci95_low", "ci95_high", "n"])
        for model, per in table.items():
            for bench, res in sorted(per.items()):
                writer.writerow([model, bench, f"{res['accuracy']:.4f}", f"{res['ci95'][0]:.4f}",
                                 f"{res['ci95'][1]:.4f}", res["n"]])  # fmt: skip


def _save_figures(figures, out: Path) -> list[tuple[str, str]]:
    """Each figure as PNG and SVG in ``out``; returns (stem, SVG text) for the page."""
    import matplotlib.pyplot as plt

    svgs = []
    for stem, fig in figures:
        if fig is None:
            continue
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


def _write_html(path: Path, title: str, run_dir, sections, extra: str, svgs) -> None:
    """One self-contained page: the tables that have rows, then the charts inlined as SVG."""
    body = "".join(f"<h2>{html.escape(name)}</h2>{html_table(head, rows)}" for name, head, rows in sections if rows)
    charts = "".join(
        f"<figure>{svg[svg.find('<svg') :]}<figcaption>{html.escape(stem)}</figcaption></figure>" for stem, svg in svgs
    )
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}figure{display:inline-block;margin:1em}pre{background:#f6f6f6;padding:4px;"
        "white-space:pre-wrap}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Accuracy with 95% Wilson intervals. Source: "
        f"{html.escape(str(run_dir))}/eval</p>{body}{extra}<h2>Charts</h2>{charts}</body></html>\n"
    )
