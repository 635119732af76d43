"""Throughput benchmarks (``medrlvr bench ...``). Speed goals are checked here, never by timed unit tests."""

from __future__ import annotations

import statistics
import time

from .rewards import accuracy_reward, format_reward, xml_count_reward

OPTIONS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}

# Fragments that make naive regex extractors backtrack: unclosed tags, unclosed braces, cue words with no answer.
ADVERSARIAL_UNITS = {
    "unclosed answer tags": "<answer>",
    "unclosed think tags": "<think>",
    "unclosed boxes": "\\boxed{",
    "open braces": "{",
    "answer cues": "the answer is ",
    "hedges": "Answer: A or ",
    "letters": "A ",
    "number fragments": "#### 1,",
    "mixed": "<answer>\\boxed{answer is (A or ",
    "realistic 100 KB": "<think>Let me re-check the options. </think>",
}


def bench_rewards(size: int = 100_000, repeats: int = 5) -> list[dict]:
    """Milliseconds to score one ``size``-character adversarial completion with each reward (median of repeats)."""
    rows = []
    for name, unit in ADVERSARIAL_UNITS.items():
        text = (unit * (size // len(unit) + 1))[:size]
        if name.startswith("realistic"):
            text = text[: size - 40] + "<answer>B</answer>"
        row = {"completion": name, "chars": len(text)}
        for reward in (accuracy_reward, format_reward, xml_count_reward):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                reward([text], answer=["B"], options=[OPTIONS])
                times.append((time.perf_counter() - start) * 1000)
            row[reward.__name__] = statistics.median(times)
        rows.append(row)
    return rows


def print_rewards(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="reward time per completion, ms (median of 5); budget 50 ms")
    for column in ("completion", "chars", "accuracy_reward", "format_reward", "xml_count_reward"):
        table.add_column(column, justify="left" if column == "completion" else "right")
    for row in rows:
        table.add_row(row["completion"], f"{row['chars']:,}",
                      *(f"{row[k]:.2f}" for k in ("accuracy_reward", "format_reward", "xml_count_reward")))
    Console().print(table)
    worst = max(max(r["accuracy_reward"], r["format_reward"], r["xml_count_reward"]) for r in rows)
    Console().print(f"worst: {worst:.2f} ms ({'within' if worst < 50 else 'OVER'} the 50 ms budget)")
