"""Loaders on our own fixture files (official layouts), error reporting, and the real data when it is there."""

import json
from collections import Counter

import pytest

from medrlvr.data import BENCHMARKS, DataError, load_benchmark
from medrlvr.data.subjects import SUBJECT_GROUPS
from medrlvr.rewards import accuracy_reward

FIXTURE_COUNTS = {
    ("medqa", "test"): 3, ("medqa", "train"): 2, ("medqa5", "test"): 2, ("medmcqa", "dev"): 3,
    ("pubmedqa", "test"): 2, ("pubmedqa", "train"): 2, ("medxpertqa", "test"): 3, ("mmlu", "test"): 3,
    ("mmlu", "dev"): 1, ("cmmlu", "test"): 3, ("mmlu_pro", "test"): 3, ("mmlu_pro", "validation"): 1,
    ("gsm8k", "test"): 2,
}  # fmt: skip


@pytest.mark.parametrize("name, split", FIXTURE_COUNTS)
def test_fixture_loads(fixture_data, name, split):
    records = load_benchmark(name, split, fixture_data)
    assert len(records) == FIXTURE_COUNTS[name, split]
    assert len({r.id for r in records}) == len(records)
    for r in records:
        assert r.source == name and r.split == split
        assert (r.answer in r.options) if r.options else r.answer.lstrip("-").replace(".", "").isdigit()


def test_fixture_contents(fixture_data):
    medqa = load_benchmark("medqa", "test", fixture_data)
    assert [r.answer for r in medqa] == ["A", "C", "B"] and medqa[1].subject == "step2&3"
    assert [r.answer for r in load_benchmark("medqa5", "test", fixture_data)] == ["A", "E"]
    mcqa = load_benchmark("medmcqa", "dev", fixture_data)
    assert [r.answer for r in mcqa] == ["B", "D", "A"] and mcqa[0].explanation.startswith("The phrenic")
    assert load_benchmark("medmcqa", "test", fixture_data)[0].split == "dev"  # no public test answers
    pub = load_benchmark("pubmedqa", "test", fixture_data)
    assert [r.id for r in pub] == ["900002", "900003"] and [r.answer for r in pub] == ["B", "C"]
    assert dict(pub[0].options) == {"A": "yes", "B": "no", "C": "maybe"}
    assert "RESULTS: No association" in pub[0].question and pub[0].question.endswith("cause peptic ulcers?")
    assert {r.id for r in load_benchmark("pubmedqa", "train", fixture_data)} == {"900001", "900004"}
    mx = load_benchmark("medxpertqa", "test", fixture_data)
    assert [r.subject for r in mx] == ["reasoning", "reasoning", "understanding"]
    assert "Answer Choices" not in mx[0].question and len(mx[0].options) == 10
    mmlu = load_benchmark("mmlu", "test", fixture_data)
    assert [(r.subject, r.answer) for r in mmlu] == [("anatomy", "B"), ("anatomy", "A"), ("astronomy", "C")]
    assert "foramen magnum, the main" in mmlu[1].question
    cm = load_benchmark("cmmlu", "test", fixture_data)
    assert [(r.subject, r.answer) for r in cm] == [("anatomy", "B"), ("anatomy", "C"), ("arts", "A")]
    pro = load_benchmark("mmlu_pro", "test", fixture_data)
    assert [len(r.options) for r in pro] == [10, 4, 5] and pro[0].subject == "health"
    assert load_benchmark("mmlu_pro", "dev", fixture_data)[0].explanation.endswith("The answer is (B).")
    gsm = load_benchmark("gsm8k", "test", fixture_data)
    assert [r.answer for r in gsm] == ["105", "18"] and not gsm[0].options


def test_subject_groups(fixture_data):
    assert {r.subject for r in load_benchmark("mmlu", "test", fixture_data, subjects="medical")} == {"anatomy"}
    assert [r.subject for r in load_benchmark("mmlu", "test", fixture_data, subjects=["stem"])] == ["astronomy"]
    assert len(load_benchmark("mmlu_pro", "test", fixture_data, subjects="medical")) == 1
    assert len(load_benchmark("cmmlu", "test", fixture_data, subjects="arts,anatomy")) == 3
    with pytest.raises(DataError, match="no rows for subjects"):
        load_benchmark("mmlu", "test", fixture_data, subjects="nonexistent_subject")
    assert set(SUBJECT_GROUPS["mmlu"]["medical"]) >= {"anatomy", "virology", "professional_medicine"}


def test_data_dir_from_environment(fixture_data, monkeypatch):
    monkeypatch.setenv("MEDRLVR_DATA_DIR", str(fixture_data))
    assert len(load_benchmark("medqa")) == 3
    monkeypatch.delenv("MEDRLVR_DATA_DIR")
    with pytest.raises(DataError, match="MEDRLVR_DATA_DIR"):
        load_benchmark("medqa")


@pytest.mark.parametrize(
    "bad",
    [
        lambda d: load_benchmark("nope", "test", d),
        lambda d: load_benchmark("medqa", "nosuchsplit", d),
        lambda d: load_benchmark("medqa", "dev", d),  # known split, files absent
    ],
)
def test_bad_requests_are_clear(fixture_data, bad):
    with pytest.raises(DataError):
        bad(fixture_data)


def _append(path, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


LATIN1_ROW = b'{"question": "caf\xe9?", "answer": "#### 4"}\n'  # 0xe9 is "e acute" in latin-1, not UTF-8


def _append_bytes(path, data: bytes):
    with open(path, "ab") as f:
        f.write(data)


@pytest.mark.parametrize(
    "name, split, corrupt, where, field",
    [
        ("medqa", "test", lambda d: _append(d / "medqa/US/4_options/phrases_no_exclude_test.jsonl",
            json.dumps({"question": "q?", "options": {"A": "x", "B": "y"}, "answer_idx": "E"}) + "\n"), "line 4", "answer_idx"),
        ("medqa", "test", lambda d: _append(d / "medqa/US/4_options/phrases_no_exclude_test.jsonl", "{oops\n"),
            "line 4", "<json>"),
        ("medqa", "test", lambda d: _append(d / "medqa/US/4_options/phrases_no_exclude_test.jsonl",
            json.dumps({"options": {"A": "x", "B": "y"}, "answer_idx": "A"}) + "\n"), "line 4", "question"),
        ("medmcqa", "dev", lambda d: _append(d / "medmcqa/dev.json", json.dumps({"question": "q", "cop": 7,
            "opa": "a", "opb": "b", "opc": "c", "opd": "d", "id": "bad"}) + "\n"), "line 4", "cop"),
        ("mmlu", "test", lambda d: _append(d / "mmlu/test/astronomy_test.csv", "Only,three,columns\n"), "line 2", "<row>"),
        ("mmlu", "test", lambda d: _append(d / "mmlu/test/astronomy_test.csv", "Q?,a,b,c,d,F\n"), "line 2", "answer"),
        ("cmmlu", "test", lambda d: _append(d / "cmmlu/test/arts.csv", "1,问题,甲,乙,,丁,A\n"), "line 3", "options"),
        ("gsm8k", "test", lambda d: _append(d / "gsm8k/test.jsonl", json.dumps({"question": "q", "answer": "no final"}) + "\n"),
            "line 3", "answer"),
        # latin-1 bytes (0xe9 is "é"): the row and field are named, and --on-error skip skips just that row
        ("gsm8k", "test", lambda d: _append_bytes(d / "gsm8k/test.jsonl", LATIN1_ROW), "line 3", "question"),
        ("mmlu", "test", lambda d: _append_bytes(d / "mmlu/test/astronomy_test.csv", b"Caf\xe9?,a,b,c,d,A\n"),
            "line 2", "column 1"),
        # a 5 MB field is over the csv module's limit (it used to escape as a bare _csv.Error traceback)
        ("mmlu", "test", lambda d: _append(d / "mmlu/test/astronomy_test.csv", f'"{"x" * 5_000_000}",a,b,c,d,A\n'),
            "line 2", "<csv>"),
    ],
)  # fmt: skip
def test_malformed_row_names_file_row_and_field(data_copy, name, split, corrupt, where, field):
    corrupt(data_copy)
    with pytest.raises(DataError) as info:
        load_benchmark(name, split, data_copy)
    message = str(info.value)
    assert "\n" not in message
    assert str(data_copy) in message and f"{where}:" in message and f"field '{field}'" in message
    records = load_benchmark(name, split, data_copy, on_error="skip")
    assert len(records.skipped) == 1 and len(records) == FIXTURE_COUNTS[name, split]


def test_pubmedqa_bad_decision(data_copy):
    path = data_copy / "pubmedqa/test_set.json"
    data = json.loads(path.read_text())
    data["900003"]["final_decision"] = "perhaps"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"PMID 900003: field 'final_decision'"):
        load_benchmark("pubmedqa", "test", data_copy)


# --- the real files (../shared/data in CI) ---------------------------------------------------------------

OFFICIAL = {
    ("medqa", "test"): 1273, ("medqa5", "test"): 1273, ("medmcqa", "dev"): 4183, ("pubmedqa", "test"): 500,
    ("pubmedqa", "train"): 500, ("medxpertqa", "test"): 2450, ("mmlu", "test"): 14042, ("mmlu", "dev"): 285,
    ("mmlu", "val"): 1531, ("cmmlu", "test"): 11582, ("cmmlu", "dev"): 335, ("mmlu_pro", "test"): 12032,
    ("mmlu_pro", "validation"): 70, ("gsm8k", "test"): 1319, ("gsm8k", "train"): 7473,
}  # fmt: skip


def _gold_completion(r):
    return f"<think>checking</think><answer>{r.answer}</answer>"


@pytest.mark.parametrize("name, split", OFFICIAL)
def test_real_data_counts_and_gold(real_data, name, split):
    records = load_benchmark(name, split, real_data)
    assert len(records) == OFFICIAL[name, split]
    assert len({r.id for r in records}) == len(records)
    if name != "gsm8k":
        assert all(r.answer in r.options for r in records)
        options = [dict(r.options) for r in records]
    else:
        options = None
    answers = [r.answer for r in records]
    assert accuracy_reward([_gold_completion(r) for r in records], answer=answers, options=options) == [1.0] * len(
        records
    )
    # The gold option's text, with no letter, also scores (the text of an option counts as that option)
    # wherever that text is unique among the question's options and is not itself a letter ("B" as option A's text).
    unique = [
        r for r in records
        if r.options and list(map(str.casefold, r.options.values())).count(r.answer_text.casefold()) == 1
        and len(r.answer_text.strip()) > 1
    ]  # fmt: skip
    if unique:
        texts = [f"<answer>{r.answer_text}</answer>" for r in unique]
        scores = accuracy_reward(texts, answer=[r.answer for r in unique], options=[dict(r.options) for r in unique])
        assert sum(scores) / len(scores) > 0.999


@pytest.mark.parametrize("name, split", [key for key in OFFICIAL if key[0] != "gsm8k"])
def test_real_gold_options_pay_in_every_clean_form(real_data, name, split):
    """The rewards pay only what the strict answer grammar accepts: every gold option, written as its letter with its
    text ("B. text", "(B) text"), and as its text alone where that text is unique and not a letter, still pays."""
    records = load_benchmark(name, split, real_data)
    forms = ["<answer>{r.answer}. {r.answer_text}</answer>", "<answer>({r.answer}) {r.answer_text}</answer>"]
    for form in forms:
        texts = [form.format(r=r) for r in records]
        scores = accuracy_reward(texts, answer=[r.answer for r in records], options=[dict(r.options) for r in records])
        assert [t for t, x in zip(texts, scores) if x != 1.0] == []
    unique = [
        r for r in records
        if list(map(str.casefold, r.options.values())).count(r.answer_text.casefold()) == 1
        and len(r.answer_text.strip()) > 1
    ]  # fmt: skip
    texts = [f"<answer>{r.answer_text}</answer>" for r in unique]
    scores = accuracy_reward(texts, answer=[r.answer for r in unique], options=[dict(r.options) for r in unique])
    assert [t for t, x in zip(texts, scores) if x != 1.0] == []


def test_real_data_known_figures(real_data):
    mmlu = load_benchmark("mmlu", "test", real_data, subjects="medical")
    assert Counter(r.subject for r in mmlu) == {
        "anatomy": 135, "clinical_knowledge": 265, "college_biology": 144, "college_medicine": 173,
        "medical_genetics": 100, "professional_medicine": 272, "high_school_biology": 310, "nutrition": 306,
        "virology": 166,
    }  # fmt: skip
    assert Counter(r.answer for r in load_benchmark("medqa", "test", real_data)) == {
        "A": 353,
        "B": 309,
        "C": 346,
        "D": 265,
    }
    assert Counter(r.answer for r in load_benchmark("medmcqa", "dev", real_data)) == {
        "A": 1348,
        "B": 1085,
        "C": 925,
        "D": 825,
    }
    assert len(load_benchmark("mmlu_pro", "test", real_data, subjects="medical")) == 818
    assert (
        len(load_benchmark("cmmlu", "test", real_data, subjects="medical"))
        == 148 + 237 + 273 + 176 + 145 + 185 + 169 + 169 + 106 + 376
    )
    pro = {r.id: r for r in load_benchmark("mmlu_pro", "test", real_data)}
    assert pro["3983"].answer == "C"  # the upstream quirk: the letter is gold, not answer_index
    assert (
        sum(
            len(load_benchmark("mmlu", "test", real_data, subjects=c))
            for c in ("stem", "humanities", "social_sciences", "other")
        )
        == 14042
    )
    assert {b for b in BENCHMARKS} == {
        "medqa",
        "medqa5",
        "medmcqa",
        "pubmedqa",
        "medxpertqa",
        "mmlu",
        "cmmlu",
        "mmlu_pro",
        "gsm8k",
        "demo",
    }


def test_bundled_demo_questions_load_without_a_data_directory(monkeypatch):
    from medrlvr.data import load_pool

    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    pool, test = load_pool("demo:train"), load_benchmark("demo")
    assert len(pool) == 40 and len(test) == 40
    assert {r.split for r in pool} == {"train"} and {r.split for r in test} == {"test"}
    assert not {r.question for r in pool} & {r.question for r in test}
    for records in (pool, test):
        assert Counter(r.answer for r in records) == {"A": 10, "B": 10, "C": 10, "D": 10}
        assert len({r.subject for r in records}) >= 10 and all(r.explanation for r in records)
        golds = [f"<answer>{r.answer}</answer>" for r in records]
        assert accuracy_reward(golds, answer=[r.answer for r in records]) == [1.0] * len(records)
    with pytest.raises(DataError, match="evaluation only"):
        load_pool("demo:test")


def test_an_empty_benchmark_file_is_an_error_not_zero_questions(data_copy, capsys, tiny_checkpoint, tmp_path):
    """It used to give exit 0 and "accuracy 0.000 on 0 questions"."""
    from medrlvr.cli import main

    (data_copy / "gsm8k/test.jsonl").write_text("")
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl: no questions in gsm8k test"):
        load_benchmark("gsm8k", "test", data_copy)
    argv = ["eval", "--model", str(tiny_checkpoint), "--benchmarks", "gsm8k", "--data-dir", str(data_copy),
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gsm8k/test.jsonl" in err and "no questions" in err


def test_data_show_skips_bytes_that_are_not_utf8_and_names_them(data_copy, capsys):
    from medrlvr.cli import main

    _append_bytes(data_copy / "gsm8k/test.jsonl", LATIN1_ROW)
    assert main(["data", "show", "gsm8k", "--data-dir", str(data_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test.jsonl: line 3: field 'question'" in err and "0xe9" in err
    assert main(["data", "show", "gsm8k", "--data-dir", str(data_copy), "--on-error", "skip"]) == 0
    assert "2 questions, 1 malformed rows skipped" in capsys.readouterr().out
