"""Rewards: literal tables, TRL and verl call forms, and properties (never raise, linear time) with hypothesis."""

import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from medrlvr.rewards import (
    accuracy_reward, compute_score, format_reward, get_reward, xml_count_reward,
)  # fmt: skip

OPTS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}

ACCURACY = [
    ("<think>x</think><answer>B</answer>", 1.0),
    ("<answer>Vitamin A deficiency</answer>", 1.0),
    ("\\boxed{B}", 1.0),
    ("<answer>A</answer>", 0.0),
    ("", 0.0),
    ("<answer></answer>", 0.0),
    ("<answer>A or B</answer>", 0.0),
    ("<answer>B</answer><answer>A</answer>", 0.0),
    ("<answer>B</answer><answer>C</answer><answer>D</answer>", 0.0),
    ("<think>the answer is B</think><answer></answer>", 0.0),
    ("<think>B</think>", 0.0),
    ("<answer>A B C D</answer>", 0.0),
]


@pytest.mark.parametrize("text, score", ACCURACY)
def test_accuracy_table(text, score):
    assert accuracy_reward([text], answer=["B"], options=[OPTS]) == [score]


def test_accuracy_without_options_and_for_numbers():
    assert accuracy_reward(["<answer>B</answer>", "<answer>E</answer>"], answer=["B", "B"]) == [1.0, 0.0]
    # a letter that is not among the options passed scores nothing, even if it is the gold's neighbour
    assert accuracy_reward(["<answer>E</answer>"], answer=["B"], options=[OPTS]) == [0.0]
    assert accuracy_reward(["#### 1,800", "\\boxed{1800.0}", "#### 18"], answer=["1800"] * 3) == [1.0, 1.0, 0.0]


def test_chat_format_completions():
    chat = [
        [{"role": "assistant", "content": "<think>x</think><answer>B</answer>"}],
        [{"role": "assistant", "content": ""}],
    ]
    assert accuracy_reward(chat, answer=["B", "B"], options=[OPTS, OPTS]) == [1.0, 0.0]
    assert format_reward(chat) == [1.0, 0.0]
    assert xml_count_reward(chat) == [1.0, 0.0]


FORMAT = [
    ("<think>r</think><answer>B</answer>", 1.0),
    ("  <think>\nr\n</think>\n\n<answer> B </answer>\n", 1.0),
    ("<think>r</think>", 0.0),
    ("<answer>B</answer>", 0.0),
    ("<answer>B</answer><think>r</think>", 0.0),
    ("<think>r</think> text <answer>B</answer>", 0.0),
    ("preamble <think>r</think><answer>B</answer>", 0.0),
    ("<think>r</think><answer>B</answer> trailing", 0.0),
    ("<think>r</think><answer>B</answer><answer>B</answer>", 0.0),
    ("<think><think>r</think><answer>B</answer>", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("text, score", FORMAT)
def test_format_table(text, score):
    assert format_reward([text]) == [score]


XML = [
    ("<think>r</think><answer>B</answer>", 1.0),
    ("<think>r</think><answer>B</answer>" + "x" * 10, 0.99),
    ("<think>r</think><answer>B</answer>" + "x" * 5000, 0.75),
    ("<think>r</think>", 0.5),
    ("<think>r</think><answer>B</answer><answer>C</answer>", 0.5),
    ("", 0.0),
]


@pytest.mark.parametrize("text, score", XML)
def test_xml_count_table(text, score):
    assert xml_count_reward([text]) == [pytest.approx(score)]


def test_verl_compute_score():
    assert compute_score("medqa", "<answer>B</answer>", "B", {"options": OPTS}) == 1.0
    assert (
        compute_score(
            "medqa",
            "<answer>Vitamin A deficiency</answer>",
            "B",
            {"options": '{"A": "x", "B": "Vitamin A deficiency"}'},
        )
        == 1.0
    )
    assert compute_score("medqa", "<answer>A or B</answer>", "B", None) == 0.0
    assert compute_score("gsm8k", "#### 72", "72") == 1.0
    assert compute_score(None, None, None, None) == 0.0


def test_rewards_by_name():
    assert get_reward("format") is format_reward
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward("nope")


# --- properties ---------------------------------------------------------------------------------------

TAGGY = st.lists(
    st.sampled_from(
        list("AB CDEJ<>/{}\\()*.:\n")
        + ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "answer is ", "Answer: ", "####", "7", " or "]
    ),
    max_size=60,
).map("".join)
ANY_COMPLETION = st.one_of(
    TAGGY, st.text(max_size=300), st.none(), st.integers(), st.lists(st.dictionaries(st.sampled_from(["role", "content"]),
    st.one_of(st.text(max_size=50), st.none(), st.integers()))),
)  # fmt: skip
ANY_GOLD = st.one_of(st.sampled_from(["A", "B", "J", "72", "-3.5", ""]), st.text(max_size=5), st.none(), st.integers())
ANY_OPTIONS = st.one_of(
    st.none(),
    st.just(OPTS),
    st.lists(st.text(max_size=8), max_size=12),
    st.dictionaries(st.text(max_size=2), st.one_of(st.text(max_size=8), st.none()), max_size=12),
    st.text(max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(completion=ANY_COMPLETION, gold=ANY_GOLD, options=ANY_OPTIONS)
def test_rewards_never_raise_and_stay_in_range(completion, gold, options):
    for reward in (accuracy_reward, format_reward, xml_count_reward):
        scores = reward([completion], answer=[gold], options=[options])
        assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0
    assert compute_score("x", completion, gold, {"options": options}) in (0.0, 1.0)


@settings(max_examples=400, deadline=None)
@given(text=TAGGY, gold=st.sampled_from("ABCD"))
@example(text="answer is C<think>", gold="C")  # found by CI: an unclosed <think> hid the conflicting tags
def test_no_pay_for_hedging(text, gold):
    """Appending a conflicting answer tag never raises the accuracy reward, and naming every letter never pays."""
    other = "A" if gold != "A" else "B"
    hedged = f"{text}<answer>{gold}</answer><answer>{other}</answer>"
    assert accuracy_reward([hedged], answer=[gold], options=[OPTS]) == [0.0]
    assert accuracy_reward([f"<answer>{gold} or {other}</answer>"], answer=[gold], options=[OPTS]) == [0.0]


ADVERSARIAL_UNITS = [
    "<answer>",
    "<think>",
    "\\boxed{",
    "{",
    "answer is ",
    "Answer: A or ",
    "A ",
    "#### 1,",
    "</answer>",
    "(",
    "1",
]


@settings(max_examples=60, deadline=None)
@given(unit=st.lists(st.sampled_from(ADVERSARIAL_UNITS), min_size=1, max_size=4).map("".join))
def test_100kb_adversarial_completion_is_linear(unit):
    """A 100 KB repetition of tag and pattern fragments. The budget is 50 ms (measured by `medrlvr bench rewards`);
    this test only catches super-linear blow-ups, which take seconds to minutes, with a bound 20x the budget."""
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    start = time.perf_counter()
    for reward in (accuracy_reward, format_reward, xml_count_reward):
        reward([text], answer=["B"], options=[OPTS])
    assert time.perf_counter() - start < 1.0
