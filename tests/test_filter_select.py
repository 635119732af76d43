"""Filter labels and selections with a scripted engine: exact expected labels, counts and errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import ScriptedEngine

from medrlvr.data import DataError, load_pool
from medrlvr.data.decontam import decontaminate, ngrams
from medrlvr.filter import FilterConfig, filter_pool, judge, load_labels
from medrlvr.records import Record
from medrlvr.select import SelectConfig, SelectionError, select, verl_rows, write_selection


def rec(i, answer="A", subject="s1", question=None):
    return Record(
        id=f"q{i:02d}",
        question=question or f"Question number {i} about organ {i}?",
        options={"A": f"alpha {i}", "B": f"beta {i}", "C": f"gamma {i}", "D": f"delta {i}"},
        answer=answer,
        subject=subject,
        source="toy",
        split="dev",
    )


POOL = [rec(i, answer="ABCD"[i % 4], subject=f"s{i % 3}") for i in range(20)]


def script_for(pool):
    """q00-q04 right in the boxed format (easy); q05-q09 right but unboxed (hard: wrong format);
    q10-q14 boxed but wrong (hard); the rest unanswered (hard)."""
    script = {}
    for r in pool:
        i = int(r.id[1:])
        wrong = "B" if r.answer != "B" else "C"
        if i < 5:
            script[r.question] = [f"Reasoning. \\boxed{{{r.answer}}}"]
        elif i < 10:
            script[r.question] = [f"The answer is ({r.answer})."]
        elif i < 15:
            script[r.question] = [f"\\boxed{{{wrong}}}"]
    return script


EXPECTED_EASY = {f"q{i:02d}" for i in range(5)}


def test_judge_rules():
    r = rec(1, answer="B")
    assert judge(r, ["\\boxed{B}"])["label"] == "easy"
    assert judge(r, ["The answer is B"])["label"] == "hard"  # right, but not in the prescribed format
    assert judge(r, ["\\boxed{A or B}"])["label"] == "hard"
    k3 = judge(r, ["\\boxed{B}", "\\boxed{B}", "\\boxed{C}"], easy_min_pass_rate=2 / 3)
    assert k3["pass_rate"] == pytest.approx(2 / 3) and k3["label"] == "easy"
    assert judge(r, ["\\boxed{B}", "\\boxed{B}", "\\boxed{C}"])["label"] == "hard"  # default: all k right


def test_filter_labels_exactly(tmp_path):
    engine = ScriptedEngine(script_for(POOL))
    out = filter_pool(
        POOL, FilterConfig(model="scripted", chunk_size=6, seed=7), tmp_path / "f", engine=engine, progress=False
    )
    labels = load_labels(out)
    assert {i for i, row in labels.items() if row["label"] == "easy"} == EXPECTED_EASY
    assert engine.calls == [(6, 7), (6, 8), (6, 9), (2, 10)]  # fixed chunks, one seed each
    stats = json.loads((out / "stats.json").read_text())
    assert stats["labels"] == {"easy": 5, "hard": 15}
    assert stats["accuracy_strict"] == pytest.approx(5 / 20) and stats["accuracy_flexible"] == pytest.approx(10 / 20)
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(responses) == 20 and responses[0]["responses"] == ["Reasoning. \\boxed{A}"]  # raw text kept
    # rerun: nothing to do, the engine is not called again
    again = ScriptedEngine(script_for(POOL))
    filter_pool(
        POOL, FilterConfig(model="scripted", chunk_size=6, seed=7), tmp_path / "f", engine=again, progress=False
    )
    assert again.calls == []
    with pytest.raises(ValueError, match="other settings"):
        filter_pool(
            POOL, FilterConfig(model="scripted", chunk_size=6, seed=8), tmp_path / "f", engine=again, progress=False
        )


def test_k_samples_keep_each_answer_and_the_pass_rate(tmp_path):
    """With k = 4 each question's 4 answers stay in responses.jsonl and labels.jsonl carries the pass rate and its
    counts (4 samples, so many right), with the label by easy_min_pass_rate."""
    script = {rec(0).question: ["\\boxed{A}", "\\boxed{B}", "\\boxed{A}", "no idea"],  # 2 of 4
              rec(1).question: ["\\boxed{B}"] * 4,  # 4 of 4 (q01's answer is B)
              rec(2).question: ["\\boxed{D}"] * 4}  # 0 of 4 (q02's answer is C)  # fmt: skip
    pool = [rec(0, answer="A"), rec(1, answer="B"), rec(2, answer="C")]
    config = FilterConfig(model="scripted", k=4, temperature=1.0, easy_min_pass_rate=0.5)
    out = filter_pool(pool, config, tmp_path / "f", engine=ScriptedEngine(script), progress=False)
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [(r["id"], r["pass_rate"], r["samples"], r["correct"], r["label"]) for r in rows] == [
        ("q00", 0.5, 4, 2, "easy"), ("q01", 1.0, 4, 4, "easy"), ("q02", 0.0, 4, 0, "hard")]  # fmt: skip
    responses = {r["id"]: r for r in map(json.loads, (out / "responses.jsonl").read_text().splitlines())}
    assert responses["q00"]["responses"] == script[rec(0).question]
    assert responses["q00"]["answers"] == ["A", "B", "A", None] and responses["q00"]["correct"] == [1, 0, 1, 0]


def test_filter_resumes_after_interruption(tmp_path):
    config = FilterConfig(model="scripted", chunk_size=6, seed=7)
    with pytest.raises(KeyboardInterrupt):
        filter_pool(
            POOL, config, tmp_path / "f", engine=ScriptedEngine(script_for(POOL), fail_after_calls=2), progress=False
        )
    assert len((tmp_path / "f" / "responses.jsonl").read_text().splitlines()) == 12  # two whole chunks kept
    resumed = ScriptedEngine(script_for(POOL))
    filter_pool(POOL, config, tmp_path / "f", engine=resumed, progress=False)
    assert resumed.calls == [(6, 9), (2, 10)]  # only the missing chunks, with the seeds they would have had
    whole = filter_pool(POOL, config, tmp_path / "g", engine=ScriptedEngine(script_for(POOL)), progress=False)
    assert (tmp_path / "f" / "labels.jsonl").read_text() == (whole / "labels.jsonl").read_text()


def test_store_repairs_a_torn_last_line(tmp_path):
    from medrlvr.store import JsonlStore

    path = tmp_path / "s.jsonl"
    JsonlStore(path).append([{"a": 1}, {"a": 2}])
    with open(path, "a") as f:
        f.write('{"a": 3, "partial')
    assert list(JsonlStore(path)) == [{"a": 1}, {"a": 2}]


KILL_SCRIPT = r"""
import sys, time
sys.path.insert(0, {tests!r})
from fakes import ScriptedEngine
from medrlvr.engines import Completion
from medrlvr.filter import FilterConfig, filter_pool
from test_filter_select import POOL, script_for

class Slow(ScriptedEngine):
    def generate(self, prompts, n=1, sampling=None):
        time.sleep(0.15)
        return super().generate(prompts, n, sampling)

filter_pool(POOL, FilterConfig(model="scripted", chunk_size=2, seed=3), sys.argv[1], engine=Slow(script_for(POOL)), progress=False)
"""


def test_kill_9_then_resume_gives_identical_labels(tmp_path):
    """A real process killed with SIGKILL at several moments; every rerun resumes and ends with the labels of an
    uninterrupted run."""
    script = tmp_path / "run_filter.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(script), str(reference)], check=True)
    target = tmp_path / "killed"
    kills = 0
    for delay in (0.9, 1.2, 0.7, 1.5):
        proc = subprocess.Popen([sys.executable, str(script), str(target)])
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        store = target / "responses.jsonl"
        if store.exists():  # every line on disk is whole JSON, whatever the moment of the kill
            for line in store.read_text().splitlines():
                json.loads(line)
    assert kills >= 1
    subprocess.run([sys.executable, str(script), str(target)], check=True)
    assert (target / "labels.jsonl").read_text() == (reference / "labels.jsonl").read_text()
    ids = [json.loads(line)["id"] for line in (target / "responses.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(r.id for r in POOL)  # no question answered twice


# --- selection -------------------------------------------------------------------------------------------

LABELS = {r.id: {"label": "easy" if int(r.id[1:]) < 5 else "hard", "pass_rate": (int(r.id[1:]) % 5) / 4} for r in POOL}


def test_ratio_selection_exact_and_pure():
    config = SelectConfig(strategy="ratio", hard=6, easy=2, seed=1)
    chosen = select(POOL, LABELS, config)
    assert len(chosen) == 8
    assert sum(LABELS[r.id]["label"] == "easy" for r in chosen) == 2
    assert [r.id for r in select(list(reversed(POOL)), LABELS, config)] == [r.id for r in chosen]  # order-free
    assert [r.id for r in select(POOL, LABELS, SelectConfig(strategy="ratio", hard=6, easy=2, seed=2))] != [
        r.id for r in chosen
    ]


def test_shortfalls_are_clear():
    with pytest.raises(SelectionError, match="asked for 6 easy questions, the pool has 5 .short by 1"):
        select(POOL, LABELS, SelectConfig(strategy="ratio", hard=1, easy=6))
    chosen = select(POOL, LABELS, SelectConfig(strategy="ratio", hard=1, easy=6, allow_short=True))
    assert len(chosen) == 6
    with pytest.raises(SelectionError, match="no filter label"):
        select(POOL + [rec(99)], LABELS, SelectConfig(strategy="ratio", hard=1, easy=1))


def test_random_band_and_stratified():
    assert len(select(POOL, None, SelectConfig(strategy="random", n=7))) == 7
    band = select(POOL, LABELS, SelectConfig(strategy="band", lo=0.25, hi=0.5, n=8))
    assert {LABELS[r.id]["pass_rate"] for r in band} == {0.25, 0.5} and len(band) == 8  # both ends inclusive
    strat = select(POOL, None, SelectConfig(strategy="random", n=9, stratify=True))
    counts = {s: sum(r.subject == s for r in strat) for s in ("s0", "s1", "s2")}
    assert counts == {"s0": 3, "s1": 3, "s2": 3}  # 7/7/6 in the pool: proportional, largest remainder


def test_decontamination_and_outputs(tmp_path):
    leaked = rec(50, question="A 45 year old man presents with crushing chest pain radiating to the left arm today")
    evals = [rec(90, question="Case: a 45 year old man presents with crushing chest pain radiating to the jaw")]
    stock = [
        rec(100 + i, question=f"Which of the following statements is true regarding organ {i}?") for i in range(2)
    ]
    generic = rec(60, question="Which of the following statements is true regarding the liver?")
    assert decontaminate([generic], stock)[1] == []  # stock phrasing in 3 questions is not a leak
    assert decontaminate([generic], stock, stock_min=0)[1] != []
    kept, dropped = decontaminate(POOL + [leaked], evals)
    assert [d["id"] for d in dropped] == ["q50"] and len(kept) == 20
    assert "45 year old man presents with crushing chest" in ngrams(leaked.question)
    assert not decontaminate([rec(51, question="45 year old man presents with crushing")], evals)[
        1
    ]  # 7 words: no 8-gram
    chosen = select(kept, None, SelectConfig(strategy="random", n=4))
    out = write_selection(chosen, None, dropped, SelectConfig(strategy="random", n=4), tmp_path / "sel", parquet=True)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["selected"] == 4 and stats["decontamination_dropped"] == 1
    import pyarrow.parquet as pq

    table = pq.read_table(out / "train.parquet").to_pylist()
    assert table[0]["reward_model"]["ground_truth"] == chosen[0].answer and table[0]["prompt"][0]["role"] == "system"
    from medrlvr.rewards import compute_score

    row = verl_rows(chosen)[0]
    assert (
        compute_score(
            row["data_source"],
            f"<answer>{chosen[0].answer}</answer>",
            row["reward_model"]["ground_truth"],
            row["extra_info"],
        )
        == 1.0
    )


def test_pool_refuses_test_splits(fixture_data):
    with pytest.raises(DataError, match="evaluation only"):
        load_pool("medqa:test", fixture_data)
    assert len(load_pool("medmcqa", fixture_data)) == 3


def test_cli_filter_then_select_on_fixtures(fixture_data, tiny_checkpoint, tmp_path, capsys):
    from medrlvr.cli import main

    run = tmp_path / "run"
    assert (
        main(
            [
                "filter",
                "--model",
                str(tiny_checkpoint),
                "--pool",
                "medmcqa:dev",
                "--data-dir",
                str(fixture_data),
                "--run-dir",
                str(run),
                "--max-new-tokens",
                "8",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "select",
                "--strategy",
                "ratio",
                "--filter-model",
                str(tiny_checkpoint),
                "--hard",
                "2",
                "--easy",
                "0",
                "--pool",
                "medmcqa:dev",
                "--data-dir",
                str(fixture_data),
                "--run-dir",
                str(run),
                "--decontaminate",
                "medqa",
                "--parquet",
            ]
        )
        == 0
    )
    assert len((run / "select" / "ratio" / "train.jsonl").read_text().splitlines()) == 2
    assert (
        main(
            [
                "select",
                "--strategy",
                "ratio",
                "--filter-model",
                str(tiny_checkpoint),
                "--hard",
                "9",
                "--pool",
                "medmcqa:dev",
                "--data-dir",
                str(fixture_data),
                "--run-dir",
                str(run),
            ]
        )
        == 2
    )
    assert "short by" in capsys.readouterr().err


# --- issue 14: no test question in a pool, no unbounded question sent to a model ------------------------------


@pytest.mark.parametrize(
    "row, field",
    [
        ({"split": "test"}, "split"),
        ({"split": "TEST"}, "split"),
        ({"id": "medqa-test-12", "split": ""}, "id"),  # the ids our MedQA adapter gives test questions
        ({"id": "mmlu-test-anatomy-3"}, "id"),
        ({"source": "medqa", "split": ""}, "split"),  # a MedQA question that does not say which split
        ({"source": "gsm8k", "split": "unknown"}, "split"),
    ],
)
def test_a_pool_file_refuses_test_split_records(tmp_path, row, field, capsys):
    from medrlvr.cli import main

    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(rec(1).to_dict()) + "\n" + json.dumps({**rec(2).to_dict(), **row}) + "\n")
    with pytest.raises(DataError, match=rf"pool.jsonl: line 2: field '{field}': .*test splits are for evaluation"):
        load_pool(str(path))
    assert main(["select", "--strategy", "random", "--n", "1", "--pool", str(path), "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pool.jsonl: line 2" in err
    path.write_text(json.dumps(rec(1).to_dict()) + "\n" + json.dumps({**rec(2).to_dict(), "source": "medqa",
                                                                      "split": "train"}) + "\n")  # fmt: skip
    assert len(load_pool(str(path))) == 2


def test_a_question_longer_than_the_context_is_counted_not_sent(tiny_checkpoint, tmp_path):
    """A 5 MB question used to take 10 GB and then ask for a 1 TB attention mask."""
    from medrlvr.engines.hf import TransformersEngine

    engine = TransformersEngine(str(tiny_checkpoint), dtype="fp32")  # 512 positions
    huge = rec(1, question="Which organ? " + "a long history " * 350_000)  # 5.2 MB
    longer = rec(2, question="Which organ? " + "x " * 600)  # 1,200 characters: over 512 tokens, under the cheap bound
    pool = [rec(0), huge, longer, rec(3)]
    started = time.perf_counter()
    config = FilterConfig(model="tiny", max_new_tokens=4)
    out = filter_pool(pool, config, tmp_path / "f", engine=engine, progress=False)
    assert time.perf_counter() - started < 60
    labels = load_labels(out)
    assert labels["q01"]["label"] == labels["q02"]["label"] == "too_long" and labels["q01"]["pass_rate"] is None
    assert labels["q00"]["label"] in ("easy", "hard") and labels["q03"]["label"] in ("easy", "hard")
    assert json.loads((out / "stats.json").read_text())["too_long"] == 2
    for config in (SelectConfig(strategy="ratio", hard=4, easy=4, allow_short=True),
                   SelectConfig(strategy="band", lo=0.0, hi=1.0, n=4, allow_short=True)):  # fmt: skip
        assert {r.id for r in select(pool, labels, config)} == {"q00", "q03"}
