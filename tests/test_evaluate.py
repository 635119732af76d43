"""Evaluation with a scripted engine: exact accuracies, intervals, resumption, and the paired test."""

import json

import pytest
from fakes import ScriptedEngine

from medrlvr.evaluate import EvalConfig, evaluate, loglik_context, subsample
from medrlvr.records import Record
from medrlvr.report.tables import paired
from medrlvr.stats import mcnemar, wilson

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


class TieEngine(ScriptedEngine):
    """Question 0: A and B tie for the best (gold A); question 1: B and C tie (gold B is first); question 2: A and
    B tie, gold C; the rest: the gold alone is best."""

    TIED = {0: "AB", 1: "BC", 2: "AB"}

    def loglikelihood(self, pairs):
        out = []
        for context, continuation in pairs:
            i = int(context.split("Question ")[-1].split("?")[0])
            best = self.TIED.get(i, RECS[i].answer)
            out.append((-1.0 if continuation.strip() in best else -3.0, False))
        return out


def test_loglik_ties_are_reported_and_split_the_credit(tmp_path):
    res = evaluate(RECS, EvalConfig(model="fake"), tmp_path, "mmlu", engine=TieEngine({}), progress=False)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "predictions.jsonl").read_text().splitlines())}
    assert res["ties"] == 3 and res["by_subject"]["anatomy"]["ties"] == 3
    assert [rows[f"e{i}"]["tied"] for i in range(3)] == [["A", "B"], ["B", "C"], ["A", "B"]]
    assert all(rows[f"e{i}"]["answer"] is None and not rows[f"e{i}"]["correct"] for i in range(3))
    assert [rows[f"e{i}"]["credit"] for i in range(3)] == [0.5, 0.5, 0.0]
    assert "tied" not in rows["e3"] and rows["e3"]["answer"] == RECS[3].answer
    assert res["accuracy"] == pytest.approx((0.5 + 0.5 + 0 + 7) / 10) and "1/k" in res["accuracy_is"]


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


def test_generate_ends_answers_at_a_stop_string_that_stays_in_the_answer(tmp_path):
    """``stop: ["</answer>"]`` (as the demo's rollouts): the answer keeps the tag and loses what a policy that never
    learned to end its turn writes after it, so the format is read as training's rewards read it."""
    script = {f"Question {i}?": [f"r</think><answer>{RECS[i].answer}</answer><junk>A</junk>"] for i in range(10)}
    runs = {}
    for stop in ([], ["</answer>"]):
        config = EvalConfig(model="fake", mode="generate", prefill="<think>", stop=stop)
        runs[bool(stop)] = evaluate(RECS, config, tmp_path / str(bool(stop)), "mmlu", engine=ScriptedEngine(script),
                                    progress=False)  # fmt: skip
    assert runs[False]["format_rate"] == 0.0 and runs[True]["format_rate"] == 1.0
    assert runs[True]["accuracy"] == 1.0 and runs[True]["prediction_key"] != runs[False]["prediction_key"]


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


# --- issue 14: predictions keyed by what decides an answer, bounded chunks, limits, long questions -------------


class CountingEngine(ScriptedEngine):
    """Answers every generate prompt with the right answer tag and every loglik with letter A; counts both."""

    def __init__(self):
        super().__init__({f"Question {i}?": [f"<answer>{RECS[i].answer}</answer>"] for i in range(10)})
        self.generated, self.scored = 0, 0

    def generate(self, prompts, n=1, sampling=None, **kwargs):
        self.generated += len(prompts)
        return super().generate(prompts, n=n, sampling=sampling)

    def loglikelihood(self, pairs):
        self.scored += len(pairs)
        return [(0.0 if c.strip() == "A" else -1.0, True) for _, c in pairs]


def test_predictions_are_never_reused_across_modes_or_settings(tmp_path):
    """A generate run in a folder holding loglik predictions used to reuse them and label them generate."""
    engine = CountingEngine()
    loglik = evaluate(RECS, EvalConfig(model="fake"), tmp_path, "mmlu", engine=engine, progress=False)
    assert engine.scored == 30 and loglik["accuracy"] == pytest.approx(4 / 10)  # always A
    generate = evaluate(RECS, EvalConfig(model="fake", mode="generate"), tmp_path, "mmlu", engine=engine,
                        progress=False)  # fmt: skip
    assert engine.generated == 10 and generate["accuracy"] == 1.0
    assert generate["prediction_settings"]["mode"] == "generate"
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all("response" in r and r["key"] == generate["prediction_key"] for r in rows)
    longer = EvalConfig(model="fake", mode="generate", max_new_tokens=64)  # another setting that changes answers
    evaluate(RECS, longer, tmp_path, "mmlu", engine=engine, progress=False)
    assert engine.generated == 20
    again = evaluate(RECS, EvalConfig(model="fake"), tmp_path, "mmlu", engine=engine, progress=False)
    assert engine.scored == 30 and again["accuracy"] == loglik["accuracy"]  # the loglik rows, taken back
    chunked = EvalConfig(model="fake", chunk_size=3, limit=5, seed=1)  # what is asked, not how: reused
    evaluate(RECS, chunked, tmp_path, "mmlu", engine=engine, progress=False)
    assert engine.scored == 30


def test_cli_eval_in_generate_mode_does_not_reuse_loglik_predictions(tiny_checkpoint, tmp_path, capsys):
    from medrlvr.cli import main

    argv = ["eval", "--model", str(tiny_checkpoint), "--benchmarks", "demo", "--limit", "3", "--run-dir",
            str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert main([*argv, "--mode", "generate", "--prompt", "filter", "--max-new-tokens", "2"]) == 0
    model = next((tmp_path / "eval").iterdir())
    folder = model / "demo@generate"  # generate mode writes beside the loglik results, never over them
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all("response" in r and "loglik" not in r for r in rows)
    results = json.loads((folder / "results.json").read_text())
    assert results["config"]["mode"] == "generate" and "accuracy_flexible" in results
    loglik = [json.loads(line) for line in (model / "demo" / "predictions.jsonl").read_text().splitlines()]
    assert len(loglik) == 3 and all("loglik" in r for r in loglik)
    assert json.loads((model / "demo" / "results.json").read_text())["config"]["mode"] == "loglik"
    # a different generate setting in the same folder sets the earlier rows aside instead of reusing them
    assert main([*argv, "--mode", "generate", "--prompt", "filter", "--max-new-tokens", "3"]) == 0
    assert len(list(folder.glob("predictions-*.jsonl"))) == 1


def test_generate_mode_writes_every_16_questions_by_default(tmp_path):
    """Eval used to write once per 256 questions, so a kill lost up to 256 generations."""
    records = [Record(id=f"g{i}", question=f"Question {i % 10}?", options={"A": "x", "B": "y", "C": "z"},
                      answer="A") for i in range(40)]  # fmt: skip
    config = EvalConfig(model="fake", mode="generate")
    with pytest.raises(KeyboardInterrupt):
        evaluate(records, config, tmp_path, "mmlu", engine=ScriptedEngine({}, fail_after_calls=2), progress=False)
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 32
    assert EvalConfig(model="fake").chunk == 1024 and EvalConfig(model="fake", chunk_size=5).chunk == 5


@pytest.mark.parametrize("limit", [0, -5])
def test_non_positive_limits_are_errors(limit, tmp_path, capsys):
    """--limit 0 used to mean the whole benchmark, --limit -5 all but 5."""
    from medrlvr.cli import main

    with pytest.raises(ValueError, match=rf"setting 'limit' must be at least 1, got {limit}"):
        EvalConfig(model="fake", limit=limit)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        subsample(RECS, limit, seed=0)
    for argv in (["eval", "--model", "m"], ["filter", "--model", "m"], ["select", "--strategy", "random"]):
        with pytest.raises(SystemExit) as info:
            main([*argv, f"--limit={limit}", "--run-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and len(err.splitlines()) == 1 and "--limit: must be at least 1" in err
    with pytest.raises(SystemExit):
        main(["eval", "--model", "m", "--chunk-size", "0"])
    assert "--chunk-size: must be at least 1" in capsys.readouterr().err


def test_eval_counts_questions_longer_than_the_context(tiny_checkpoint, tmp_path):
    from medrlvr.engines.hf import TransformersEngine

    engine = TransformersEngine(str(tiny_checkpoint), dtype="fp32")  # 512 positions
    huge = Record(id="huge", question="Which? " + "long history " * 400_000, options={"A": "x", "B": "y"}, answer="A")
    records = [RECS[0], huge, RECS[1]]
    for mode in ("loglik", "generate"):
        config = EvalConfig(model="tiny", mode=mode, prompt="filter", max_new_tokens=2)
        res = evaluate(records, config, tmp_path / mode, "mmlu", engine=engine, progress=False)
        lines = (tmp_path / mode / "predictions.jsonl").read_text().splitlines()
        rows = {json.loads(line)["id"]: json.loads(line) for line in lines}
        assert res["too_long"] == 1 and res["n"] == 3
        assert rows["huge"]["answer"] is None and not rows["huge"]["correct"]
        assert "too_long" not in rows["e0"] and "too_long" not in rows["e1"]  # these two were sent
        if mode == "loglik":
            assert rows["e0"]["answer"] in "ABC" and rows["huge"]["loglik"] is None


def test_generate_mode_reads_the_prefill_and_counts_well_formed_answers(tmp_path):
    """With a prefill the answer read is prefill + completion; well-formed = the R1-Zero format and exactly one
    option named (strict); in-format answers that name nothing are counted apart."""
    completions = [
        " x</think><answer>{}</answer>",  # well formed, names the gold option
        " x</think><answer>answer here</answer>",  # in format, names nothing
        " x</think><answer>A or B</answer>",  # in format, a hedge
        "</think> no tags at all, the answer is {}",  # out of format, flexible only
        " x</think><answer>{}</answer> and more",  # text after </answer>: out of format, strict answer read
    ]
    script = {f"Question {i}?": [completions[i % 5].format(RECS[i].answer)] for i in range(10)}
    engine = ScriptedEngine(script)
    config = EvalConfig(model="fake", mode="generate", prefill="<think>")
    res = evaluate(RECS, config, tmp_path, "mmlu", engine=engine, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert all(r["response"].startswith("<think>") for r in rows)
    assert [r["format_ok"] for r in rows[:5]] == [True, True, True, False, False]
    assert [r["well_formed"] for r in rows[:5]] == [True, False, False, False, False]
    assert res["format_rate"] == pytest.approx(6 / 10) and res["well_formed_rate"] == pytest.approx(2 / 10)
    assert res["formatted_without_option"] == 4 and res["accuracy"] == pytest.approx(4 / 10)
    # the prompt the engine saw ends with the prefill (an assistant turn that the chat template continues)
    assert engine.prompts[0][-1] == {"role": "assistant", "content": "<think>"}
    # paired on well-formedness: the same file against itself has no discordant pair
    same = paired(tmp_path / "predictions.jsonl", tmp_path / "predictions.jsonl", "well_formed")
    assert same["questions"] == 10 and same["p_value"] == 1.0


def test_samples_give_pass_at_k_with_the_unbiased_estimator(tmp_path):
    """4 samples per question: question i has (i % 5) right ones (capped at 4); pass@k is Chen et al.'s estimator,
    with its interval, and the row's answer is the first sample."""
    from medrlvr.stats import pass_at_k

    def samples(i):
        right = min(i % 5, 4)
        wrong = "A" if RECS[i].answer != "A" else "B"
        return [f"<answer>{RECS[i].answer}</answer>"] * right + [f"<answer>{wrong}</answer>"] * (4 - right)

    script = {f"Question {i}?": samples(i) for i in range(10)}
    engine = ScriptedEngine(script)
    config = EvalConfig(model="fake", mode="generate", samples=4, temperature=0.8)
    res = evaluate(RECS, config, tmp_path, "mmlu@generate", engine=engine, progress=False)
    counts = [min(i % 5, 4) for i in range(10)]
    assert res["samples"] == 4 and set(res["pass_at_k"]) == {"1", "2", "4"}
    for k in (1, 2, 4):
        expected = sum(pass_at_k(4, c, k) for c in counts) / 10
        assert res["pass_at_k"][str(k)]["mean"] == pytest.approx(expected)
        lo, hi = res["pass_at_k"][str(k)]["ci"]
        assert lo <= expected <= hi
    assert res["pass_at_k"]["1"]["mean"] == pytest.approx(sum(counts) / 40)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["samples_correct"] for r in rows] == counts and all(r["n_options"] == 3 for r in rows)
    assert res["accuracy"] == pytest.approx(sum(c > 0 for c in counts) / 10)  # the first sample is the answer
    # a greedy evaluation of the same questions is not answered from these predictions
    greedy = evaluate(RECS, EvalConfig(model="fake", mode="generate"), tmp_path, "mmlu@generate",
                      engine=ScriptedEngine(script), progress=False)  # fmt: skip
    assert "pass_at_k" not in greedy
