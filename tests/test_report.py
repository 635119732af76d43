"""The report from result files written here (no model runs)."""

import json

import pytest

from medrlvr.evaluate import summarize
from medrlvr.report import collect, report


def _write(run, model, bench, rows):
    path = run / "eval" / model / bench.replace(":", "_")
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"model": model, **summarize(rows, bench)}))


def test_report_from_result_files(tmp_path):
    subjects = ["anatomy", "virology", "nutrition", "college_biology"]
    for model, right in (("base", 2), ("grpo-ratio", 3)):
        rows = [{"subject": s, "correct": i < right, "answer": "A"} for s in subjects for i in range(4)]
        _write(tmp_path, model, "mmlu:medical", rows)
    _write(tmp_path, "base", "medqa", [{"subject": "step1", "correct": True, "answer": "A"}] * 3)
    out = report(tmp_path)
    md = (out / "table1.md").read_text()
    assert (
        "| Model | medqa | mmlu:medical |" in md and "| base | 1.0000" in md and "0.5000 [" in md and "0.7500 [" in md
    )
    assert "| grpo-ratio | - | 0.7500" in md  # a missing benchmark is a dash, not an error
    assert (
        "\\begin{tabular}{lcc}" in (out / "table1.tex").read_text()
        and "mmlu:medical" in (out / "table1.tex").read_text()
    )
    csv_rows = (out / "table1.csv").read_text().splitlines()
    assert csv_rows[0] == "model,benchmark,accuracy,ci95_low,ci95_high,n" and len(csv_rows) == 4
    for name in ("radar_mmlu_medical", "categories_mmlu_medical"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").exists()
    page = (out / "index.html").read_text()
    assert page.count("<svg") == 2 and "<table>" in page and "http" not in page.split("<body>")[1].split("<svg")[0]


def test_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `medrlvr eval` first"):
        collect(tmp_path)
