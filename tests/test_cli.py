import subprocess
import sys

from medrlvr.cli import main


def test_data_list_shows_what_the_directory_holds(fixture_data, capsys):
    assert main(["data", "list", "--data-dir", str(fixture_data)]) == 0
    out = capsys.readouterr().out
    for name in ("medqa", "medmcqa", "mmlu_pro", "gsm8k"):
        assert name in out
    assert "GBaker" in out  # the Hub id is listed too


def test_data_show_counts_subjects_letters_and_a_sample(fixture_data, capsys):
    assert main(["data", "show", "mmlu", "--data-dir", str(fixture_data), "--subjects", "medical"]) == 0
    out = capsys.readouterr().out
    assert "mmlu test: 2 questions" in out
    assert "anatomy" in out and "astronomy" not in out
    assert "A 1 (50.0%)" in out and "B 1 (50.0%)" in out
    assert "B. Calcaneus" in out  # the rendered sample


def test_user_errors_are_one_line_and_exit_2(tmp_path, fixture_data):
    bad = tmp_path / "data"
    (bad / "gsm8k").mkdir(parents=True)
    (bad / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "no final line"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "medrlvr.cli", "data", "show", "gsm8k", "--data-dir", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "test.jsonl: line 1: field 'answer'" in lines[0] and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "medrlvr.cli", "data", "show", "gsm8k", "--data-dir", str(bad), "--on-error", "skip"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "0 questions, 1 malformed rows skipped" in proc.stdout
