"""What the report must say before any gain: is an accuracy above chance and above the best constant answer, did a
policy collapse onto one letter or hack the format, and how did its training unfold.

Reads prediction and training files only (``RUN/eval/MODEL/BENCH/predictions.jsonl``, ``RUN/train/POLICY/
{completions,metrics}.jsonl``); the rules are :mod:`medrlvr.report.baselines` and :mod:`medrlvr.report.dynamics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..rundir import eval_dir
from ..store import read_jsonl
from .baselines import gain_verdict
from .charts import plot_dynamics
from .circular import baseline_reason
from .dynamics import analyze_training, flag_predictions

TRIVIAL_HEADER = ["Model", "Benchmark", "n", "Accuracy [95% CI]", "Chance", "Best constant", "Own top letter",
                  "Always own top letter", "Answer / gold entropy (bits)", "McNemar p vs own letter",
                  "Verdict"]  # fmt: skip
DYNAMICS_HEADER = ["Policy", "Stage", "From step", "To step"]


def predictions(run_dir: str | Path, model: str, bench: str) -> list[dict] | None:
    """The prediction rows of one model on one benchmark, or None when there is no file."""

    path = eval_dir(run_dir, model, bench) / "predictions.jsonl"
    if not path.is_file():
        return None
    return list(read_jsonl(path, unique="id"))


def _letter_golds(rows: list[dict]) -> bool:
    """Multiple-choice predictions: every gold a single capital letter."""
    return bool(rows) and all(isinstance(r.get("gold"), str) and len(r["gold"]) == 1 and r["gold"].isupper()
                              for r in rows)  # fmt: skip


def _letters(rows: list[dict]) -> Any:
    """Options per question where the rows carry them (``n_options``), else four (MMLU, MedQA, CMMLU)."""
    if all("n_options" in r for r in rows):
        return [int(r["n_options"]) for r in rows]
    return 4


def letter_rows(rows: list[dict]) -> tuple[list[str], list[str | None], Any] | None:
    """Golds, answers and options per question of multiple-choice prediction rows; None for other benchmarks."""
    if not _letter_golds(rows):
        return None
    return [r["gold"] for r in rows], [r.get("answer") for r in rows], _letters(rows)


def base_well_formed(table: dict[str, dict[str, dict]], baseline: str | None, bench: str) -> float | None:
    res = table.get(baseline or "", {}).get(bench, {})
    return res.get("well_formed_rate")


def trivial_table(run_dir, table, baseline: str | None = None) -> tuple[list[list[str]], dict[tuple[str, str], dict]]:
    """Each model's accuracy on each multiple-choice benchmark next to chance, the best constant answer (always the
    golds' most frequent letter) and the policy's own favourite letter answered to every question, with the
    entropy of its answered letters against the golds' and an exact McNemar test against its own constant answer.
    Returns the rows and the verdicts by (model, benchmark)."""
    rows, verdicts = [], {}
    for model, per in table.items():
        for bench in sorted(per):
            preds = predictions(run_dir, model, bench)
            letters = letter_rows(preds) if preds else None
            if letters is None:
                continue
            base_rate = base_well_formed(table, baseline, bench) if model != baseline else None
            v = gain_verdict(*letters, base_well_formed_rate=base_rate)
            rotated = baseline_reason(per[bench])  # a circular evaluation: right under every rotation?
            if rotated:
                v = {**v, "trivial": True, "reasons": [*v["reasons"], rotated]}
            verdicts[(model, bench)] = v
            b, own = v["baselines"], v["vs_own_constant"]
            lo, hi = v["accuracy_ci"]
            top = f"{b['top_letter']} ({b['top_share']:.0%} of {b['answered']})" if b["top_letter"] else "-"
            verdict = ("no gain: " + v["reasons"][0]) if v["trivial"] else "above chance and constant answers"
            if rotated and v["reasons"][0] != rotated:
                verdict += f"; {rotated}"
            if model == baseline:
                verdict = "(the baseline) " + (v["reasons"][0] if v["trivial"] else verdict)
            rows.append([model, bench, str(b["n"]), f"{b['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]", f"{b['chance']:.3f}",
                         f"{b['best_constant']['accuracy']:.3f} ({b['best_constant']['letter']})", top,
                         f"{b['own_constant']['accuracy']:.3f}",
                         f"{max(0.0, b['answer_entropy_bits']):.2f} / {max(0.0, b['gold_entropy_bits']):.2f}",
                         "-" if own["letter"] is None else f"{own['p_value']:.3g}", verdict])  # fmt: skip
    return rows, verdicts


def flags(run_dir, table) -> dict[str, list[dict[str, str]]]:
    """model -> flags (``format_failure``, ``collapsed``, ``hacking``, each with a one-line reason) from its
    generate-mode answers on every benchmark; a flag names the benchmark it was seen on."""
    out: dict[str, list[dict[str, str]]] = {}
    for model, per in table.items():
        for bench in sorted(per):
            if "well_formed_rate" not in per[bench]:
                continue
            preds = predictions(run_dir, model, bench)
            if not preds or not _letter_golds(preds):
                continue
            for f in flag_predictions(preds):
                out.setdefault(model, []).append({**f, "benchmark": bench})
    return out


def flag_label(model_flags: list[dict[str, str]]) -> str:
    """The mark Table 1 puts after a flagged model's name: "⚠ collapsed, hacking"."""
    names = sorted({f["flag"].replace("_", " ") for f in model_flags})
    return f" ⚠ {', '.join(names)}" if names else ""


def dynamics(run_dir, out: Path, models: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per trained policy with a completion log: its stages, a chart (``dynamics_POLICY.png/svg``) and a few
    verbatim completions per stage."""
    found = {}
    for comp in sorted(Path(run_dir).glob("train/*/completions.jsonl")):
        policy = comp.parent.name
        if models is not None and policy not in models:
            continue
        analysis = analyze_training(comp.parent)
        if not analysis["steps"]:
            continue
        plot_dynamics(analysis["stages"], out / f"dynamics_{policy}", title=f"{policy}: training dynamics")
        found[policy] = analysis
    return found


def dynamics_rows(found: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[policy, seg["stage"].replace("_", " "), str(seg["start"]), str(seg["end"])]
            for policy, a in found.items() for seg in a["stages"]["segments"]]  # fmt: skip


def dynamics_markdown(found: dict[str, dict[str, Any]], to_markdown) -> str:
    """Stages per policy, then a few verbatim completions of each stage."""
    text = to_markdown(DYNAMICS_HEADER, dynamics_rows(found))
    for policy, a in found.items():
        for seg in a["samples"]:
            text += f"\n### {policy}: {seg['stage'].replace('_', ' ')} (steps {seg['start']}-{seg['end']})\n\n"
            for c in seg["completions"]:
                text += f"step {c['step']}, gold {c['gold']}:\n```\n{c['text']}\n```\n"
    return text


def dynamics_html(found: dict[str, dict[str, Any]]) -> str:
    """The verbatim completions of each stage as escaped <pre> blocks."""
    import html

    parts = []
    for policy, a in found.items():
        for seg in a["samples"]:
            parts.append(f"<h4>{html.escape(policy)}: {html.escape(seg['stage'].replace('_', ' '))} "
                         f"(steps {seg['start']}-{seg['end']})</h4>")  # fmt: skip
            parts += [f"<p>step {c['step']}, gold {html.escape(str(c['gold']))}</p><pre>{html.escape(c['text'])}</pre>"
                      for c in seg["completions"]]  # fmt: skip
    return "".join(parts)
