"""The two prompts of Open-Medical-R1 (arXiv 2504.13950), verbatim, and the rendering of a question.

- Fig. 1, the filter prompt: the filter model reasons step by step and answers in ``\\boxed{}``.
- Fig. 2, the R1-Zero training prompt (after DeepSeek-R1-Zero): reasoning in ``<think>``, answer in ``<answer>``.

And the robustness probes' texts, in our own words: the adversarial prefill (after BioMed-R1, arXiv 2505.11462: the
answer begins by arguing for a wrong option), the open-form question (after ReVeL, arXiv 2511.17405: the question
without its options) and the judge's instructions for grading a free answer.

Each renders as chat messages (instruct models, through their chat template) or as one plain string
(base models, plain completion), from the same question text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .records import Record

Prompt = str | list[dict[str, str]]  # a plain string, or chat messages

# Fig. 1 ("Please reason step by step, and put your final answer within \boxed{ }. Please answer:" then the
# question). The figure typesets the braces with a space; the text the model sees is the usual \boxed{}.
FILTER_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}. Please answer:\n"

# Fig. 2, word for word.
R1_ZERO_SYSTEM = (
    "A conversation between user and assistant. The user asks a question, and the assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process is to solve the problem step by step, so you will think about it sincerely. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>"
)

PROMPTS = ("filter", "r1_zero")


def render_question(record: Record) -> str:
    """The question followed by its options as ``A. text`` lines (GSM8K: the question alone)."""
    lines = [record.question.strip()]
    lines += [f"{letter}. {text}" for letter, text in record.options.items()]
    return "\n".join(lines)


def chat_messages(record: Record, prompt: str = "r1_zero", question: str | None = None) -> list[dict[str, str]]:
    """Messages for a chat template. The R1-Zero text is a system prompt; the filter text leads the user turn.
    ``question``: the text asked in place of the record's question and options (the open-form probe)."""
    question = render_question(record) if question is None else question
    if prompt == "filter":
        return [{"role": "user", "content": FILTER_PROMPT + question}]
    if prompt == "r1_zero":
        return [{"role": "system", "content": R1_ZERO_SYSTEM}, {"role": "user", "content": question}]
    raise ValueError(f"unknown prompt {prompt!r}; known: {', '.join(PROMPTS)}")


def plain_prompt(record: Record, prompt: str = "r1_zero", question: str | None = None) -> str:
    """One string for a base model with no chat template.

    R1-Zero's own template puts the conversation in "User: ... Assistant:" form; the model then writes the
    think and answer tags itself, so the format reward scores the completion alone. The filter prompt ends
    with a cue for the same reason.
    """
    question = render_question(record)
    if prompt == "filter":
        return f"{FILTER_PROMPT}{question}\nSolution:"
    if prompt == "r1_zero":
        return f"{R1_ZERO_SYSTEM}\nUser: {question}\nAssistant:"
    raise ValueError(f"unknown prompt {prompt!r}; known: {', '.join(PROMPTS)}")


def render(
    record: Record, prompt: str = "r1_zero", chat: bool = True, prefill: str | None = None, question: str | None = None
):
    """The prompt for one question as the model gets it: chat messages (``chat=True``: the model has a chat
    template) or one plain string, with the answer begun by ``prefill`` (see :func:`with_prefill`). The filter,
    training and evaluation all build their prompts here (``question``: other text in place of the question and its
    options, as :func:`open_question`)."""
    messages = chat_messages(record, prompt, question) if chat else plain_prompt(record, prompt, question)
    return with_prefill(messages, prefill)


def with_prefill(prompt: str | list[dict[str, str]], prefill: str | None) -> str | list[dict[str, str]]:
    """The prompt with the assistant's reply already begun by ``prefill`` (R1-Zero replications prefill
    ``<think>`` so that small models enter the format at all). Chat prompts get an assistant turn that the chat
    template continues; plain prompts ("... Assistant:") get the text after a space. Whatever reads the
    completion (rewards, evaluation) reads ``prefill + completion``.

    >>> with_prefill("User: 2+2?\nAssistant:", "<think>")
    'User: 2+2?\nAssistant: <think>'
    """
    if not prefill:
        return prompt
    if isinstance(prompt, str):
        return f"{prompt} {prefill}"
    return [*prompt, {"role": "assistant", "content": prefill}]


# --- the robustness probes' texts (our own wording) --------------------------------------------------------------

# The adversarial prefill: the answer starts by committing to a wrong option and giving it a reason, as a model
# talked into a wrong first impression would. BioMed-R1's probe prefills an incorrect answer and lets the model
# reconsider; a robust model overrules the sentence, a brittle one follows it. Changing this text changes every
# probe row's key, so rows made under another wording are never mixed in.
ADVERSARIAL_PREFILL = (
    "My first thought is that the answer is {letter}. {text}: it fits what the question describes better than "
    "the other options, so I will go with {letter}."
)

# The open-form question: the stem alone, and how to answer without letters to choose from.
OPEN_FORM_NOTE = "\n\nNo options are given: answer with the answer itself, in a few words."

# The judge's instructions for grading a free answer against the reference (the gold option's text).
JUDGE_SYSTEM = (
    "You grade answers to medical exam questions. You are given a question, the reference answer and a "
    "candidate's answer. The candidate's answer is correct if it names the same thing as the reference answer "
    "(a synonym, abbreviation, translation or more specific name of the same thing counts); it is incorrect if "
    "it names something else, names several different things, or gives no answer. Reply with one word: CORRECT "
    "or INCORRECT."
)
JUDGE_USER = "Question:\n{question}\n\nReference answer: {reference}\n\nCandidate's answer: {answer}"


def adversarial_prefill(record: Record, letter: str, prefill: str | None = None) -> str:
    """The answer's opening for the adversarial-prefill probe: ``prefill`` (e.g. ``<think>``, as training's), then
    the sentence arguing for option ``letter`` (:data:`ADVERSARIAL_PREFILL`).

    >>> rec = Record(id="q", question="Which nerve supplies the diaphragm?", options={"A": "Vagus", "B": "Phrenic"},
    ...              answer="B")
    >>> adversarial_prefill(rec, "A", "<think>")[:54]
    '<think>My first thought is that the answer is A. Vagus'
    """
    sentence = ADVERSARIAL_PREFILL.format(letter=letter, text=record.options[letter].strip())
    if not prefill:
        return sentence
    return prefill + ("" if prefill[-1].isspace() or prefill.endswith(">") else " ") + sentence


def open_question(record: Record) -> str:
    """The question without its options, for the open-form probe (:data:`OPEN_FORM_NOTE` says how to answer)."""
    return record.question.strip() + OPEN_FORM_NOTE


def judge_messages(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    """The judge's chat messages for one free answer."""
    user = JUDGE_USER.format(question=question.strip(), reference=reference.strip(), answer=answer.strip())
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def verl_rows(chosen: Sequence[Record], split: str = "train") -> list[dict]:
    """Rows in verl's RL data format: the R1-Zero chat prompt, the gold letter as ground truth, and the
    options in extra_info for :func:`medrlvr.rewards.compute_score`."""
    return [
        {
            "data_source": r.source or "medrlvr",
            "prompt": chat_messages(r, "r1_zero"),
            "ability": "medical",
            "reward_model": {"style": "rule", "ground_truth": r.answer},
            "extra_info": {
                "split": split,
                "index": i,
                "id": r.id,
                "subject": r.subject,
                "options": json.dumps(dict(r.options), ensure_ascii=False),
            },
        }
        for i, r in enumerate(chosen)
    ]
