"""Answer extraction from tables of literal cases: what each pattern reads, and what must never count.

The two big tables (PAYS and NEVER_PAYS) are the issue-14 contract: clear answers in every supported form are
read, and negations, eliminations, hedges and multiple answers are not, whatever format carries them.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrlvr import extract
from medrlvr.extract import (
    MAX_MATCHES,
    boxed_blocks,
    extract_answer,
    extract_choice,
    extract_number,
    spans,
    strip_think,
)  # fmt: skip

OPTS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}
# The options of issue 14: "Clopidogrel" starts with C, which a prefix match read as the letter C.
DRUGS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}

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
    ("<answer>D. None of the above</answer>", "D", "answer_tag"),  # "None" inside an option is not a negation
    ("Reasoning... so \\boxed{C}", "C", "boxed"),
    ("\\boxed{\\text{(B) Vitamin A deficiency}}", "B", "boxed"),
    ("\\boxed{B} and later \\boxed{B}", "B", "boxed"),
    ("Thus the answer is (A).", "A", "answer_is"),
    ("The correct answer is: **C**", "C", "answer_is"),
    ("The answer is B because the patient lacks vitamin A", "B", "answer_is"),  # the reason is not read
    ("Some reasoning.\nAnswer: D", "D", "answer_colon"),
    ("The correct answer is:\nC. Ibuprofen", "C", "answer_is"),
    ("**Answer:**\n\nB", None, "answer_colon"),  # only the very next line is read
    ("**Final Answer:** C", "C", "answer_colon"),
    # the answer tag outranks everything else
    ("The answer is A. <answer>C</answer>", "C", "answer_tag"),
    ("\\boxed{A} <answer>B</answer>", "B", "answer_tag"),
    # a hedge in the deciding pattern is decided (None), not passed on to a later pattern
    ("<answer>A or C</answer> The answer is A.", None, "answer_tag"),
]


@pytest.mark.parametrize("text, letter, pattern", CHOICE_CASES)
def test_choice_cases(text, letter, pattern):
    assert extract_choice(text, OPTS) == (letter, pattern)


# --- the issue-14 table: clear answers pay ------------------------------------------------------------------

PAYS = [
    # answer tag: the letter in every dress
    ("<answer>A</answer>", "A"),
    ("<answer> B </answer>", "B"),
    ("<answer>(C)</answer>", "C"),
    ("<answer>D.</answer>", "D"),
    ("<answer>[B]</answer>", "B"),
    ("<answer>\nD\n</answer>", "D"),
    ("<answer>**C**</answer>", "C"),
    ("<answer>__A__</answer>", "A"),
    ("<answer>`D`</answer>", "D"),
    ("<answer>$B$</answer>", "B"),
    ("<answer>\\text{C}</answer>", "C"),
    ("<answer>$\\textbf{D}$</answer>", "D"),
    ("<answer>\\text{\\textbf{A}}</answer>", "A"),
    # full-width and other compatibility forms (NFKC)
    ("<answer>Ｂ</answer>", "B"),
    ("<answer>（Ｃ）</answer>", "C"),
    ("<answer>Ⓑ</answer>", "B"),
    ("<answer>\u0410</answer>", "A"),  # Cyrillic А looks like, and is read as, A
    # lowercase, where a lowercase letter can only be a letter
    ("<answer>b</answer>", "B"),
    ("<answer>(d)</answer>", "D"),
    ("<answer>c)</answer>", "C"),
    ("<answer>option b</answer>", "B"),
    ("<answer>Option B</answer>", "B"),
    ("<answer>choice C</answer>", "C"),
    ("<answer>Choice (a)</answer>", "A"),
    ("<answer>letter d</answer>", "D"),
    # option text, whole
    ("<answer>Heparin</answer>", "B"),
    ("<answer>heparin</answer>", "B"),
    ("<answer>CLOPIDOGREL</answer>", "D"),
    ("<answer>B. Heparin</answer>", "B"),
    ("<answer>B) Heparin</answer>", "B"),
    ("<answer>Warfarin (C)</answer>", "C"),
    ("<answer>**B. Heparin**</answer>", "B"),
    ("<answer>D. Clopidogrel</answer>", "D"),
    # sentences in the tag
    ("<answer>The correct option is A</answer>", "A"),
    ("<answer>the correct answer is (A)</answer>", "A"),
    ("<answer>A is correct</answer>", "A"),
    ("<answer>A is the correct answer</answer>", "A"),
    # reasoning is not read
    ("<think>A or C?</think><answer>C</answer>", "C"),
    ("<think>not A, it is wrong</think>\n<answer>A</answer>", "A"),
    ("<think>B is wrong</think><answer>D</answer>", "D"),
    # boxed
    ("\\boxed{A}", "A"),
    ("So \\boxed{(B)}", "B"),
    ("$\\boxed{\\text{C}}$", "C"),
    ("\\boxed{\\textbf{D. Clopidogrel}}", "D"),
    ("\\fbox{A}", "A"),
    ("\\boxed {B}", "B"),
    ("\\boxed{Ｃ}", "C"),
    ("\\boxed{b}", "B"),
    ("\\boxed{Warfarin}", "C"),
    ("\\boxed{C} and so \\boxed{C}", "C"),
    # "answer is"
    ("The answer is A.", "A"),
    ("The answer is (B).", "B"),
    ("Thus, the answer is: **C**", "C"),
    ("The correct answer is (A)", "A"),
    ("The correct option is D.", "D"),
    ("The best choice is B", "B"),
    ("The final answer is Heparin.", "B"),
    ("The answer is option b.", "B"),
    ("The answer is Ｄ.", "D"),
    ("The answer is most likely B", "B"),
    ("the answer would be (d)", "D"),
    ("The answer is B because heparin acts on antithrombin, unlike A", "B"),
    ("The answer is C. Warfarin inhibits vitamin K epoxide reductase.", "C"),
    ("The answer is B. A heparin drip is started at once.", "B"),  # "A heparin": an article, not a letter
    ("I think the answer is C, since it is taken by mouth", "C"),
    # "Answer:"
    ("Answer: A", "A"),
    ("Final answer: B", "B"),
    ("**Final Answer:** C", "C"),
    ("Answer: The correct option is A", "A"),
    ("Answer: (D) Clopidogrel", "D"),
    ("### Answer: Ｂ", "B"),
    ("Answer: option c", "C"),
    ("Answer：B", "B"),
    ("Correct answer: D. Clopidogrel", "D"),
    ("Reasoning first.\nAnswer: Heparin", "B"),
    ("Answer: c)", "C"),
    ("Answer: I think it is C", "C"),  # the pronoun I is not option I
]


@pytest.mark.parametrize("text, letter", PAYS)
def test_clear_answers_pay(text, letter):
    assert extract_choice(text, DRUGS).answer == letter
    assert extract_answer(text, DRUGS) == letter


# --- the issue-14 table: negations, eliminations, hedges and multiple answers never pay ---------------------

NEVER_PAYS = [
    # negation and elimination
    ("<answer>not A</answer>", "A"),
    ("<answer>A is incorrect</answer>", "A"),
    ("<answer>A is wrong</answer>", "A"),
    ("<answer>A is false</answer>", "A"),
    ("<answer>anything but A</answer>", "A"),
    ("<answer>everything except A</answer>", "A"),
    ("<answer>except A</answer>", "A"),
    ("<answer>rule out A</answer>", "A"),
    ("<answer>A can be ruled out</answer>", "A"),
    ("<answer>A is not correct</answer>", "A"),
    ("<answer>A isn't right</answer>", "A"),
    ("<answer>A isn’t right</answer>", "A"),
    ("<answer>Not Aspirin</answer>", "A"),
    ("<answer>It cannot be A</answer>", "A"),
    ("<answer>neither A nor B</answer>", "A"),
    ("<answer>definitely not (A)</answer>", "A"),
    ("<answer>A is unlikely</answer>", "A"),
    ("<answer>eliminate A</answer>", "A"),
    ("<answer>other than A</answer>", "A"),
    ("<answer>no, not A</answer>", "A"),
    ("<answer>n\u200bot A</answer>", "A"),  # a zero-width space hides nothing
    ("<answer>n\u043et A</answer>", "A"),  # nor does a Cyrillic о in "not"
    ("\\boxed{\\neq A}", "A"),
    ("\\boxed{\\text{not } A}", "A"),
    ("The answer is not A.", "A"),
    ("The answer is anything but A", "A"),
    ("Answer: A is incorrect", "A"),
    ("Answer: not (A)", "A"),
    ("Final answer: Ａ is wrong", "A"),
    ("The answer isn't A", "A"),
    # hedges: a second letter or option in the answer span
    ("the answer is A or maybe C", "A"),
    ("Answer: (A) (B)", "A"),
    ("Final answer: A (or D)", "A"),
    ("<answer>D C</answer>", "D"),  # the C is a second letter, not the start of "Clopidogrel"
    ("<answer>A/B</answer>", "A"),
    ("<answer>A and C</answer>", "A"),
    ("<answer>A, C</answer>", "A"),
    ("<answer>A;C</answer>", "A"),
    ("<answer>A+C</answer>", "A"),
    ("<answer>A & D</answer>", "A"),
    ("<answer>A vs B</answer>", "A"),
    ("<answer>A maybe C</answer>", "A"),
    ("<answer>A, possibly D</answer>", "A"),
    ("<answer>Both A and C</answer>", "A"),
    ("<answer>A or b</answer>", "A"),
    ("<answer>b or c</answer>", "B"),
    ("<answer>option A or option C</answer>", "A"),
    ("<answer>Ａ or Ｃ</answer>", "A"),
    ("<answer>A, B, C, D</answer>", "A"),
    ("<answer>Aspirin or Warfarin</answer>", "A"),
    ("<answer>A. Heparin</answer>", "A"),  # a letter and another option's text contradict
    ("<answer>Aspirin (B)</answer>", "A"),
    ("<answer>(A) Aspirin (C) Warfarin</answer>", "A"),
    ("\\boxed{A \\text{ or } C}", "A"),
    ("\\boxed{A} \\boxed{C}", "A"),
    ("\\boxed{A, D}", "A"),
    ("The answer is A, but C is also possible", "A"),
    ("The answer is A. Or C.", "A"),
    ("The answer is A. C is also possible.", "A"),
    ("The answer is (A) or (C)", "A"),
    ("The answer is either A or B", "A"),
    ("The answer is A/C", "A"),
    ("Answer: A, B", "A"),
    ("Answer: Aspirin or heparin", "A"),
    ("Answer: A or Warfarin", "A"),
    ("Answer: A\nAnswer: B", "A"),
    ("The answer is A. Actually, the answer is C.", "A"),
    ("<answer>A</answer><answer>C</answer>", "A"),
    ("<answer>A</answer> <answer>A or C</answer>", "A"),
    # not an answer at all
    ("<answer>E</answer>", "A"),
    ("<answer>Unknown</answer>", "A"),
    ("<answer>a drug</answer>", "A"),  # an article, not a letter
    ("The answer is a tough call", "A"),
    ("<answer>Clop</answer>", "D"),  # a prefix of an option is not the option
    ("<answer>Dabigatran</answer>", "D"),  # nor is a word that starts with the letter
    ("<answer>Aspirins</answer>", "A"),  # option text counts only whole
    ("<answer>AB</answer>", "A"),
    ("Answer: A or", "A"),  # a hedge cut off
    ("Answer: " + "A or " * 20 + "A", "A"),  # repetition, not an answer
]


@pytest.mark.parametrize("text, gold", NEVER_PAYS)
def test_negations_and_hedges_never_pay(text, gold):
    assert extract_choice(text, DRUGS).answer is None
    assert extract_answer(text, DRUGS) is None


# --- issue 21: the same contract in German, French, Spanish, Italian, Portuguese, Dutch and Chinese ------------
# Every case here read the other way before issue 21 (a negation the reader could not see paid, a clear answer
# in another language did not). A policy under GRPO finds whatever pays, in any language.

INTL_PAYS = [
    # zh: a Latin capital next to Chinese stands alone
    ("<answer>答案是B</answer>", "B"),
    ("<answer>选B</answer>", "B"),
    ("<answer>B项</answer>", "B"),
    ("<answer>可能是B</answer>", "B"),  # one option with a word of doubt is an answer, as "maybe B" is
    ("答案是B", "B"),
    ("答案：B", "B"),
    ("正确答案是 B", "B"),
    ("正确答案为（B）", "B"),
    ("最终答案：B", "B"),
    ("故选B。", "B"),
    ("所以答案选B", "B"),
    ("正确选项是B", "B"),
    ("答案为B，因为肝素作用于抗凝血酶", "B"),
    ("答案是B。肝素是正确的。", "B"),
    # de
    ("Antwort: B", "B"),
    ("Die Antwort ist B", "B"),
    ("Die richtige Antwort ist (B).", "B"),
    ("Die Antwort lautet: B", "B"),
    ("Endgültige Antwort: B", "B"),
    ("Die Antwort ist B, weil Heparin nicht oral wirkt", "B"),
    # fr
    ("La réponse est B", "B"),
    ("La bonne réponse est B.", "B"),
    ("Réponse : B", "B"),
    ("La réponse correcte est (B)", "B"),
    ("Réponse finale : B", "B"),
    ("La réponse est B parce que A n'est pas indiqué", "B"),
    # es
    ("La respuesta es B", "B"),
    ("La respuesta correcta es B.", "B"),
    ("Respuesta: B", "B"),
    ("Respuesta final: B", "B"),
    ("La respuesta es B porque A no actúa", "B"),
    # it
    ("Risposta: B", "B"),
    ("La risposta è B", "B"),
    ("La risposta corretta è B", "B"),
    ("La risposta è B perché A non agisce", "B"),
    # pt
    ("Resposta: B", "B"),
    ("A resposta é B", "B"),
    ("A resposta correta é B.", "B"),
    ("Resposta final: B", "B"),
    # nl
    ("Antwoord: B", "B"),
    ("Het antwoord is B", "B"),
    ("Het juiste antwoord is B", "B"),
]


# Chinese options (CMMLU, MedQA's Chinese sets): an option's text next to Chinese is still the whole text
ZH = {"A": "阿司匹林", "B": "肝素", "C": "华法林", "D": "氯吡格雷"}
ZH_PAYS = [("答案是阿司匹林", "A"), ("故选华法林", "C"), ("答案：氯吡格雷", "D")]


@pytest.mark.parametrize("text, letter", INTL_PAYS)
def test_clear_answers_in_other_languages_pay(text, letter):
    assert extract_answer(text, DRUGS) == letter


@pytest.mark.parametrize("text, letter", ZH_PAYS)
def test_chinese_option_texts_pay(text, letter):
    assert extract_answer(text, ZH) == letter


# (completion, the pattern that decides None): the pattern shows the span was read and refused, not missed
INTL_NEVER_PAYS = [
    # de
    ("<answer>nicht B</answer>", "answer_tag"),
    ("<answer>kein B</answer>", "answer_tag"),
    ("<answer>B ist falsch</answer>", "answer_tag"),
    ("<answer>B ist nicht richtig</answer>", "answer_tag"),
    ("<answer>alles außer B</answer>", "answer_tag"),
    ("<answer>B ausgeschlossen</answer>", "answer_tag"),
    ("<answer>B ist unwahrscheinlich</answer>", "answer_tag"),
    ("<answer>B oder</answer>", "answer_tag"),
    ("Die Antwort ist nicht B", "answer_is"),
    ("Die Antwort ist B oder C", "answer_is"),
    ("Antwort: B oder", "answer_colon"),
    ("The answer is B. Oder C.", "answer_is"),
    ("Answer: B. Vielleicht C.", "answer_colon"),
    # fr
    ("<answer>pas B</answer>", "answer_tag"),
    ("<answer>non B</answer>", "answer_tag"),
    ("<answer>B est faux</answer>", "answer_tag"),
    ("<answer>tout sauf B</answer>", "answer_tag"),
    ("<answer>ce n'est pas B</answer>", "answer_tag"),
    ("<answer>B est exclu</answer>", "answer_tag"),
    ("<answer>B ou</answer>", "answer_tag"),
    ("Réponse : pas B", "answer_colon"),
    ("La réponse est B ou C", "answer_is"),
    ("The answer is B. Ou C.", "answer_is"),
    # es
    ("<answer>nunca B</answer>", "answer_tag"),
    ("<answer>B es falsa</answer>", "answer_tag"),
    ("<answer>todas menos B</answer>", "answer_tag"),
    ("<answer>excepto B</answer>", "answer_tag"),
    ("<answer>descartar B</answer>", "answer_tag"),
    ("<answer>B o</answer>", "answer_tag"),
    ("La respuesta es B o C", "answer_is"),
    ("Respuesta: B o tal vez C", "answer_colon"),
    ("The answer is B. O C.", "answer_is"),
    # it
    ("<answer>non è B</answer>", "answer_tag"),
    ("<answer>B è sbagliata</answer>", "answer_tag"),
    ("<answer>tranne B</answer>", "answer_tag"),
    ("<answer>B è errata</answer>", "answer_tag"),
    ("<answer>B oppure</answer>", "answer_tag"),
    ("La risposta è B oppure C", "answer_is"),
    ("Risposta: B o forse C", "answer_colon"),
    # pt
    ("<answer>não B</answer>", "answer_tag"),
    ("<answer>B está errada</answer>", "answer_tag"),
    ("<answer>exceto B</answer>", "answer_tag"),
    ("<answer>B é falsa</answer>", "answer_tag"),
    ("<answer>B é incorreta</answer>", "answer_tag"),
    ("A resposta é B ou C", "answer_is"),
    ("Resposta: B ou talvez C", "answer_colon"),
    # nl
    ("<answer>niet B</answer>", "answer_tag"),
    ("<answer>geen B</answer>", "answer_tag"),
    ("<answer>B is fout</answer>", "answer_tag"),
    ("<answer>behalve B</answer>", "answer_tag"),
    ("<answer>B is onjuist</answer>", "answer_tag"),
    ("Het antwoord is B of C", "answer_is"),
    # zh
    ("<answer>不是 B</answer>", "answer_tag"),
    ("<answer>B 不对</answer>", "answer_tag"),
    ("<answer>B 不正确</answer>", "answer_tag"),
    ("<answer>B 是错的</answer>", "answer_tag"),
    ("<answer>排除 B</answer>", "answer_tag"),
    ("<answer>除了 B</answer>", "answer_tag"),
    ("<answer>并非 B</answer>", "answer_tag"),
    ("<answer>B 或</answer>", "answer_tag"),
    ("<answer>B 或C</answer>", "answer_tag"),
    ("<answer>B或 C</answer>", "answer_tag"),
    ("<answer>B 和C</answer>", "answer_tag"),
    ("\\boxed{B 不对}", "boxed"),
    ("答案是B或C", "answer_is"),
    ("答案：不是B", "answer_colon"),
    ("答案是B。A是错的", "answer_is"),
    ("答案是B。或者C", "answer_is"),
    ("正确答案是 B 或 C", "answer_is"),
    ("故选B或C", "answer_is"),
    # strike-outs
    ("<answer>~~B~~</answer>", "answer_tag"),
    ("<answer><s>B</s></answer>", "answer_tag"),
    ("<answer><del>B</del></answer>", "answer_tag"),
    ("<answer><strike>B</strike></answer>", "answer_tag"),
    ("\\boxed{\\sout{\\text{B}}}", "boxed"),
    ("<answer>B\u0336</answer>", "answer_tag"),
    ("\\boxed{\\cancel{\\text{B}}}", "boxed"),
    ("The answer is ~~B~~", "answer_is"),
    # several answers, across languages
    ("Answer: B\nAntwort: C", "answer_colon"),
    ("The answer is B. La réponse est C.", "answer_is"),
    ("答案是B。The answer is C.", "answer_is"),
    ("Die Antwort ist B. Die Antwort ist C.", "answer_is"),
]


@pytest.mark.parametrize("text, pattern", INTL_NEVER_PAYS)
def test_negations_and_hedges_in_other_languages_never_pay(text, pattern):
    assert extract_choice(text, DRUGS) == (None, pattern)
    assert extract_answer(text, DRUGS) is None


# Guards: these already read right before issue 21 (often because the letter next to Chinese went unseen) and must
# keep reading right now that it is seen, and now that "non", 不, 非, 除 and "</s>" mean something.
ISSUE_21_GUARDS = [
    ("<answer>B oder C</answer>", None),
    ("<answer>B ou C</answer>", None),
    ("<answer>B o C</answer>", None),
    ("<answer>B或C</answer>", None),
    ("<answer>不是B</answer>", None),
    ("<answer>B不对</answer>", None),
    ("<answer>可能是B或C</answer>", None),
    ("不应选B", None),
    ("答案不是B", None),
    ("<answer>\\sout{B}</answer>", None),
    ("<answer>~~A~~ B</answer>", None),  # a struck option is a negation in the span, as "not A, B" is
    # medical terms that negate nothing: unstable, non-Hodgkin, differential diagnosis, resection
    ("答案是B（不稳定型心绞痛）", "B"),
    ("答案是B，非霍奇金淋巴瘤", "B"),
    ("答案是B，需要鉴别诊断", "B"),
    ("答案是B：手术切除", "B"),
    ("The answer is B (non-Hodgkin lymphoma)", "B"),
    ("The answer is B</s>", "B"),  # an end-of-sequence token left in the text is not a strike-out
    ("<answer>B</answer></s>", "B"),
]


@pytest.mark.parametrize("text, letter", ISSUE_21_GUARDS)
def test_issue_21_guards(text, letter):
    assert extract_answer(text, DRUGS) == letter


def test_tables_are_big_enough():
    """Issue 14 asks for at least 60 cases of each kind."""
    assert len(PAYS) >= 60 and len(NEVER_PAYS) >= 60


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
    ("<answer>B</answer>" * (MAX_MATCHES + 24), "answer-tag spam"),
    ("The answer is B. " * 40, "answer-cue spam"),
    ("\\boxed{" + "B " * 1500 + "}", "a box longer than any answer"),
]


@pytest.mark.parametrize("text, why", HACKS)
def test_hacks_extract_nothing(text, why):
    assert extract_choice(text, OPTS).answer is None, why


def test_strict_reads_only_the_prompted_formats():
    assert extract_answer("The answer is (A).", OPTS) == "A"
    assert extract_answer("The answer is (A).", OPTS, strict=True) is None
    assert extract_answer("\\boxed{A}", OPTS, strict=True) == "A"
    assert extract_answer("<answer>Ｂ</answer>", OPTS, strict=True) == "B"
    assert extract_answer("<answer>not B</answer>", OPTS, strict=True) is None


def test_letters_are_limited_to_the_options():
    ten = {letter: f"option {letter}" for letter in "ABCDEFGHIJ"}
    assert extract_choice("<answer>J</answer>", ten).answer == "J"
    assert extract_choice("<answer>J</answer>", OPTS).answer is None
    assert extract_choice("<answer>I think J</answer>", ten).answer == "J"  # the pronoun is not option I
    assert extract_choice("<answer>I or J</answer>", ten).answer is None
    # option texts that are themselves letters (MedMCQA): a bare capital is the letter, a bare lowercase the text
    letters_as_texts = {"A": "a", "B": "c", "C": "bc", "D": "ad"}
    assert extract_choice("<answer>C</answer>", letters_as_texts).answer == "C"
    assert extract_choice("<answer>c</answer>", letters_as_texts).answer == "B"
    assert extract_choice("<answer>bc</answer>", letters_as_texts).answer == "C"
    # an option's text exactly as written beats the letter NFKC would make of it (CMMLU: option D is "A：")
    colons = {"A": "B：", "B": "C：", "C": "D：", "D": "A："}
    assert extract_choice("<answer>A：</answer>", colons).answer == "D"
    assert extract_choice("<answer>A</answer>", colons).answer == "A"
    # texts that clean to the same string name neither option, and their words are not letters (MMLU-Pro)
    code = {"A": "a[i] < max", "B": "a[i] == max", "C": "TRUE", "D": "!(a[i] == max)", "I": "a[i] != max"}
    assert extract_choice("<answer>B. a[i] == max</answer>", code).answer == "B"
    assert extract_choice("The answer is (B) a[i] == max", code).answer == "B"
    # a long option is read whole after a cue, so the article that starts it is not the letter A
    long_text = "A monoclonal antiserum contains antibodies secreted from the descendants of one B lymphocyte " * 3
    assert extract_choice(f"The answer is (C) {long_text}", {"A": "x", "B": "y", "C": long_text}).answer == "C"
    # options as a list, as a dataset column may hold them; None entries (padded struct columns) dropped
    assert extract_choice("<answer>B</answer>", ["x", "y"]).answer == "B"
    assert extract_choice("<answer>C</answer>", {"A": "x", "B": "y", "C": None}).answer is None


def test_pubmedqa_words_are_options_not_hedges():
    """PubMedQA's options are yes / no / maybe: "no" and "maybe" there name options, they do not negate or hedge."""
    yes_no = {"A": "yes", "B": "no", "C": "maybe"}
    assert extract_choice("<answer>no</answer>", yes_no).answer == "B"
    assert extract_choice("<answer>maybe</answer>", yes_no).answer == "C"
    assert extract_choice("Answer: no", yes_no).answer == "B"
    assert extract_choice("<answer>yes or maybe</answer>", yes_no).answer is None


def test_strip_think():
    assert strip_think("<think>A</think>B<think>C</think>D") == "BD"
    assert strip_think("reasoning A </think> answer B") == " answer B"  # the prompt opened the tag
    assert strip_think("before <think> never closed A") == "before "
    assert strip_think("x<think>never closed<answer>B</answer>") == "x<answer>B</answer>"  # an answer ends it


def test_boxed_blocks():
    assert boxed_blocks("\\boxed{a{b}c} \\fbox {d} \\boxed e \\boxed{f}") == ["a{b}c", "d", "f"]
    assert boxed_blocks("\\boxed{a} \\boxed{b") == ["a"]  # unclosed to the end: nothing more can close
    long = boxed_blocks("\\boxed{" + "x" * 5000 + "} \\boxed{B}")
    assert len(long) == 1 and len(long[0]) > 2000  # too long to be an answer: read as unparseable, and the scan stops


class CountingPattern:
    """A compiled regex that counts how many characters its searches pass over."""

    def __init__(self, pattern):
        self.pattern, self.scanned = pattern, 0

    def search(self, text, pos=0, endpos=None):
        m = self.pattern.search(text, pos, len(text) if endpos is None else endpos)
        self.scanned += (m.end() if m else len(text)) - pos
        return m


@pytest.mark.parametrize("unit", ["\\boxed ", "\\fbox ", "\\boxed \\fbox ", "\\boxed{B} ", "\\boxed{", "x"])
def test_box_scan_reads_each_character_once(unit, monkeypatch):
    """Repeated ``\\boxed `` with no brace was quadratic: each box searched for both commands to the end of the
    text. Now one search finds the next box that opens a brace, and no character is searched twice."""
    spy = CountingPattern(spans._BOX_OPEN)
    monkeypatch.setattr(spans, "_BOX_OPEN", spy)
    text = unit * (100_000 // len(unit))
    blocks = extract.boxed_blocks(text)
    assert len(blocks) <= MAX_MATCHES + 1
    assert spy.scanned <= len(text)


NUMBER_CASES = [
    ("So she has 18 left.\n#### 18", "18"),
    ("#### 1,234", "1234"),
    ("\\boxed{18.00}", "18"),
    ("\\boxed{\\frac{3}{4}}", "0.75"),
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("<answer>-\\dfrac{1}{2}</answer>", "-0.5"),
    ("The answer is $42.", "42"),
    ("The answer is $1,234.50.", "1234.5"),
    ("<answer>-7</answer>", "-7"),
    ("<answer>−7</answer>", "-7"),  # the Unicode minus sign
    ("<answer>１８</answer>", "18"),  # full-width digits
    ("<answer>18 dollars</answer>", "18"),
    ("<answer>$18</answer>", "18"),
    ("<answer>25%</answer>", "25"),
    ("#### 18.0", "18"),
    ("#### 18 apples are left over", "18"),
    ("\\boxed{18 \\text{ cm}^2}", "18"),
    ("<answer>3 × 6 = 18</answer>", "18"),  # an equation states its result last
    ("The answer is 18 because 20 - 2 = 18", "18"),
    ("The answer is 18, since she gave 2 away", "18"),
    ("<think>#### 3</think><answer>5</answer>", "5"),
    ("I compute 5 then 7 apples.", "7"),
    # never: hedges, negations, several numbers
    ("<answer>18 or 20</answer>", None),
    ("<answer>18/19</answer>", None),
    ("<answer>18, 19</answer>", None),
    ("<answer>18,19</answer>", None),
    ("<answer>18 and 19</answer>", None),
    ("<answer>18-19</answer>", None),
    ("<answer>not 18</answer>", None),
    ("<answer>18 is wrong</answer>", None),
    ("<answer>between 18 and 20</answer>", None),
    ("#### 18, 19", None),
    ("#### 18 or 19", None),
    ("The answer is 18 or 19.", None),
    ("The answer is not 18", None),
    ("#### 18\n#### 20", None),
    ("18/19", None),
    ("18, 19", None),
    ("18 or 19", None),
    ("not 18", None),
    ("It is 18 and 19", None),
    ("<think>it is 12</think>", None),
    ("no digits at all", None),
    ("", None),
    ("1" * 10_000, None),  # not a number anyone meant, and too long to convert
]


@pytest.mark.parametrize("text, number", NUMBER_CASES)
def test_number_cases(text, number):
    assert extract_number(text).answer == number
    assert extract_answer(text) == number


def test_400kb_adversarial_inputs_finish():
    """Repeated cues that once made extraction quadratic (``\\boxed `` without a brace took 7.8 s at 400 KB).
    Speed is measured by ``medrlvr bench rewards``; this only checks that each call returns, with the right
    outcome, and counts no time."""
    units = ["\\boxed ", "\\fbox ", "\\boxed{", "\\boxed{{", "<answer>", "<think>", "the answer is ", "{", "Ｂ "]
    units += ["Answer: A or ", "Answer: not A\n", "#### 1,", "<answer>A</answer>", "\\boxed{A} ", "A or C ", "7 or "]
    # issue 21: cues, negations, joiners and strike-outs of the other languages
    units += ["Die Antwort ist ", "La réponse est ", "Antwort: B oder ", "答案是", "答案：B或", "故选"]
    units += ["不是B ", "B 或 "]
    units += ["~~", "<s>", "<s>B", "\\sout{", "答案是B。", "B\u0336 ", "选B", "不应选B "]
    for unit in units:
        text = unit * (400_000 // len(unit))
        assert extract_choice(text, DRUGS).answer is None, unit
        assert extract_number(text).answer is None, unit


# --- properties: generated answers, hedges and negations around a gold letter ---------------------------------

FULL_WIDTH = {letter: chr(ord("Ａ") + i) for i, letter in enumerate("ABCDEFGHIJ")}


def letter_forms(letter):
    """Ways of writing one option that all mean that option."""
    text = DRUGS[letter]
    low = letter.lower()
    return [
        letter, f"({letter})", f"{letter}.", f"**{letter}**", f"option {letter}", f"Option {low}", f"({low})",
        FULL_WIDTH[letter], f"\\text{{{letter}}}", f"{letter}. {text}", text, text.upper(), f"choice {letter}",
    ]  # fmt: skip


FORMATS = [
    "<answer>{}</answer>",
    "<think>{noise}</think>\n<answer>{}</answer>",
    "\\boxed{{{}}}",
    "The answer is {}.",
    "Therefore, the correct answer is {}",
    "Answer: {}",
    "Final answer: {}",
]
HEDGE_JOINERS = [" or ", " or maybe ", "/", ", ", " and ", " (or ", ") (", " & ", " vs ", ", possibly ", " perhaps "]
NEGATIONS = [
    "not {}", "{} is incorrect", "{} is wrong", "anything but {}", "except {}", "rule out {}", "{} is false",
    "{} can be ruled out", "definitely not {}", "{} is not correct", "{} isn't right", "everything but {}",
]  # fmt: skip

GOLD = st.sampled_from("ABCD")
NOISE = st.text(alphabet=st.characters(blacklist_characters="<>\\{}", blacklist_categories=("Cs",)), max_size=40)


@st.composite
def answer_and_form(draw, gold=GOLD):
    letter = draw(gold)
    return letter, draw(st.sampled_from(letter_forms(letter)))


@settings(max_examples=300, deadline=None)
@given(pick=answer_and_form(), fmt=st.sampled_from(FORMATS), noise=NOISE)
def test_generated_clear_answers_pay(pick, fmt, noise):
    letter, form = pick
    text = fmt.format(form, noise=noise)
    assert extract_answer(text, DRUGS) == letter, text


@settings(max_examples=300, deadline=None)
@given(
    gold=GOLD, other=GOLD, data=st.data(), joiner=st.sampled_from(HEDGE_JOINERS), fmt=st.sampled_from(FORMATS),
    gold_first=st.booleans(), noise=NOISE,
)  # fmt: skip
def test_generated_hedges_never_pay(gold, other, data, joiner, fmt, gold_first, noise):
    if other == gold:
        other = "ABCD"[("ABCD".index(gold) + 1) % 4]
    first = data.draw(st.sampled_from(letter_forms(gold)))
    second = data.draw(st.sampled_from(letter_forms(other)))
    hedge = first + joiner + second if gold_first else second + joiner + first
    text = fmt.format(hedge, noise=noise)
    assert extract_answer(text, DRUGS) is None, text


@settings(max_examples=300, deadline=None)
@given(pick=answer_and_form(), negation=st.sampled_from(NEGATIONS), fmt=st.sampled_from(FORMATS), noise=NOISE)
def test_generated_negations_never_pay(pick, negation, fmt, noise):
    _, form = pick
    text = fmt.format(negation.format(form), noise=noise)
    assert extract_answer(text, DRUGS) is None, text


NUMBER_HEDGES = ["{a}/{b}", "{a}, {b}", "{a} or {b}", "{a} and {b}", "not {a}", "{a} or maybe {b}", "{a} is wrong"]


@settings(max_examples=200, deadline=None)
@given(
    a=st.integers(0, 10**6), b=st.integers(0, 10**6), hedge=st.sampled_from(NUMBER_HEDGES),
    fmt=st.sampled_from(["<answer>{}</answer>", "#### {}", "\\boxed{{{}}}", "The answer is {}.", "{}"]),
)  # fmt: skip
def test_generated_number_hedges_never_pay(a, b, hedge, fmt):
    if a == b:
        b = a + 1
    text = fmt.format(hedge.format(a=a, b=b))
    assert extract_number(text).answer is None, text


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(-(10**7), 10**7),
    dress=st.sampled_from(["{}", "${:,}", "{:,}", "{}.0", "{} dollars", "{} apples in total"]),
    fmt=st.sampled_from(["<answer>{}</answer>", "#### {}", "\\boxed{{{}}}", "The answer is {}.", "So it is {}"]),
)  # fmt: skip
def test_generated_numbers_pay(n, dress, fmt):
    text = fmt.format(dress.format(n))
    assert extract_number(text).answer == str(n), text


# --- the strict answer grammar of the training rewards (medrlvr.extract.grammar) ------------------------------------
# The rewards pay what the grammar accepts instead of refusing what a list of negations matches: lists leak.

GRAMMAR_ACCEPTS = [
    # (span, letter), options DRUGS
    ("B", "B"), (" (B) ", "B"), ("B.", "B"), ("B!", "B"), ("[B]", "B"), ("【B】", "B"), ("b)", "B"), ("**B**", "B"),
    ("__B__", "B"), ("`B`", "B"), ("$B$", "B"), ("\\text{B}", "B"), ("\\boxed{\\textbf{B}}", "B"), ("Ｂ", "B"),
    ("（Ｂ）", "B"), ("Ⓑ", "B"), ("\u0412", "B"), ('"B"', "B"), ("«B»", "B"), ("b", "B"), ("option b", "B"),
    ("Option: B", "B"), ("choice (b)", "B"), ("letter B", "B"), ("opción B", "B"), ("选项B", "B"), ("B项", "B"),
    ("Heparin", "B"), ("heparin.", "B"), ("B. Heparin", "B"), ("B) heparin", "B"), ("(B) Heparin", "B"),
    ("B: Heparin", "B"), ("B - Heparin", "B"), ("B (Heparin)", "B"), ("Heparin (B)", "B"), ("**B. Heparin**", "B"),
    ("The answer is B", "B"), ("the answer is: (B).", "B"), ("The correct answer is B", "B"),
    ("The best option would be B", "B"), ("My final answer is B", "B"), ("Answer: B", "B"), ("Final answer: B", "B"),
    ("### Answer: B", "B"), ("**Answer:** B", "B"), ("Answer: The correct option is B.", "B"),
    ("Answer: Heparin", "B"), ("B is correct", "B"), ("B is the correct answer.", "B"), ("答案是B", "B"),
    ("答案为：B", "B"), ("答案：B", "B"), ("正确答案是（B）", "B"), ("正确选项为B", "B"), ("故选B。", "B"),
    ("选B", "B"), ("B正确", "B"), ("Die Antwort ist B", "B"), ("Die richtige Antwort lautet: B", "B"),
    ("Antwort: B", "B"), ("B ist richtig", "B"), ("La réponse est B", "B"), ("La bonne réponse est (B).", "B"),
    ("Réponse : B", "B"), ("B est correcte", "B"), ("La respuesta correcta es B", "B"), ("Respuesta: B", "B"),
    ("La risposta è B", "B"), ("Risposta: B", "B"), ("A resposta é B", "B"), ("Resposta final: B", "B"),
    ("Het antwoord is B", "B"), ("Het juiste antwoord is B", "B"), ("Antwoord: B", "B"),
    ("\u200bB", "B"), ("B\ufeff", "B"), ("\u00ad B \u200d", "B"),  # invisible characters at the ends: dropped
    ("B</s>", "B"), ("B<|im_end|>", "B"),  # an end-of-sequence token a decoder left
    ("A", "A"), ("D. Clopidogrel", "D"), ("B..", "B"), ("B!!", "B"),
]  # fmt: skip

GRAMMAR_REFUSES = [
    # the issue's fuzzed answers, paid by the list-based reader for the letter they reject
    "A ✗", "A ❌", "¬A", "≠ A", "A is a distractor", "avoid A", "A is implausible", "A would be a mistake", "n-o-t A",
    "A scheidet aus", "A est fausse", "A est faux", "A está mal", "A valt af",
    "\u202eA ton\u202c",  # a right-to-left override: displays as "not A"
    "n\u2066ot B",  # an invisible isolate inside "not"
    # direction controls anywhere, invisible characters inside a word
    "\u202bB\u202c", "B\u200e", "\u2067B\u2069", "n\u200bot A", "no\u00adt A", "B\u200bB",
    # a word outside the frame, a second option, a symbol, a question
    "B?", "B ✓", "B, C", "B or C", "B C", "D C", "A B C D", "AB", "B. Aspirin", "A. Heparin",
    "Aspirin (B)", "B. Heparin (B)", "maybe B", "probably B", "I think B", "I think the answer is B", "B for sure",
    "Therefore, the answer is B", "The answer is B because heparin", "B because", "answer B", "Answer B",
    "The answer is not B", "The answer isn't B", "not B", "B is not correct", "B is incorrect", "B ist nicht richtig",
    "B不正确", "B是不正确的", "不是B", "不应选B", "答案不是B", "~~B~~", "<del>B</del>", "<s>B</s>", "\\sout{B}",
    "\\cancel{B}", "B\u0336", "\\neq B", "$\\ne B$", "(B", "B]", "((B))((", "B (Heparin", "Heparins", "Hep",
    "E", "(E)", "option E", "", " ", ".", "()", "答案是", "The answer is", "Answer:", "B</s> C", "<b>B</b>",
]  # fmt: skip


@pytest.mark.parametrize("span, letter", GRAMMAR_ACCEPTS)
def test_grammar_accepts_clean_answers(span, letter):
    assert extract.strict_choice(span, DRUGS) == letter


@pytest.mark.parametrize("span", GRAMMAR_REFUSES)
def test_grammar_refuses_everything_else(span):
    assert extract.strict_choice(span, DRUGS) is None


def test_grammar_reads_the_benchmarks_options():
    strict = extract.strict_choice
    # MedMCQA: option texts that are letters; a bare capital is the letter, a bare lowercase the text
    letters_as_texts = {"A": "a", "B": "c", "C": "bc", "D": "ad"}
    assert [strict(s, letters_as_texts) for s in ("C", "c", "bc", "(C)", "(c)")] == ["C", "B", "C", "C", "B"]
    # CMMLU: an option's text exactly as written beats the letter NFKC makes of it
    colons = {"A": "B：", "B": "C：", "C": "D：", "D": "A："}
    assert [strict(s, colons) for s in ("A：", "A", "(A)")] == ["D", "A", "A"]
    assert strict("答案是阿司匹林", ZH) == "A" and strict("氯吡格雷", ZH) == "D" and strict("D. 氯吡格雷", ZH) == "D"
    # PubMedQA: "no" and "maybe" are options, not a negation and a hedge
    yes_no = {"A": "yes", "B": "no", "C": "maybe"}
    assert [strict(s, yes_no) for s in ("no", "Maybe.", "The answer is no", "yes or no")] == ["B", "C", "B", None]
    # option texts that hold words the grammar refuses elsewhere are still one option each
    tricky = {"A": "Both A and B", "B": "None of the above", "C": "Not applicable", "D": "A is correct"}
    assert [strict(s, tricky) for s in ("Both A and B", "C. Not applicable", "A is correct", "D")] == list("ACDD")
    # two options with one text name neither by that text; their letters still count
    shared = {"A": "x", "B": "Heparin", "C": "heparin"}
    assert strict("Heparin", shared) is None and strict("B. Heparin", shared) == "B"
    # texts the benchmarks hold: brackets, quotes, a leading dash, a closing mark of their own
    real = {"A": "(1,6)", "B": "-PCR for virus", "C": '"Let\'s talk about it."', "D": "不亦乐乎！", "E": "A："}
    spans = ["A. (1,6)", "(A) (1,6)", "(B) -PCR for virus", "B. -PCR for virus", "C. \"Let's talk about it.\"",
             "C) \"Let's talk about it.\"", "D. 不亦乐乎！", "(D) 不亦乐乎", "(1,6)", "A：", "E"]  # fmt: skip
    assert [strict(s, real) for s in spans] == list("AABBCCDDAEE")
    # ten options (MMLU-Pro): I is a letter; a dotless ı, whose capital is I, is not
    ten = {letter: f"drug {letter}" for letter in "ABCDEFGHIJ"}
    assert strict("I", ten) == "I" and strict("(ı)", ten) is None and strict("ı", ten) is None
    # options as a list; a letter beyond them is nothing
    assert strict("B", ["x", "y"]) == "B" and strict("C", ["x", "y"]) is None


def test_grammar_never_reads_a_line_past_its_reason():
    """After an answer cue, a reason ends the answer ("B because ..."); nothing else is cut, so a second sentence that
    names or rejects an option is read with the answer, and refused."""
    strict = extract.strict_choice
    assert strict("B because it acts on antithrombin", DRUGS, line=True) == "B"
    assert strict("B, since A is not indicated", DRUGS, line=True) == "B"
    assert strict("B weil A nicht wirkt", DRUGS, line=True) == "B"
    assert strict("B，因为肝素", DRUGS, line=True) == "B"
    assert strict("B because it acts on antithrombin", DRUGS) is None  # an answer block holds the answer only
    assert strict("B. Warfarin is also possible.", DRUGS, line=True) is None
    assert strict("B. Or C.", DRUGS, line=True) is None
    assert strict("A, which is a distractor", DRUGS, line=True) == "A"  # the answer is A; the rest is its reason


# Clear answers of the tables above that the training rewards' reading now refuses (evaluation's flexible reading
# still pays them: their rows above are unchanged). Each says something beside the one option, which the strict
# grammar does not read: a word of doubt, an "I think", a second sentence or a comment after the answer.
REFUSED_BY_THE_GRAMMAR = {
    "The answer is most likely B": "a word of doubt",
    "<answer>可能是B</answer>": "a word of doubt ('maybe B')",
    "Answer: I think it is C": "an 'I think'",
    "The answer is C. Warfarin inhibits vitamin K epoxide reductase.": "a second sentence on the answer's line",
    "The answer is B. A heparin drip is started at once.": "a second sentence on the answer's line",
    "答案是B。肝素是正确的。": "a second sentence on the answer's line",
    "答案是B（不稳定型心绞痛）": "a comment after the answer",
    "答案是B，非霍奇金淋巴瘤": "a comment after the answer",
    "答案是B，需要鉴别诊断": "a comment after the answer",
    "答案是B：手术切除": "a comment after the answer",
    "The answer is B (non-Hodgkin lymphoma)": "a comment after the answer",
}

CLEAR_TABLES = [
    *[(text, letter, DRUGS) for text, letter in PAYS + INTL_PAYS],
    *[(text, letter, DRUGS) for text, letter in ISSUE_21_GUARDS if letter is not None],
    *[(text, letter, ZH) for text, letter in ZH_PAYS],
    *[(text, letter, OPTS) for text, letter, _ in CHOICE_CASES if letter is not None],
]
REFUSING_TABLES = [
    *[(text, DRUGS) for text, _ in NEVER_PAYS],
    *[(text, DRUGS) for text, _ in INTL_NEVER_PAYS],
    *[(text, DRUGS) for text, letter in ISSUE_21_GUARDS if letter is None],
    *[(text, OPTS) for text, _ in HACKS],
    *[(text, OPTS) for text, letter, _ in CHOICE_CASES if letter is None],
]


@pytest.mark.parametrize("text, letter, options", CLEAR_TABLES)
def test_clear_answer_tables_through_the_grammar(text, letter, options):
    if text in REFUSED_BY_THE_GRAMMAR:
        assert extract_answer(text, options, grammar=True) is None, REFUSED_BY_THE_GRAMMAR[text]
        assert extract_answer(text, options) == letter
    else:
        assert extract_answer(text, options, grammar=True) == letter


@pytest.mark.parametrize("text, options", REFUSING_TABLES)
def test_refusing_tables_through_the_grammar(text, options):
    assert extract_answer(text, options, grammar=True) is None


def test_grammar_wants_one_answer_block():
    """A second ``<answer>`` or ``</answer>`` anywhere, or one without its pair: no answer, for numbers too."""
    for text in ["<answer>A<answer>B</answer>", "<answer>A</answer>\n<answer>B", "<answer>B</answer></answer>"]:
        assert extract_choice(text, DRUGS).answer is not None  # the flexible reading picks one
        assert extract_choice(text, DRUGS, grammar=True) == (None, "answer_tag")
    assert extract_number("<answer>18<answer>19</answer>").answer == "19"
    assert extract_number("<answer>18<answer>19</answer>", grammar=True) == (None, "answer_tag")
    assert extract_number("<answer>18</answer>", grammar=True).answer == "18"
    assert extract_number("<answer>18", grammar=True).answer is None  # not "the last number"
    assert extract_answer("#### 18", grammar=True) == "18"  # no tags: read as before


@settings(max_examples=300, deadline=None)
@given(pick=answer_and_form(), fmt=st.sampled_from(FORMATS), noise=NOISE)
def test_generated_clear_answers_pay_through_the_grammar(pick, fmt, noise):
    letter, form = pick
    text = fmt.format(form, noise=noise)
    assert extract_answer(text, DRUGS, grammar=True) == letter, text


@settings(max_examples=300, deadline=None)
@given(
    gold=GOLD, other=GOLD, data=st.data(), joiner=st.sampled_from(HEDGE_JOINERS), fmt=st.sampled_from(FORMATS),
    gold_first=st.booleans(), noise=NOISE, negation=st.sampled_from(NEGATIONS),
)  # fmt: skip
def test_generated_hedges_and_negations_never_pay_through_the_grammar(
    gold, other, data, joiner, fmt, gold_first, noise, negation
):
    if other == gold:
        other = "ABCD"[("ABCD".index(gold) + 1) % 4]
    first = data.draw(st.sampled_from(letter_forms(gold)))
    second = data.draw(st.sampled_from(letter_forms(other)))
    hedge = first + joiner + second if gold_first else second + joiner + first
    assert extract_answer(fmt.format(hedge, noise=noise), DRUGS, grammar=True) is None, hedge
    assert extract_answer(fmt.format(negation.format(first), noise=noise), DRUGS, grammar=True) is None


# Words and marks that are no frame, keyword or option text: one of them beside a clean answer makes it unclean
STRAY = st.one_of(
    st.from_regex(r"[a-z]{2,9}", fullmatch=True).filter(
        lambda w: w != "is" and w not in extract.language.OPTION_WORDS and w not in map(str.casefold, DRUGS.values())
    ),
    st.sampled_from(
        ["✗", "❌", "¬", "≠", "?", "✓", "→", "~", "n't", "×", "nope", "不", "非", "nicht", "falsch", "faux"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(pick=answer_and_form(), stray=STRAY, before=st.booleans(), fmt=st.sampled_from(FORMATS[:3]), noise=NOISE)
def test_any_stray_word_beside_an_answer_pays_nothing(pick, stray, before, fmt, noise):
    """In an answer block or a box there is no room for anything but the answer and its frame."""
    _, form = pick
    span = f"{stray} {form}" if before else f"{form} {stray}"
    assert extract_answer(fmt.format(span, noise=noise), DRUGS, grammar=True) is None, span


ANY_OPTIONS = st.one_of(
    st.just(DRUGS), st.just(ZH), st.lists(st.text(max_size=12), max_size=10),
    st.dictionaries(st.text(max_size=2), st.one_of(st.text(max_size=12), st.none()), max_size=10),
)  # fmt: skip
GRAMMARY = st.lists(
    st.sampled_from(
        list("ABCDabE ().:!?*$\\{}[]【】（）「」\"'\u200b\u202e\u2066\u00ad\u0336")
        + ["The answer is ", "Answer: ", "答案是", "答案：", "选项", "项", " is correct", "option ", "Heparin", "\\text{",
           "\\boxed{", "</s>", "<|im_end|>", "Die Antwort ist ", "not ", "正确", "\n"]
    ),
    max_size=40,
).map("".join)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    span=st.one_of(GRAMMARY, st.text(max_size=200), st.text(st.characters(codec=None), max_size=80)),
    options=ANY_OPTIONS,
)
def test_grammar_never_raises_and_does_bounded_work(span, options):
    """Any span, any options: a letter of the options or None, never an exception. The work is bounded by
    construction: the reference reader runs at most MAX_PEELS + 1 times per read (twice for a cue's line), each time
    over at most MAX_SPAN characters, with anchored single-pass regular expressions."""
    grammar = extract.grammar
    calls = []
    real = grammar._reference

    def counting(s, table):
        calls.append(len(s))
        return real(s, table)

    grammar._reference = counting
    try:
        found = extract.strict_choice(span, options)
        found_line = extract.strict_choice(span, options, line=True)
    finally:
        grammar._reference = real
    letters = extract.normalize_options(options)
    assert found is None or found in letters
    assert found_line is None or found_line in letters
    assert len(calls) <= 3 * (grammar.MAX_PEELS + 1)
    assert all(n <= extract.MAX_SPAN for n in calls)
