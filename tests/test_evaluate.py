"""Evaluation with a scripted engine: exact accuracies, intervals, resumption, and the paired test."""

import json

import pytest
from fakes import ScriptedEngine

from medrlvr.evaluate import EvalConfig, evaluate, loglik_context, mcnemar, paired, subsample, wilson
from medrlvr.records import Record

RECS = [Record(id=f"e{i}", question=f"Question {i}?", options={"A": "x", "B": "y", "C": "z"}, answer="ABC"[i % 3],
               subject="anatomy" if i < 6 else "astronomy", source="mmlu") for i in range(10)]  # fmt: skip


class LetterEngine(ScriptedEngine):
    """Log-likelihood that prefers a fixed letter per question id: right for even ids, wrong for odd ones."""

    def loglikelihood(self, pairs):
        out = []
        for context, continuation in pairs:
            i = int(context.split("Question ")[-1].split("?")[0])
            preferred = RECS[i].answer if i % 2 == 0 else ("B" if RECS[i].answer != "B" else "C")
            out.append((0.0 if continuation.strip() == preferred else -5.0, continuation.strip() == preferred))
        return out


def test_loglik_accuracy_ci_and_breakdown(tmp_path):
    res = evaluate(
        RECS, EvalConfig(model="fake", chunk_size=4), tmp_path, "mmlu", engine=LetterEngine({}), progress=False
    )
    assert res["n"] == 10 and res["accuracy"] == 0.5
    assert res["ci95"] == pytest.approx(wilson(5, 10)) and res["ci95"][0] == pytest.approx(0.2366, abs=1e-3)
    assert res["by_subject"]["anatomy"]["n"] == 6 and res["by_subject"]["anatomy"]["accuracy"] == 0.5
    assert set(res["by_category"]) == {"other", "stem"}  # anatomy -> other, astronomy -> stem (MMLU's map)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in rows] == [i % 2 == 0 for i in range(10)]


def test_generate_strict_flexible_and_failures(tmp_path):
    templates = ["<answer>{}</answer>", "The answer is {}", "no idea"]
    script = {f"Question {i}?": [templates[i % 3].format(RECS[i].answer)] for i in range(10)}
    res = evaluate(
        RECS,
        EvalConfig(model="fake", mode="generate"),
        tmp_path,
        "mmlu",
        engine=ScriptedEngine(script),
        progress=False,
    )
    assert res["accuracy"] == pytest.approx(4 / 10)  # only the answer tags count strictly
    assert res["accuracy_flexible"] == pytest.approx(7 / 10)
    assert res["extraction_failure_rate"] == pytest.approx(6 / 10)


def test_resume_skips_done_questions(tmp_path):
    engine = LetterEngine({})
    with pytest.raises(KeyboardInterrupt):
        evaluate(RECS, EvalConfig(model="fake", chunk_size=4), tmp_path, "mmlu", engine=_Failing({}), progress=False)
    evaluate(RECS[:4], EvalConfig(model="fake", chunk_size=4), tmp_path, "mmlu", engine=engine, progress=False)
    calls = []

    class Counting(LetterEngine):
        def loglikelihood(self, pairs):
            calls.append(len(pairs))
            return super().loglikelihood(pairs)

    res = evaluate(RECS, EvalConfig(model="fake", chunk_size=4), tmp_path, "mmlu", engine=Counting({}), progress=False)
    assert sum(calls) == 6 * 3 and res["n"] == 10  # only the 6 missing questions, 3 letters each


class _Failing(LetterEngine):
    def loglikelihood(self, pairs):
        raise KeyboardInterrupt


def test_paired_test_and_subsample(tmp_path):
    assert mcnemar([True] * 10, [True] * 10)["p_value"] == 1.0
    result = mcnemar([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)
    assert result["only_first_correct"] == 10 and result["p_value"] == pytest.approx(0.0386, abs=1e-3)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"id": f"q{i}", "correct": True}) + "\n" for i in range(8)))
    b.write_text("".join(json.dumps({"id": f"q{i}", "correct": i < 2}) + "\n" for i in range(8)))
    assert paired(a, b)["p_value"] == pytest.approx(0.03125)
    from medrlvr.cli import main

    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    picked = subsample(RECS, 4, seed=1)
    assert (
        len(picked) == 4
        and picked == subsample(RECS, 4, seed=1)
        and [r.id for r in picked] == sorted((r.id for r in picked), key=lambda x: int(x[1:]))
    )
    assert loglik_context(RECS[0]).startswith(
        "The following are multiple choice questions (with answers) about anatomy."
    )
    assert loglik_context(RECS[0]).endswith("C. z\nAnswer:")


@pytest.mark.slow
def test_smollm2_on_50_mmlu_medical_questions_both_modes(real_data, tmp_path):
    from medrlvr.data import load_benchmark
    from medrlvr.engines import get_engine

    records = load_benchmark("mmlu", "test", real_data, subjects="medical")
    engine = get_engine("transformers", "smollm2-135m-instruct")
    ll = evaluate(
        records,
        EvalConfig(model="smollm2-135m-instruct", limit=50),
        tmp_path / "ll",
        "mmlu:medical",
        engine=engine,
        progress=False,
    )
    assert ll["n"] == 50 and 0.0 <= ll["ci95"][0] <= ll["accuracy"] <= ll["ci95"][1] <= 1.0
    gen = evaluate(
        records,
        EvalConfig(model="smollm2-135m-instruct", mode="generate", limit=50, max_new_tokens=48),
        tmp_path / "gen",
        "mmlu:medical",
        engine=engine,
        progress=False,
    )
    assert gen["n"] == 50 and "accuracy_flexible" in gen and gen["accuracy"] <= gen["accuracy_flexible"]
    rows = [json.loads(line) for line in (tmp_path / "gen" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and all(r["response"] is not None for r in rows)
