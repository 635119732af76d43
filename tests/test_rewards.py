"""Rewards: literal tables, TRL and verl call forms, and properties (never raise, bounded work) with hypothesis."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from medrlvr import extract
from medrlvr.bench import ADVERSARIAL_UNITS
from medrlvr.rewards import (
    accuracy_reward,
    choice_reward,
    compute_score,
    format_reward,
    get_reward,
    xml_count_reward,
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


DRUGS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}
ISSUE_14 = [
    # (completion, gold, score): each of these scored the other way before issue 14
    ("<answer>not A</answer>", "A", 0.0),
    ("<answer>A is incorrect</answer>", "A", 0.0),
    ("the answer is A or maybe C", "A", 0.0),
    ("Answer: (A) (B)", "A", 0.0),
    ("Final answer: A (or D)", "A", 0.0),
    ("<answer>D C</answer>", "D", 0.0),
    ("<answer>Ｂ</answer>", "B", 1.0),
    ("<answer>option b</answer>", "B", 1.0),
    ("Answer: The correct option is A", "A", 1.0),
]


@pytest.mark.parametrize("text, gold, score", ISSUE_14)
def test_issue_14_letters(text, gold, score):
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [score]
    assert compute_score("medqa", text, gold, {"options": DRUGS}) == score


ISSUE_21 = [
    # (completion, gold, score): each of these scored the other way before issue 21
    ("<answer>nicht B</answer>", "B", 0.0),
    ("<answer>kein B</answer>", "B", 0.0),
    ("<answer>pas B</answer>", "B", 0.0),
    ("<answer>non B</answer>", "B", 0.0),
    ("<answer>~~B~~</answer>", "B", 0.0),
    ("<answer><del>B</del></answer>", "B", 0.0),
    ("<answer>不是 B</answer>", "B", 0.0),
    ("<answer>B 不对</answer>", "B", 0.0),
    ("<answer>B 或C</answer>", "B", 0.0),
    ("<answer>B oder</answer>", "B", 0.0),
    ("The answer is B. Oder C.", "B", 0.0),
    ("<answer>答案是B</answer>", "B", 1.0),
    ("答案：B", "B", 1.0),
    ("Die Antwort ist B", "B", 1.0),
    ("La respuesta es B porque A no actúa", "B", 1.0),
]


@pytest.mark.parametrize("text, gold, score", ISSUE_21)
def test_issue_21_languages_and_strike_outs(text, gold, score):
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [score]
    assert compute_score("cmmlu", text, gold, {"options": DRUGS}) == score


# The rewards refused what a list of negations matched, and lists leak. Each of these was paid for the letter it
# rejects (the last two: for one of their two answers) until the rewards paid only what the strict answer grammar
# accepts (medrlvr.extract.grammar).
LEAKS = [
    # (completion, the letter the old reward paid)
    ("<answer>A ✗</answer>", "A"),
    ("<answer>A ❌</answer>", "A"),
    ("<answer>¬A</answer>", "A"),
    ("<answer>≠ A</answer>", "A"),
    ("<answer>A is a distractor</answer>", "A"),
    ("<answer>avoid A</answer>", "A"),
    ("<answer>A is implausible</answer>", "A"),
    ("<answer>A would be a mistake</answer>", "A"),
    ("<answer>n-o-t A</answer>", "A"),
    ("<answer>A scheidet aus</answer>", "A"),
    ("<answer>A est fausse</answer>", "A"),  # while "A est faux" was refused
    ("<answer>A está mal</answer>", "A"),
    ("<answer>A valt af</answer>", "A"),
    ("<answer>\u202eA ton\u202c</answer>", "A"),  # a right-to-left override: displays as "not A"
    ("<answer>n\u2066ot B</answer>", "B"),  # an invisible isolate inside "not"
    ("<answer>A<answer>B</answer>", "B"),  # two answers, one block: paid the second
    ("<answer>A</answer>\n<answer>B", "A"),  # two answers, the second unclosed: paid the first
]


@pytest.mark.parametrize("text, gold", LEAKS)
def test_only_a_clean_answer_pays(text, gold):
    """Every reward that reads a multiple-choice answer: accuracy, verl's compute_score, and choice (which pays any
    one option, right or wrong)."""
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [0.0]
    assert compute_score("medqa", text, gold, {"options": DRUGS}) == 0.0
    assert choice_reward([text], options=[DRUGS]) == [0.0]


@pytest.mark.parametrize(
    "wrap", ["<think>r</think>\n<answer>{}</answer>", "\\boxed{{{}}}", "The answer is {}", "Answer: {}"]
)
@pytest.mark.parametrize(
    "answer", [text[len("<answer>") : -len("</answer>")] for text, _ in LEAKS[:15]] + ["A est faux"]
)
def test_leaks_pay_nothing_in_any_format(wrap, answer):
    text = wrap.format(answer)
    gold = "B" if answer.endswith("B") else "A"
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [0.0], text
    assert compute_score("medqa", text, gold, {"options": DRUGS}) == 0.0, text


@pytest.mark.parametrize(
    "text",
    [
        "<answer>A</answer><answer>B</answer>", "<answer>B</answer><answer>B</answer>", "<answer>B</answer></answer>",
        "<answer><answer>B</answer>", "</answer><answer>B</answer>", "<answer>B", "B</answer>",
        "<think><answer>A</answer></think><answer>B</answer>", "<think>x<answer>B</answer></think>",
        "<answer>B</answer>\\boxed{B} <answer>",
    ],
)  # fmt: skip
def test_answer_tags_must_be_one_block(text):
    """A second ``<answer>`` or ``</answer>`` anywhere, a tag without its pair, or a block inside the reasoning: not
    one answer, whatever the tags hold (numbers too)."""
    assert accuracy_reward([text], answer=["B"], options=[DRUGS]) == [0.0], text
    assert choice_reward([text], options=[DRUGS]) == [0.0], text
    number = text.replace("B", "18").replace("A", "19")
    assert accuracy_reward([number], answer=["18"]) == [0.0], number
    assert choice_reward([number]) == [0.0], number


CLEAN = [
    # clean answers of option B in the forms models write, in the benchmarks' languages: they pay B
    "<answer>B</answer>", "<answer> (B) </answer>", "<answer>B.</answer>", "<answer>[B]</answer>",
    "<answer>**B**</answer>", "<answer>$\\boxed{B}$</answer>", "<answer>\\text{B}</answer>", "<answer>Ｂ</answer>",
    "<answer>（Ｂ）</answer>", "<answer>b</answer>", "<answer>b)</answer>", "<answer>option b</answer>",
    "<answer>Choice (B)</answer>", "<answer>Heparin</answer>", "<answer>HEPARIN</answer>",
    "<answer>B. Heparin</answer>", "<answer>B) Heparin</answer>", "<answer>(B) heparin</answer>",
    "<answer>B: Heparin</answer>", "<answer>B (Heparin)</answer>", "<answer>Heparin (B)</answer>",
    "<answer>**B. Heparin**</answer>", "<answer>The answer is B</answer>",
    "<answer>The correct option is (B).</answer>", "<answer>Answer: B</answer>",
    "<answer>**Final Answer:** B</answer>", "<answer>Answer: The correct answer is B.</answer>",
    "<answer>B is correct</answer>",
    "<answer>B is the correct answer.</answer>", "<answer>答案是B</answer>", "<answer>答案：B</answer>",
    "<answer>正确答案为（B）</answer>", "<answer>B项</answer>", "<answer>故选B。</answer>", "<answer>选B</answer>",
    "<answer>Die Antwort ist B</answer>", "<answer>Antwort: B</answer>", "<answer>B ist richtig</answer>",
    "<answer>La réponse est B</answer>", "<answer>Réponse : B</answer>",
    "<answer>La respuesta correcta es B.</answer>", "<answer>Respuesta: B</answer>",
    "<answer>La risposta è B</answer>", "<answer>A resposta é B</answer>",
    "<answer>Het antwoord is B</answer>", "<answer>Antwoord: B</answer>",
    "<answer>\u200bB\ufeff</answer>",  # invisible characters at the ends are dropped
    "<think>A is wrong, not A, maybe C</think>\n<answer>B</answer>\n", "<answer>B</answer></s>",
    "\\boxed{B}", "So \\boxed{\\text{(B) Heparin}}.", "The answer is (B).", "Answer: B", "Final answer: **B**",
    "答案：B", "Die Antwort ist B, weil Heparin sofort wirkt", "The answer is B</s>",
]  # fmt: skip


@pytest.mark.parametrize("text", CLEAN)
def test_clean_answers_pay(text):
    assert accuracy_reward([text], answer=["B"], options=[DRUGS]) == [1.0], text
    assert accuracy_reward([text], answer=["A"], options=[DRUGS]) == [0.0], text
    assert compute_score("medqa", text, "B", {"options": DRUGS}) == 1.0, text
    assert choice_reward([text], options=[DRUGS]) == ([1.0] if "<answer>" in text else [0.0]), text


def test_rows_without_a_gold_answer_cannot_be_scored():
    """None, not 0.0: TRL turns None into NaN and leaves it out of the sum (``nansum``), so a row with no gold
    answer neither rewards nor punishes. verl wants a float: compute_score gives 0.0."""
    done = "<answer>B</answer>"
    assert accuracy_reward([done] * 5, answer=["B", None, "", "  ", float("nan")]) == [1.0, None, None, None, None]
    assert accuracy_reward([done], options=[OPTS]) == [None]  # no answer column at all
    assert accuracy_reward([done, done], answer=["B"]) == [1.0, None]  # a column shorter than the batch
    assert compute_score("medqa", done, None) == 0.0 and type(compute_score("medqa", done, "")) is float
    assert format_reward([done, None]) == [0.0, 0.0] and xml_count_reward([None]) == [0.0]  # these always score


def test_an_error_inside_a_reward_propagates(monkeypatch):
    """A reward that fails is a bug to see, not a 0.0 for the policy to learn from."""
    from medrlvr import rewards

    def broken(*args, **kwargs):
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(rewards, "extract_answer", broken)
    with pytest.raises(RuntimeError, match="extractor bug"):
        accuracy_reward(["<answer>B</answer>"], answer=["B"], options=[OPTS])
    with pytest.raises(RuntimeError, match="extractor bug"):
        compute_score("medqa", "<answer>B</answer>", "B", {"options": OPTS})


def test_inputs_are_normalised():
    """What datasets and chat templates hand over: numpy scalars and arrays, content parts, bytes options."""
    np = pytest.importorskip("numpy")
    assert accuracy_reward(["#### 72", "<answer>B</answer>"], answer=[np.int64(72), np.str_("B")]) == [1.0, 1.0]
    assert accuracy_reward(["<answer>Heparin</answer>"], answer=["B"], options=[np.array(DRUGS_LIST)]) == [1.0]
    assert accuracy_reward(["<answer>Heparin</answer>"], answer=["B"], options=[b'["x", "Heparin"]']) == [1.0]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]}]
    assert accuracy_reward([parts], answer=["B"], options=[OPTS]) == [1.0]
    assert len(accuracy_reward(np.array("<answer>B</answer>"), answer=["B"])) == 1  # a 0-d array: one completion
    assert accuracy_reward(["<answer>B</answer>"], answer=["B"], options=["[" * 100_000]) == [1.0]  # not options


DRUGS_LIST = list(DRUGS.values())


@pytest.mark.parametrize("fmt", ["<answer>{}</answer>", "#### {}", "\\boxed{{{}}}", "The answer is {}.", "{}"])
@pytest.mark.parametrize("span, gold", [("18/19", "19"), ("18/19", "18"), ("18, 19", "19"), ("not 18", "18")])
def test_issue_14_numbers(fmt, span, gold):
    """GSM8K paid "18/19" and "18, 19" (the last number) and "not 18"."""
    text = fmt.format(span)
    assert accuracy_reward([text], answer=[gold]) == [0.0]
    assert compute_score("gsm8k", text, gold) == 0.0


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
    assert compute_score("medqa", b"<answer>B</answer>", b"B", {"options": OPTS}) == 1.0  # bytes are UTF-8 text


class Unprintable:
    def __str__(self):
        raise RuntimeError("no text")


WEIRD = [
    None, 42, 3.5, b"<answer>\xff\xfe</answer>", bytearray(b"\x00"), {"content": None}, {"role": "assistant"},
    [{"role": "assistant", "content": 7}], [[[["deep"]]]], Unprintable(), object(), "\ud800<answer>B</answer>",
    "<answer>B\u0301</answer>", "\u202e<answer>B</answer>", "<answer>\x00B\x00</answer>", "\U0001f600" * 1000,
    "<answer>" + "Ｂ" * 3000 + "</answer>", "\\boxed{" * 50_000, "<answer>B</answer>" + " " * 2_000_000,
]  # fmt: skip


@pytest.mark.parametrize("completion", WEIRD, ids=range(len(WEIRD)))
@pytest.mark.parametrize("gold", ["B", "18", None, b"B", Unprintable()], ids=range(5))
def test_rewards_never_raise_on_odd_inputs(completion, gold):
    """Odd inputs score, without raising; a row whose gold answer is not text cannot be scored: None."""
    unscorable = gold is None or isinstance(gold, Unprintable)
    for reward in (accuracy_reward, format_reward, xml_count_reward):
        for options in ([OPTS], None, ["not a dict"], [{"A": Unprintable()}]):
            scores = reward([completion], answer=[gold], options=options)
            if reward is accuracy_reward and unscorable:
                assert scores == [None]
            else:
                assert len(scores) == 1 and all(type(x) is float and 0.0 <= x <= 1.0 for x in scores)
    assert compute_score("x", completion, gold, {"options": OPTS}) in (0.0, 1.0)


def test_bytes_and_lone_surrogates_are_read():
    assert accuracy_reward([b"<answer>B</answer>"], answer=["B"], options=[OPTS]) == [1.0]
    assert accuracy_reward(["\ud800<answer>B</answer>"], answer=["B"], options=[OPTS]) == [1.0]
    assert accuracy_reward(["<answer>B</answer>" + " " * 2_000_000], answer=["B"], options=[OPTS]) == [1.0]


@pytest.mark.parametrize("batch, size", [(None, 0), (7, 1), ("<answer>B</answer>", 1), ({"content": "x"}, 1)])
def test_odd_batches_never_raise(batch, size):
    """One completion passed bare (not in a list), or junk in the batch's place, still gets one float per item."""
    for reward in (accuracy_reward, format_reward, xml_count_reward):
        assert len(reward(batch, answer=["B"], options=[OPTS])) == size


def test_numpy_batches():
    """A numpy array of completions (its truth value raises, so `completions or []` did)."""
    np = pytest.importorskip("numpy")
    batch = np.array(["<answer>B</answer>", "<answer>A or B</answer>"])
    assert accuracy_reward(batch, answer=np.array(["B", "B"]), options=[OPTS, OPTS]) == [1.0, 0.0]


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
    TAGGY, st.text(max_size=300), st.none(), st.integers(), st.binary(max_size=100), st.floats(),
    st.text(st.characters(codec=None), max_size=100),  # any code point, lone surrogates included
    st.lists(st.dictionaries(st.sampled_from(["role", "content"]),
    st.one_of(st.text(max_size=50), st.none(), st.integers(), st.binary(max_size=20)))),
    st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
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
        assert len(scores) == 1
        if scores[0] is None:  # cannot score: only the accuracy reward, only for a row without a gold answer
            assert reward is accuracy_reward and not (isinstance(gold, (str, int)) and str(gold).strip())
        else:
            assert 0.0 <= scores[0] <= 1.0
    assert type(compute_score("x", completion, gold, {"options": options})) is float


@settings(max_examples=400, deadline=None)
@given(text=TAGGY, gold=st.sampled_from("ABCD"))
@example(text="answer is C<think>", gold="C")  # found by CI: an unclosed <think> hid the conflicting tags
def test_no_pay_for_hedging(text, gold):
    """Appending a conflicting answer tag never raises the accuracy reward, and naming every letter never pays."""
    other = "A" if gold != "A" else "B"
    hedged = f"{text}<answer>{gold}</answer><answer>{other}</answer>"
    assert accuracy_reward([hedged], answer=[gold], options=[OPTS]) == [0.0]
    assert accuracy_reward([f"<answer>{gold} or {other}</answer>"], answer=[gold], options=[OPTS]) == [0.0]


# Hedges and negations generated around a gold letter, in the formats the prompts and models use
FORMS = ["{}", "({})", "option {}", "**{}**", "\\text{{{}}}"]
HEDGES = ["{g} or {o}", "{o} or {g}", "{g}/{o}", "{g} (or {o})", "({g}) ({o})", "{g}, {o}", "{g} and {o}", "{o} {g}"]
NEGATED = ["not {g}", "{g} is incorrect", "{g} is wrong", "anything but {g}", "except {g}", "rule out {g}"]
WRAPS = ["<answer>{}</answer>", "\\boxed{{{}}}", "The answer is {}.", "Answer: {}", "Final answer: {}"]


@settings(max_examples=300, deadline=None)
@given(
    gold=st.sampled_from("ABCD"), other=st.sampled_from("ABCD"), forms=st.tuples(*[st.sampled_from(FORMS)] * 2),
    shape=st.sampled_from(HEDGES + NEGATED), wrap=st.sampled_from(WRAPS), prefix=TAGGY,
)  # fmt: skip
def test_generated_hedges_and_negations_score_zero(gold, other, forms, shape, wrap, prefix):
    """The gold letter next to a second letter, or negated, never pays; in an answer tag, whatever comes before."""
    if other == gold:
        other = "ABCD"[("ABCD".index(gold) + 1) % 4]
    answer = shape.format(g=forms[0].format(gold), o=forms[1].format(other))
    text = wrap.format(answer)
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [0.0], text
    if wrap.startswith("<answer>"):  # the tag outranks anything before it, and a None in it decides
        assert accuracy_reward([prefix + text], answer=[gold], options=[DRUGS]) == [0.0], prefix + text


@settings(max_examples=200, deadline=None)
@given(gold=st.sampled_from("ABCD"), form=st.sampled_from(FORMS), wrap=st.sampled_from(WRAPS), think=st.text())
def test_generated_clear_answers_score_one(gold, form, wrap, think):
    think = think.replace("<", "").replace(">", "")
    text = f"<think>{think}</think>" + wrap.format(form.format(gold))
    assert accuracy_reward([text], answer=[gold], options=[DRUGS]) == [1.0], text


@pytest.mark.parametrize("name", list(ADVERSARIAL_UNITS))
def test_400kb_adversarial_completion_reads_few_spans(name, monkeypatch):
    """The work is bounded by construction, not by luck: on 400 KB of any bench unit, the span reader (the only
    part that is not a single scan) is called at most MAX_MATCHES times, however many cues the text repeats.
    Speed itself is measured by `medrlvr bench rewards`, not here."""
    unit = ADVERSARIAL_UNITS[name]
    head, unit, tail = unit if isinstance(unit, tuple) else ("", unit, "")
    text = head + unit * (400_000 // len(unit)) + tail
    calls = {"choice": 0, "number": 0}
    real_choice, real_number = extract.resolve_choice, extract.resolve_number

    def choice(span, options, line=False):
        calls["choice"] += 1
        return real_choice(span, options, line)

    def number(span, line=False):
        calls["number"] += 1
        return real_number(span, line)

    monkeypatch.setattr(extract, "resolve_choice", choice)
    monkeypatch.setattr(extract, "resolve_number", number)
    for reward in (accuracy_reward, format_reward, xml_count_reward):
        assert reward([text], answer=["B"], options=[OPTS]) in ([0.0], [0.25], [0.5], [0.75], [1.0])
    assert accuracy_reward([text], answer=["18"]) in ([0.0], [1.0])
    assert calls["choice"] <= extract.MAX_MATCHES and calls["number"] <= extract.MAX_MATCHES


@pytest.mark.parametrize("name", list(ADVERSARIAL_UNITS))
def test_400kb_adversarial_completion_reads_few_spans_with_the_grammar(name, monkeypatch):
    """The strict grammar's share of the work is bounded the same way: on 400 KB of any bench unit the rewards hand
    it at most a few MAX_MATCHES spans, and it reads (past an O(1) length check) only spans of at most MAX_SPAN
    characters. Answer tags are counted with str.count, one pass."""
    unit = ADVERSARIAL_UNITS[name]
    head, unit, tail = unit if isinstance(unit, tuple) else ("", unit, "")
    text = head + unit * (400_000 // len(unit)) + tail
    spans, read = [], []
    real_strict, real_read = extract.strict_choice, extract.grammar._read

    def strict(span, options, line=False):
        spans.append(span)
        return real_strict(span, options, line)

    def reading(s, table):
        read.append(len(s))
        return real_read(s, table)

    monkeypatch.setattr(extract, "strict_choice", strict)
    monkeypatch.setattr(extract.grammar, "_read", reading)
    assert accuracy_reward([text], answer=["B"], options=[OPTS]) in ([0.0], [1.0])
    assert choice_reward([text], options=[OPTS]) in ([0.0], [1.0])
    assert compute_score("medqa", text, "B", {"options": OPTS}) in (0.0, 1.0)
    assert len(spans) <= 3 * extract.MAX_MATCHES
    assert len(read) <= 2 * len(spans) and all(n <= extract.MAX_SPAN for n in read)


# Adversarial units in the languages of issue 21: cues, joiners, negations and strike-outs, repeated
INTL_UNITS = [
    "Die Antwort ist ", "La réponse est B ou ", "Antwort: B oder\n", "答案是", "答案：B或", "故选", "不是B ", "~~", "<s>",
    "<del>", "\\sout{", "答案是B。", "B\u0336 ", "<answer>B 不对</answer>", "Risposta: ",
]  # fmt: skip


@pytest.mark.parametrize("unit", INTL_UNITS)
def test_400kb_adversarial_completion_in_other_languages_reads_few_spans(unit, monkeypatch):
    """The same structural bound as above, for the cues and rules added for other languages."""
    text = unit * (400_000 // len(unit))
    calls = {"choice": 0}
    real_choice = extract.resolve_choice

    def choice(span, options, line=False):
        calls["choice"] += 1
        return real_choice(span, options, line)

    monkeypatch.setattr(extract, "resolve_choice", choice)
    assert accuracy_reward([text], answer=["B"], options=[DRUGS]) == [0.0]
    assert calls["choice"] <= extract.MAX_MATCHES
