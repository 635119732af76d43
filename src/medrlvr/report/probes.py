"""The robustness probes' tables, from results.json only: accuracy on reasoning- and knowledge-heavy questions, answers
under an adversarial prefill against the plain ones, and open-form answers against multiple choice on the same
questions. Every rate carries its 95% Wilson interval, as written by :mod:`medrlvr.evaluate`."""

from __future__ import annotations

from typing import Any

SPLIT_HEADER = ["Model", "Benchmark", "Reasoning-heavy n", "Reasoning-heavy accuracy", "Knowledge-heavy n",
                "Knowledge-heavy accuracy", "Gap (knowledge - reasoning)"]  # fmt: skip
PREFILL_HEADER = ["Model", "Benchmark", "n", "Plain accuracy", "Under the prefill", "Right -> wrong",
                  "Wrong -> right", "Took the pushed option", "Prefill McNemar p"]  # fmt: skip
OPEN_HEADER = ["Model", "Benchmark", "n asked", "Skipped", "Multiple choice", "Open: exact", "Open: normalised",
               "Open: judge", "Inflation (MC - open)"]  # fmt: skip

SPLIT_TITLE = "Reasoning- vs knowledge-heavy questions (the rule in medrlvr.evaluate.split)"
PREFILL_TITLE = "Adversarial prefill: the answer begun by an argument for a seeded wrong option, against the plain run"
OPEN_TITLE = "Open-form answers: the question without its options, against multiple choice on the same questions"


def _acc(block: dict[str, Any]) -> str:
    lo, hi = block["ci95"]
    return f"{block['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"


def _flips(block: dict[str, Any]) -> str:
    if not block["n"]:
        return "0/0"
    lo, hi = block["ci95"]
    return f"{block['count']}/{block['n']} = {block['rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def split_rows(table: dict[str, dict[str, dict]]) -> list[list[str]]:
    rows = []
    for model, per in table.items():
        for bench, res in sorted(per.items()):
            kinds = res.get("by_kind")
            if not kinds:
                continue
            reasoning, knowledge = kinds["reasoning"], kinds["knowledge"]
            gap = (f"{knowledge['accuracy'] - reasoning['accuracy']:+.3f}" if reasoning["n"] and knowledge["n"]
                   else "-")  # fmt: skip
            rows.append([model, bench, str(reasoning["n"]), _acc(reasoning) if reasoning["n"] else "-",
                         str(knowledge["n"]), _acc(knowledge) if knowledge["n"] else "-", gap])  # fmt: skip
    return rows


def prefill_rows(table: dict[str, dict[str, dict]]) -> list[list[str]]:
    rows = []
    for model, per in table.items():
        for bench, res in sorted(per.items()):
            probe = res.get("adversarial_prefill")
            if not probe:
                continue
            plain = {"accuracy": probe["accuracy_plain"], "ci95": probe["ci95_plain"]}
            rows.append([model, bench, str(probe["n"]), _acc(plain), _acc(probe), _flips(probe["right_to_wrong"]),
                         _flips(probe["wrong_to_right"]), _flips(probe["followed"]),
                         f"{probe['mcnemar_p']:.3g}"])  # fmt: skip
    return rows


def open_rows(table: dict[str, dict[str, dict]]) -> list[list[str]]:
    rows = []
    for model, per in table.items():
        for bench, res in sorted(per.items()):
            probe = res.get("open_form")
            if not probe:
                continue
            skipped = sum(probe["skipped"].values())
            judge = probe.get("judge")
            judged = f"{_acc(judge)} ({judge['model']}, {judge['unparseable']} unparseable)" if judge else "-"
            inflation = probe["inflation"]
            rows.append([model, bench, str(probe["n"]), str(skipped), _acc(probe["multiple_choice"]),
                         _acc(probe["exact"]), _acc(probe["normalised"]), judged,
                         f"{inflation['difference']:+.3f} vs {inflation['measure']} "
                         f"(McNemar p {inflation['mcnemar_p']:.3g})"])  # fmt: skip
    return rows


def sections(table: dict[str, dict[str, dict]]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(file stem, title, header, rows) of each probe table that has rows."""
    found = [("split", SPLIT_TITLE, SPLIT_HEADER, split_rows(table)),
             ("prefill", PREFILL_TITLE, PREFILL_HEADER, prefill_rows(table)),
             ("open_form", OPEN_TITLE, OPEN_HEADER, open_rows(table))]  # fmt: skip
    return [s for s in found if s[3]]
