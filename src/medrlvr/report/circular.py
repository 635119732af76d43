"""The report's circular-evaluation section, and what the baselines and flags take from it: read from the
``circular`` block of each results.json (written by :mod:`medrlvr.evaluate.circular`); never runs a model.

- the table: plain accuracy beside the accuracy right under every rotation, with 95% Wilson intervals and the chance
  of guessing every rotation right, per-rotation accuracy, consistency (the same option chosen under every
  rotation), the most over-chosen position against its share of the golds, and the questions that could not be
  rotated;
- a baseline reason (:func:`baseline_reason`): an accuracy whose all-rotations-right interval is not above that
  chance is no evidence of knowledge, whatever the plain accuracy says;
- a flag (:func:`flags`), in every mode (log-likelihood included): ``position_bias`` when a position's chosen share
  has its 95% lower bound more than :data:`BIAS_MARGIN` above that position's share of the golds.
"""

from __future__ import annotations

from typing import Any

HEADER = ["Model", "Benchmark", "n rotated (skipped)", "Plain accuracy [95% CI]",
          "Right under every rotation [95% CI]", "Chance (every rotation)", "Per rotation (min-max)",
          "Consistent [95% CI]", "Most over-chosen position", "Position bias (TV)"]  # fmt: skip
TITLE = "Circular evaluation: every rotation of the options (a question counts only if all are right)"
BIAS_MARGIN = 0.10  # a position chosen this much above its share of golds (95% lower bound) is flagged


def _ci(values) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def over_chosen(block: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The position chosen most above its share of the golds (by the chosen share's lower bound), or None."""
    positions = block.get("position_bias", {}).get("positions", {})
    if not positions or not block["position_bias"].get("answered"):
        return None
    return max(positions.items(), key=lambda kv: kv[1]["ci95"][0] - kv[1]["gold_share"])


def rows(table: dict[str, dict[str, dict]]) -> list[list[str]]:
    """One row per (model, benchmark) evaluated with ``circular``."""
    out = []
    for model, per in table.items():
        for bench in sorted(per):
            res = per[bench]
            c = res.get("circular")
            if not c:
                continue
            per_rot = [p["accuracy"] for p in c["per_rotation"]]
            top = over_chosen(c)
            top_text = "-"
            if top:
                letter, p = top
                top_text = (f"{letter}: {p['chosen_share']:.0%} {_ci(p['ci95'])} of answers, "
                            f"{p['gold_share']:.0%} of golds")  # fmt: skip
            tv = c["position_bias"].get("total_variation")
            out.append([model, bench, f"{c['n']} ({c['skipped']})", f"{res['accuracy']:.3f} {_ci(res['ci95'])}",
                        f"{c['accuracy_all_rotations']:.3f} {_ci(c['ci95_all_rotations'])}",
                        f"{c['chance_all_rotations']:.4f}",
                        f"{min(per_rot):.3f}-{max(per_rot):.3f}" if per_rot else "-",
                        f"{c['consistent_rate']:.3f} {_ci(c['ci95_consistent'])}", top_text,
                        "-" if tv is None else f"{tv:.3f}"])  # fmt: skip
    return out


def baseline_reason(results: dict[str, Any]) -> str | None:
    """Why an accuracy is no evidence under rotation, or None: the all-rotations-right interval's lower bound is
    not above the chance of guessing every rotation right (or nothing could be rotated)."""
    c = results.get("circular")
    if not c:
        return None
    if not c["n"]:
        return f"no question could be rotated ({c['skipped']} skipped)"
    low, high = c["ci95_all_rotations"]
    if low <= c["chance_all_rotations"]:
        return (f"right under every rotation {c['accuracy_all_rotations']:.3f} [{low:.3f}, {high:.3f}] is not above "
                f"chance {c['chance_all_rotations']:.4f}")  # fmt: skip
    return None


def flags(table: dict[str, dict[str, dict]]) -> dict[str, list[dict[str, str]]]:
    """model -> ``position_bias`` flags (one per benchmark where a position is chosen well above its gold share)."""
    out: dict[str, list[dict[str, str]]] = {}
    for model, per in table.items():
        for bench in sorted(per):
            c = per[bench].get("circular")
            top = over_chosen(c) if c else None
            if not top:
                continue
            letter, p = top
            if p["ci95"][0] > p["gold_share"] + BIAS_MARGIN:
                reason = (f"chooses position {letter} in {p['chosen']} of {c['position_bias']['answered']} rotated "
                          f"asks ({p['chosen_share']:.0%}, 95% CI {_ci(p['ci95'])}); {letter} holds "
                          f"{p['gold_share']:.0%} of the golds")  # fmt: skip
                out.setdefault(model, []).append({"flag": "position_bias", "reason": reason, "benchmark": bench})
    return out
