"""medrlvr: reinforcement learning with verifiable rewards for medical question answering.

The Python API under the ``medrlvr`` command. Stages are added here as they land.
"""

from .data import load_benchmark
from .extract import extract_answer
from .prompts import chat_messages, plain_prompt, render_question
from .records import Record
from .rewards import accuracy_reward, compute_score, format_reward, xml_count_reward

__version__ = "0.1.0"

__all__ = [
    "Record", "accuracy_reward", "chat_messages", "compute_score", "extract_answer", "format_reward",
    "load_benchmark", "plain_prompt", "render_question", "xml_count_reward",
]  # fmt: skip
