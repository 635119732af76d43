"""Answer extraction from a table of literal cases: what each pattern reads, and what must never count."""

import pytest

from medrlvr.extract import extract_answer, extract_choice, extract_number, strip_think

OPTS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}

CHOICE_CASES = [
    # (completion, expected letter, deciding pattern)
    ("<think>maybe A</think><answer>B</answer>", "B", "answer_tag"),
    ("<think>x</think>\n<answer> (C) </answer>", "C", "answer_tag"),
    ("<answer>**D**</answer>", "D", "answer_tag"),
    ("<answer>B. Vitamin A deficiency</answer>", "B", "answer_tag"),
    ("<answer>Vitamin A deficiency</answer>", "B", "answer_tag"),
    ("<answer>ibuprofen</answer>", "C", "answer_tag"),
    ("<answer>The answer is C</answer>", "C", "answer_tag"),
    ("<answer>Option D</answer>", "D", "answer_tag"),
    ("<answer>\\text{A}</answer>", "A", "answer_tag"),
    ("Reasoning... so \\boxed{C}", "C", "boxed"),
    ("\\boxed{\\text{(B) Vitamin A deficiency}}", "B", "boxed"),
    ("\\boxed{B} and later \\boxed{B}", "B", "boxed"),
    ("Thus the answer is (A).", "A", "answer_is"),
    ("The correct answer is: **C**", "C", "answer_is"),
    ("The answer is B because the patient lacks vitamin A", "B", "answer_is"),
    ("Some reasoning.\nAnswer: D", "D", "answer_colon"),
    ("The correct answer is:\nC. Ibuprofen", "C", "answer_is"),
    ("**Answer:**\n\nB", None, "answer_colon"),  # only the very next line is read
    ("**Final Answer:** C", "C", "answer_colon"),
    # the answer tag outranks everything else
    ("The answer is A. <answer>C</answer>", "C", "answer_tag"),
    ("\\boxed{A} <answer>B</answer>", "B", "answer_tag"),
]

HACKS = [
    # (completion, why it must not score any letter)
    ("", "empty"),
    ("<answer></answer>", "empty answer"),
    ("<answer>   </answer>", "blank answer"),
    ("<answer>A or B</answer>", "hedge in one tag"),
    ("<answer>A, B, C, D</answer>", "every letter"),
    ("<answer>A/B</answer>", "hedge with a slash"),
    ("<answer>A</answer><answer>B</answer>", "two tags, two letters"),
    ("\\boxed{A} \\boxed{C}", "two boxes, two letters"),
    ("<answer>E</answer>", "a letter that is not an option"),
    ("The answer is E.", "a letter that is not an option, in prose"),
    ("<think>The answer is B</think>", "a letter inside <think> only"),
    ("<think>Answer: B", "unclosed think"),
    ("<answer>aspirin or ibuprofen</answer>", "hedge by option texts"),
    ("Answer: A or C", "hedge in prose"),
    ("The answer is A. Actually the answer is B.", "two answers in prose"),
    ("A B C D", "letters with no answer pattern"),
    ("<answer>Unknown</answer>", "no letter, no option"),
    ("\\boxed{B", "unclosed box"),
    ("<answer>B</answer>" * 40, "answer-tag spam"),
    ("The answer is B. " * 40, "answer-cue spam"),
]


@pytest.mark.parametrize("text, letter, pattern", CHOICE_CASES)
def test_choice_cases(text, letter, pattern):
    assert extract_choice(text, OPTS) == (letter, pattern)


@pytest.mark.parametrize("text, why", HACKS)
def test_hacks_extract_nothing(text, why):
    assert extract_choice(text, OPTS).answer is None, why


def test_strict_reads_only_the_prompted_formats():
    assert extract_answer("The answer is (A).", OPTS) == "A"
    assert extract_answer("The answer is (A).", OPTS, strict=True) is None
    assert extract_answer("\\boxed{A}", OPTS, strict=True) == "A"


def test_letters_are_limited_to_the_options():
    ten = {letter: f"option {letter}" for letter in "ABCDEFGHIJ"}
    assert extract_choice("<answer>J</answer>", ten).answer == "J"
    assert extract_choice("<answer>J</answer>", OPTS).answer is None
    # option texts that are themselves letters (MedMCQA): a bare letter is the letter
    assert extract_choice("<answer>C</answer>", {"A": "a", "B": "c", "C": "bc", "D": "ad"}).answer == "C"
    # options as a list, as a dataset column may hold them; None entries (padded struct columns) dropped
    assert extract_choice("<answer>B</answer>", ["x", "y"]).answer == "B"
    assert extract_choice("<answer>C</answer>", {"A": "x", "B": "y", "C": None}).answer is None


def test_strip_think():
    assert strip_think("<think>A</think>B<think>C</think>D") == "BD"
    assert strip_think("reasoning A </think> answer B") == " answer B"  # the prompt opened the tag
    assert strip_think("before <think> never closed A") == "before "
    assert strip_think("x<think>never closed<answer>B</answer>") == "x<answer>B</answer>"  # an answer ends it


NUMBER_CASES = [
    ("So she has 18 left.\n#### 18", "18"),
    ("#### 1,234", "1234"),
    ("\\boxed{18.00}", "18"),
    ("\\boxed{\\frac{3}{4}}", "0.75"),
    ("The answer is $42.", "42"),
    ("<answer>-7</answer>", "-7"),
    ("<think>#### 3</think><answer>5</answer>", "5"),
    ("I compute 5 then 7 apples.", "7"),
    ("<answer>18 or 20</answer>", None),
    ("#### 18\n#### 20", None),
    ("<think>it is 12</think>", None),
    ("no digits at all", None),
    ("", None),
]


@pytest.mark.parametrize("text, number", NUMBER_CASES)
def test_number_cases(text, number):
    assert extract_number(text).answer == number
    assert extract_answer(text) == number
