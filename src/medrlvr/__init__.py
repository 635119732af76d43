"""medrlvr: reinforcement learning with verifiable rewards for medical question answering.

The Python API under the ``medrlvr`` command: each stage is a function, and ``run_study`` runs them all from one
recipe (``medrlvr run``).

>>> from medrlvr import load_benchmark, run_study  # doctest: +SKIP
>>> run_study("recipes/demo-cpu.yaml", ["eval.limit=50"])  # doctest: +SKIP
"""

from .data import load_benchmark
from .evaluate import EvalConfig, evaluate
from .extract import extract_answer
from .filter import FilterConfig, filter_pool
from .prompts import chat_messages, plain_prompt, render_question
from .records import Record
from .report import report
from .rewards import accuracy_reward, compute_score, format_reward, xml_count_reward
from .select import SelectConfig, select
from .study.recipe import load_recipe
from .study.runner import run_study
from .train import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "EvalConfig", "FilterConfig", "Record", "SelectConfig", "TrainConfig", "accuracy_reward", "chat_messages",
    "compute_score", "evaluate", "extract_answer", "filter_pool", "format_reward", "load_benchmark", "load_recipe",
    "plain_prompt", "render_question", "report", "run_study", "select", "train", "xml_count_reward",
]  # fmt: skip
