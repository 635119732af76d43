from medrlvr.prompts import FILTER_PROMPT, R1_ZERO_SYSTEM, chat_messages, plain_prompt, render_question
from medrlvr.records import Record

REC = Record(
    id="q", question="Which nerve supplies the diaphragm?", options={"A": "Vagus", "B": "Phrenic"}, answer="B"
)


def test_prompts_are_the_papers_text():
    assert FILTER_PROMPT.startswith("Please reason step by step, and put your final answer within \\boxed{}.")
    assert FILTER_PROMPT.rstrip().endswith("Please answer:")
    assert R1_ZERO_SYSTEM.startswith("A conversation between user and assistant. The user asks a question")
    assert R1_ZERO_SYSTEM.endswith("<think> reasoning process here </think><answer> answer here </answer>")


def test_rendering():
    assert render_question(REC) == "Which nerve supplies the diaphragm?\nA. Vagus\nB. Phrenic"
    assert chat_messages(REC, "filter") == [{"role": "user", "content": FILTER_PROMPT + render_question(REC)}]
    system, user = chat_messages(REC, "r1_zero")
    assert system == {"role": "system", "content": R1_ZERO_SYSTEM} and user["content"] == render_question(REC)
    plain = plain_prompt(REC, "r1_zero")
    assert plain.startswith(R1_ZERO_SYSTEM) and plain.endswith("\nAssistant:") and "B. Phrenic" in plain
    assert plain_prompt(REC, "filter").startswith(FILTER_PROMPT)
    gsm = Record(id="g", question="What is 2+2?", options={}, answer="4")
    assert render_question(gsm) == "What is 2+2?"
