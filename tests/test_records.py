import dataclasses

import pytest

from medrlvr.records import Record


def make(**kw):
    base = dict(
        id="q1", question="Which?", options={"A": "x", "B": "y"}, answer="B", subject="s", source="t", split="test"
    )
    return Record(**{**base, **kw})


def test_record_is_frozen_and_hashable_by_id():
    r = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.answer = "A"
    with pytest.raises(TypeError):
        r.options["A"] = "changed"
    assert {r, make(question="other text")} == {r}
    assert r != make(id="q2")
    assert r.answer_text == "y"


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(options={"A": "only"}, answer="A"), "options"),
        (dict(options={f"{chr(65 + i)}": str(i) for i in range(11)}, answer="A"), "options"),
        (dict(options={"A": "x", "C": "y"}, answer="A"), "options"),
        (dict(options={"A": "x", "B": " "}, answer="A"), "options"),
        (dict(answer="C"), "answer"),
        (dict(question=""), "question"),
        (dict(id=""), "id"),
    ],
)
def test_record_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        make(**kw)


def test_round_trip_and_numeric_record():
    r = make(explanation="because")
    assert Record.from_dict(r.to_dict()).to_dict() == r.to_dict()
    gsm = Record(id="g", question="1+1?", options={}, answer="2")
    assert not gsm.is_multiple_choice and gsm.answer_text == "2"
    with pytest.raises(ValueError, match="field 'answer' is missing"):
        Record.from_dict({"id": "x", "question": "q", "options": {}})
