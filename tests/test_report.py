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


def test_generate_mode_tables_and_paired_tests_on_well_formed_answers(tmp_path):
    """Generate-mode results get their own table (format, well-formed with one option, in-format without one) and a
    McNemar row on well-formedness beside the one on accuracy; the training chart has a panel per policy."""
    bench = "mmlu:medical@generate"
    for model, well in (("base", 1), ("grpo", 30)):
        rows = [
            {"id": f"q{i}", "subject": "anatomy", "correct": i < 10 and i < well, "correct_flexible": i < 12,
             "answer": "A" if i < well else None, "format_ok": i < well + 5, "well_formed": i < well, "key": "k"}
            for i in range(40)
        ]  # fmt: skip
        _write(tmp_path, model, bench, rows)
        path = tmp_path / "eval" / model / bench.replace(":", "_") / "predictions.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        train = tmp_path / "train" / model
        if model != "base":
            train.mkdir(parents=True)
            metrics = [{"step": s, "reward": s / 10, "rewards/format_reward/mean": s / 10,
                        "rewards/choice_reward/mean": s / 20} for s in range(1, 11)]  # fmt: skip
            (train / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    out = report(tmp_path, models=["base", "grpo"], baseline="base")
    generate = (out / "generate.md").read_text()
    assert "| grpo | mmlu:medical@generate | 40 | 0.875 | 0.750 [" in generate  # 35 in format, 30 well formed
    assert "| base | mmlu:medical@generate | 40 | 0.150 | 0.025 [" in generate and "| 5 |" in generate
    paired_md = (out / "paired.md").read_text()
    well = next(line for line in paired_md.splitlines() if "well-formed" in line)
    assert "| 0.750 | +0.725 | 29 | 0 |" in well and float(well.split("|")[-2]) < 1e-6
    assert "| grpo | mmlu:medical@generate | accuracy |" in paired_md
    assert (out / "training.png").exists() and "format" in (out / "training.svg").read_text()
