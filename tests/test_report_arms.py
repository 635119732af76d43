"""The report over arms: seed spread, arms against seed variance, the control, the sweep chart and pass@k."""

import json

from medrlvr.evaluate import pass_at_k_results, summarize
from medrlvr.report import report

BENCH = "mmlu:medical@generate"


def _write(run, model, correct, pass_counts=None):
    rows = []
    for i, ok in enumerate(correct):
        row = {"id": f"q{i}", "subject": "anatomy", "gold": "ABCD"[i % 4], "answer": "ABCD"[i % 4] if ok else "A",
               "correct": ok, "correct_flexible": ok, "format_ok": True, "well_formed": True,
               "response": "<think> the vessel narrows</think><answer>A</answer>"}  # fmt: skip
        if pass_counts:
            row.update(samples=4, samples_correct=pass_counts[i])
        rows.append(row)
    path = run / "eval" / model / BENCH.replace(":", "_")
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"model": model, **summarize(rows, BENCH),
                                                   **pass_at_k_results(rows)}))  # fmt: skip
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_arms_seeds_sweep_control_and_pass_at_k(tmp_path):
    n = 40
    accuracy = {"ratio-hard16-easy0": (0.30, 0.35), "ratio-hard12-easy4": (0.55, 0.60), "control": (0.25,)}
    arms = {}
    for arm, accs in accuracy.items():
        members = [f"{arm}-seed{s}" for s in range(len(accs))] if len(accs) > 1 else [arm]
        for member, acc in zip(members, accs):
            _write(tmp_path, member, [i < acc * n for i in range(n)], [min(4, i % 5) for i in range(n)])
        arms[arm] = {"policies": members, "seeds": list(range(len(accs))), "values": {},
                     "sweep": None if arm == "control" else "ratio", "control": "random_reward" if arm == "control"
                     else None, "size": 16}  # fmt: skip
    (tmp_path / "arms.json").write_text(json.dumps(arms))
    out = report(tmp_path)
    text = (out / "arms.md").read_text()
    # each arm's mean over its seeds, its spread and a t interval (none with one seed)
    assert "| ratio-hard12-easy4 | mmlu:medical@generate | accuracy | 2 | 0.575 | 0.035 | 0.550-0.600 | [" in text
    control = "| control | mmlu:medical@generate | accuracy | 1 | 0.250 | 0.000 | 0.250-0.250 | - | random_reward |"
    assert control in text
    # adjacent grid points and each point against the control, with Welch's df and a permutation p
    adjacent = next(
        line
        for line in text.splitlines()
        if line.startswith("| ratio-hard12-easy4 | ratio-hard16-easy0 |") and "| accuracy |" in line
    )
    assert "+0.250" in adjacent and "(2.0)" in adjacent
    assert any(line.startswith("| ratio-hard16-easy0 | control |") for line in text.splitlines())
    assert (out / "sweep_ratio.png").stat().st_size > 1000 and (out / "sweep_ratio.svg").exists()
    passk = (out / "pass_at_k.md").read_text()
    assert "pass@4" in passk and "pass@2" in passk
    page = (out / "index.html").read_text()
    assert "Arms: mean and spread over seeds" in page and "pass@k" in page
