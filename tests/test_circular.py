"""Circular evaluation (medrlvr.evaluate.circular) with scripted engines: a model that knows the answers is right
under every rotation, a model that likes a letter is right under none, position bias says which, questions that
cannot be rotated are counted as skipped, and in log-likelihood mode a question's rotations share its stem."""

import json

import pytest
from fakes import ScriptedEngine

from medrlvr.errors import UserError
from medrlvr.evaluate import EvalConfig, evaluate, prediction_key, prediction_settings
from medrlvr.records import Record

RECS = [Record(id=f"c{i}", question=f"Question {i}?", options={"A": f"w{i}", "B": f"x{i}", "C": f"y{i}", "D": f"z{i}"},
               answer="ABCD"[i % 4], subject="anatomy") for i in range(8)]  # fmt: skip
STUCK = Record(id="stuck", question="Question 99?", options={"A": "Iron", "B": "All of the above",
               "C": "None of the above"}, answer="A", subject="anatomy")  # fmt: skip


def _options(context: str) -> dict[str, str]:
    lines = context.rsplit("?", 1)[1].strip().splitlines()
    return {line[0]: line[3:] for line in lines if len(line) > 2 and line[1] == "."}


class KnowsEngine(ScriptedEngine):
    """Log-likelihood that prefers the gold option's text, wherever it stands."""

    def loglikelihood(self, pairs):
        gold = {r.question: r.answer_text for r in [*RECS, STUCK]}
        out = []
        for context, continuation in pairs:
            question = "Question " + context.split("Question ")[-1].split("?")[0] + "?"
            best = next(k for k, v in _options(context).items() if v == gold[question])
            out.append((0.0 if continuation.strip() == best else -4.0, continuation.strip() == best))
        return out


class LikesA(ScriptedEngine):
    def loglikelihood(self, pairs):
        return [(0.0 if c.strip() == "A" else -2.0, c.strip() == "A") for _, c in pairs]


def _rows(path):
    return {r["id"]: r for r in map(json.loads, (path / "predictions.jsonl").read_text().splitlines())}


def test_a_model_that_knows_the_answers_is_right_under_every_rotation(tmp_path):
    res = evaluate(RECS, EvalConfig(model="fake", circular=True), tmp_path, "mmlu", engine=KnowsEngine({}),
                   progress=False)  # fmt: skip
    c = res["circular"]
    assert res["accuracy"] == 1.0 and c["n"] == 8 and c["skipped"] == 0 and c["asked"] == 32
    assert c["accuracy_all_rotations"] == 1.0 and c["consistent_rate"] == 1.0
    assert [p["accuracy"] for p in c["per_rotation"]] == [1.0] * 4
    assert c["position_bias"]["total_variation"] == pytest.approx(0.0)
    assert c["chance_all_rotations"] == pytest.approx(0.25**4)
    row = _rows(tmp_path)["c1"]
    assert [s["order"] for s in row["rotations"]] == ["ABCD", "BCDA", "CDAB", "DABC"]
    assert [s["gold"] for s in row["rotations"]] == ["B", "A", "D", "C"]  # the gold moves with its text
    assert all(s["answer_original"] == "B" for s in row["rotations"])


def test_a_letter_prior_earns_nothing_and_shows_as_position_bias(tmp_path):
    res = evaluate(RECS, EvalConfig(model="fake", circular=True), tmp_path, "mmlu", engine=LikesA({}), progress=False)
    c = res["circular"]
    assert res["accuracy"] == 0.25  # the plain run: the share of A among the golds
    assert c["accuracy_all_rotations"] == 0.0 and c["ci95_all_rotations"][0] == 0.0
    assert [p["accuracy"] for p in c["per_rotation"]] == [0.25] * 4 and c["consistent_rate"] == 0.0
    bias = c["position_bias"]["positions"]
    assert bias["A"]["chosen_share"] == 1.0 and bias["A"]["gold_share"] == 0.25 and bias["A"]["ratio"] == 4.0
    assert bias["A"]["ci95"][0] > 0.85 and c["position_bias"]["total_variation"] == pytest.approx(0.75)


def test_a_question_that_cannot_be_rotated_is_counted_as_skipped_never_scored_as_circular(tmp_path):
    res = evaluate([*RECS[:3], STUCK], EvalConfig(model="fake", circular=True), tmp_path, "mmlu",
                   engine=KnowsEngine({}), progress=False)  # fmt: skip
    c = res["circular"]
    assert c["n"] == 3 and c["skipped"] == 1 and c["skipped_ids"] == ["stuck"]
    assert c["skipped_reasons"] == {"1 of 3 options free to move (2 anchored)": 1}
    row = _rows(tmp_path)["stuck"]
    assert "rotations" not in row and row["circular_skipped"].startswith("1 of 3") and row["correct"]
    assert res["n"] == 4  # its plain answer still counts in the plain accuracy


def test_questions_without_options_are_a_one_line_error(tmp_path):
    gsm = [Record(id="g", question="2+2?", options={}, answer="4")]
    with pytest.raises(UserError, match="gsm8k: circular evaluation needs multiple-choice questions; question 'g'"):
        evaluate(gsm, EvalConfig(model="fake", circular=True), tmp_path, "gsm8k", engine=KnowsEngine({}),
                 progress=False)  # fmt: skip


def test_generate_mode_asks_every_rotation(tmp_path):
    script = {f"Question {i}?": ["<think>.</think><answer>C</answer>"] for i in range(4)}
    config = EvalConfig(model="fake", mode="generate", circular=True, max_new_tokens=8)
    res = evaluate(RECS[:4], config, tmp_path, "mmlu", engine=ScriptedEngine(script), progress=False)
    c = res["circular"]
    assert c["asked"] == 16 and c["accuracy_all_rotations"] == 0.0
    assert c["position_bias"]["positions"]["C"]["chosen_share"] == 1.0
    row = _rows(tmp_path)["c0"]
    assert all(s["response"].endswith("<answer>C</answer>") and s["answer"] == "C" for s in row["rotations"])
    assert [s["correct"] for s in row["rotations"]] == [s["gold"] == "C" for s in row["rotations"]]


def test_long_option_lists_get_seeded_rotations_and_keys_differ(tmp_path):
    ten = [Record(id="t", question="Question 0?", options={k: f"o{k}" for k in "ABCDEFGHIJ"}, answer="C")]
    config = EvalConfig(model="fake", circular=True, circular_rotations=3)
    res = evaluate(ten, config, tmp_path, "mmlu_pro", engine=LikesA({}), progress=False)
    assert res["circular"]["rotations_per_question"] == {"min": 3, "max": 3}
    plain = prediction_key(prediction_settings(EvalConfig(model="fake"), "fp"))
    assert plain != prediction_key(prediction_settings(config, "fp"))
    assert "circular" not in prediction_settings(EvalConfig(model="fake"), "fp")  # plain keys unchanged


def test_loglik_rotations_share_the_stem(tiny_checkpoint, tmp_path, monkeypatch):
    """On a tiny random model: each question's rotations fall in one prefix group whose prefix covers the header
    and the question, and the original-order answers equal a plain run's."""
    from medrlvr.engines import cache, loglik
    from medrlvr.engines.hf import TransformersEngine

    groups = []
    original = cache.prefix_groups

    def spy(seqs, *args, **kwargs):
        out = original(seqs, *args, **kwargs)
        groups.append((seqs, out))
        return out

    monkeypatch.setattr(loglik, "prefix_groups", spy)
    long = [Record(id=f"s{i}", question=f"Question {i}? " + "A long clinical stem. " * 6,
                   options={"A": "w", "B": "x", "C": "y", "D": "z"}, answer="B", subject="anatomy")
            for i in range(2)]  # fmt: skip
    engine = TransformersEngine(str(tiny_checkpoint), dtype="fp32")
    res = evaluate(long, EvalConfig(model="tiny", circular=True), tmp_path / "c", "mmlu", engine=engine,
                   progress=False)  # fmt: skip
    seqs, out = groups[-1]
    assert len(seqs) == 32  # 2 questions x 4 rotations x 4 letters (" A" is two tokens of this tokenizer)
    stems = [(p, sorted(m)) for p, m in out if p]
    assert sorted(m for _, m in stems) == [list(range(16)), list(range(16, 32))]  # one group per question
    assert all(p >= len("The following are") + len(long[0].question) for p, _ in stems)  # characters = tokens here
    plain = evaluate(long, EvalConfig(model="tiny"), tmp_path / "p", "mmlu", engine=engine, progress=False)
    rows, plain_rows = _rows(tmp_path / "c"), _rows(tmp_path / "p")
    assert [rows[r.id]["answer"] for r in long] == [plain_rows[r.id]["answer"] for r in long]
    assert res["circular"]["asked"] == 8 and plain["n"] == 2


def test_the_report_shows_circular_accuracy_position_bias_and_uses_them(tmp_path):
    from medrlvr.report import report
    from medrlvr.rundir import eval_dir

    run = tmp_path / "run"
    for model, engine in (("knows", KnowsEngine({})), ("likes-a", LikesA({}))):
        evaluate(RECS, EvalConfig(model=model, circular=True), eval_dir(run, model, "mmlu"), "mmlu",
                 engine=engine, progress=False)  # fmt: skip
    out = report(run)
    table = (out / "circular.md").read_text()
    assert "likes-a" in table and "0.000 [0.000, 0.324]" in table  # right under every rotation, Wilson of 0/8
    assert "A: 100% [0.893, 1.000] of answers, 25% of golds" in table
    flags = (out / "flags.md").read_text()
    assert "position_bias" in flags.replace(" ", "_") and "likes-a" in flags and "knows" not in flags
    baselines = [line for line in (out / "baselines.md").read_text().splitlines() if "likes-a" in line]
    assert baselines and "right under every rotation 0.000" in (out / "baselines.md").read_text()
    assert "Circular evaluation" in (out / "index.html").read_text()


def test_bench_circular_checks_its_arguments_in_one_line(capsys):
    from medrlvr.cli import main

    assert main(["bench", "circular", "--rotations", "1"]) not in (0, None)  # before any model loads
    err = capsys.readouterr().err.strip()
    assert err.endswith("--rotations must be at least 2, got 1") and len(err.splitlines()) == 1
