"""Report tables: Table 1 (models x benchmarks), the generate-mode table and the paired tests against a baseline,
as rows of text cells, with markdown and LaTeX writers. Reads result files only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..rundir import eval_dir
from ..stats import mcnemar
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
    name one option. Where the baseline never gives a well-formed answer, its accuracy is zero by format alone and
    the accuracy difference says so instead of a number (the trivial-answer table says what the accuracy is
    worth)."""

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
                diff = f"{per[bench][summary_key] - base:+.3f}"
                if field == "correct" and table.get(baseline, {}).get(bench, {}).get("well_formed_rate") == 0:
                    diff = "n/a: base never answers in this format"  # a gain here would measure the format
                    r = {**r, "p_value": float("nan")}
                rows.append([model, bench, label, str(r["questions"]), f"{per[bench][summary_key]:.3f}",
                             diff, str(r["only_second_correct"]), str(r["only_first_correct"]),
                             "-" if r["p_value"] != r["p_value"] else f"{r['p_value']:.3g}"])  # fmt: skip
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


def paired(pred_a: str | Path, pred_b: str | Path, field: str = "correct") -> dict[str, Any]:
    """McNemar between two predictions.jsonl files on the questions both answered, on ``field`` (``correct``, or in
    generate mode ``well_formed``: in format and naming one option)."""
    a = {row["id"]: bool(row[field]) for row in read_jsonl(pred_a, "id") if field in row}
    b = {row["id"]: bool(row[field]) for row in read_jsonl(pred_b, "id") if field in row}
    common = sorted(set(a) & set(b))
    return {"questions": len(common), **mcnemar([a[i] for i in common], [b[i] for i in common])}
