"""``medrlvr bench rewards``: milliseconds per reward call on adversarial 100 KB completions, against a 50 ms
budget. A reward runs on every rollout of every step: a pattern that backtracks on a long completion would stall
training, so each extraction cue is tried on text built to make naive regexes backtrack or rescan."""

from __future__ import annotations

import statistics
import time

from ..rewards import accuracy_reward, format_reward, xml_count_reward

OPTIONS = {"A": "Aspirin", "B": "Vitamin A deficiency", "C": "Ibuprofen", "D": "None of the above"}

# Fragments that make naive regex extractors backtrack or rescan: unclosed tags, unclosed braces, boxes with no
# brace, cue words with no answer, hedges, negations, full-width text. A unit is repeated to the size; a
# (head, unit, tail) triple wraps the repetition (one huge answer tag).
ADVERSARIAL_UNITS: dict[str, str | tuple[str, str, str]] = {
    "unclosed answer tags": "<answer>",
    "unclosed think tags": "<think>",
    "unclosed boxes": "\\boxed{",
    "boxes without braces": "\\boxed ",
    "fboxes without braces": "\\fbox ",
    "nested open boxes": "\\boxed{{",
    "closed boxes": "\\boxed{B} ",
    "open braces": "{",
    "answer cues": "the answer is ",
    "option cues": "the correct option is ",
    "hedges": "Answer: A or ",
    "hedge lines": "Answer: B or C\n",
    "negations": "The answer is not B. ",
    "negated tags": "<answer>B is incorrect</answer>",
    "letters": "A ",
    "lowercase letters": "option b or c (d) ",
    "option texts": "Vitamin A deficiency or Aspirin ",
    "full-width": "Ａｎｓｗｅｒ： Ｂ （Ｃ） １８ ",
    "number fragments": "#### 1,",
    "digit commas": "1,23",
    "mixed": "<answer>\\boxed{answer is (A or ",
    "one huge answer tag": ("<answer>", "B or not A ", "</answer>"),
    "realistic 100 KB": "<think>Let me re-check the options. </think>",
}


def bench_rewards(size: int = 100_000, repeats: int = 5) -> list[dict]:
    """Milliseconds to score one ``size``-character adversarial completion with each reward (median of repeats);
    the accuracy reward twice: with options (letters) and without (numbers, as for GSM8K)."""
    rows = []
    for name, unit in ADVERSARIAL_UNITS.items():
        head, unit, tail = unit if isinstance(unit, tuple) else ("", unit, "")
        body = size - len(head) - len(tail)
        text = head + (unit * (body // len(unit) + 1))[:body] + tail
        if name.startswith("realistic"):
            text = text[: size - 40] + "<answer>B</answer>"
        row = {"completion": name, "chars": len(text)}
        calls = {  # text bound now: a lambda reads its loop variable when called
            "accuracy_reward": lambda t=text: accuracy_reward([t], answer=["B"], options=[OPTIONS]),
            "accuracy_reward (numbers)": lambda t=text: accuracy_reward([t], answer=["18"]),
            "format_reward": lambda t=text: format_reward([t]),
            "xml_count_reward": lambda t=text: xml_count_reward([t]),
        }
        for column, call in calls.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1000)
            row[column] = statistics.median(times)
        rows.append(row)
    return rows


def print_rewards(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = [k for k in rows[0] if k not in ("completion", "chars")]  # one per reward call of bench_rewards
    table = Table(title="reward time per completion, ms (median of 5); budget 50 ms")
    for column in ["completion", "chars", *columns]:
        table.add_column(column, justify="left" if column == "completion" else "right")
    for row in rows:
        table.add_row(row["completion"], f"{row['chars']:,}", *(f"{row[k]:.2f}" for k in columns))
    Console().print(table)
    worst_ms, worst_row = max((max(r[k] for k in columns), r["completion"]) for r in rows)
    verdict = "within" if worst_ms < 50 else "OVER"
    Console().print(f"worst: {worst_ms:.2f} ms on {worst_row!r} ({verdict} the 50 ms budget)")
