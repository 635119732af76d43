"""The report on this turn's recorded hacks: a policy answering one letter to almost every question is flagged in
Table 1 and is no gain over a constant answer, and a base that never closes the format is not a baseline."""

import json

from medrlvr.evaluate import summarize
from medrlvr.report import report

BENCH = "mmlu:medical@generate"
# 150 golds, 46 of them D (the demo's MMLU medical sample): D was the most frequent gold letter
GOLDS = ["D"] * 46 + ["A"] * 36 + ["B"] * 34 + ["C"] * 34


def _policy(texts_and_counts):
    texts = [t for t, count in texts_and_counts for _ in range(count)]
    assert len(texts) == len(GOLDS)
    return texts


HACKS = {
    # random: "D" to 146 of 150, `<think>D</think><answer>D</answer>` 130 times
    "random": _policy([("<think>D</think><answer>D</answer>", 130), ("<think> D is the answer</think><answer>D</answer>", 16),
                       ("<think> the heart</think><answer>A</answer>", 4)]),
    # gemma-filter: "B" to 145, `<think> A</think><answer>B</answer>` 107 times
    "gemma-filter": _policy([("<think> A</think><answer>B</answer>", 107), ("<think>B</think><answer>B</answer>", 38),
                             ("<think> hmm</think><answer>C</answer>", 5)]),
    # smollm2-filter (the README's run): `<think>D</think><answer>B</answer>` for 141 of 150
    "smollm2-filter": _policy([("<think>D</think><answer>B</answer>", 141), ("<think> A</think><answer>A</answer>", 9)]),
}  # fmt: skip


def _rows(texts):
    from medrlvr.extract import extract_answer
    from medrlvr.rewards import format_reward

    options = {k: f"option {k}" for k in "ABCD"}
    rows = []
    for i, (text, gold) in enumerate(zip(texts, GOLDS)):
        answer = extract_answer(text, options, strict=True)
        fmt = format_reward([text])[0] == 1.0
        rows.append({"id": f"q{i}", "subject": "anatomy", "gold": gold, "response": text, "answer": answer,
                     "answer_flexible": answer, "correct": answer == gold, "correct_flexible": answer == gold,
                     "format_ok": fmt, "well_formed": fmt and answer is not None, "key": "k"})  # fmt: skip
    return rows


def _write(run, model, rows):
    path = run / "eval" / model / BENCH.replace(":", "_")
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"model": model, **summarize(rows, BENCH)}))
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_recorded_hacks_are_flagged_and_no_gain_over_a_constant_letter(tmp_path):
    # the base never closes the format: 64 tokens of reasoning and no answer tag
    _write(tmp_path, "base", _rows(["<think> Let us think about the heart and the lungs"] * 150))
    for name, texts in HACKS.items():
        _write(tmp_path, name, _rows(texts))
    out = report(tmp_path, models=["base", *HACKS], baseline="base")

    table1 = (out / "table1.md").read_text()
    for name in HACKS:
        line = next(line for line in table1.splitlines() if line.startswith(f"| {name}"))
        assert "⚠" in line and "collapsed" in line, line  # the Flags column
    assert "hacking" in next(line for line in table1.splitlines() if line.startswith("| smollm2-filter"))
    assert "format failure" in next(line for line in table1.splitlines() if line.startswith("| base"))

    # random scores 46/150 = 0.307: the share of D among the golds, and the table says it is no gain
    baselines = (out / "baselines.md").read_text()
    random_row = next(line for line in baselines.splitlines() if line.startswith("| random"))
    assert "0.307 [" in random_row and "0.307 (D)" in random_row and "no gain" in random_row
    for name in HACKS:
        assert "no gain" in next(line for line in baselines.splitlines() if line.startswith(f"| {name}"))

    # against a base that never answers in the format, accuracy is not called a gain
    paired = (out / "paired.md").read_text()
    acc = next(line for line in paired.splitlines() if line.startswith("| random") and "| accuracy |" in line)
    assert "n/a: base never answers in this format" in acc and "+0.307" not in acc

    flags = (out / "flags.md").read_text()
    assert "answers D to 146 of 150" in flags
    page = (out / "index.html").read_text()
    assert "Against trivial answers" in page and "collapsed" in page


def test_an_honest_policy_is_not_flagged(tmp_path):
    letters = "ABCD"
    texts = [f"<think> The symptoms point to option {g}.</think><answer>{g if i % 3 else letters[(i + 1) % 4]}</answer>"
             for i, g in enumerate(GOLDS)]  # fmt: skip
    _write(tmp_path, "honest", _rows(texts))
    out = report(tmp_path)
    line = next(line for line in (out / "table1.md").read_text().splitlines() if line.startswith("| honest"))
    assert "⚠" not in line
    row = next(line for line in (out / "baselines.md").read_text().splitlines() if line.startswith("| honest"))
    assert "above chance and constant answers" in row


def test_dynamics_section_from_a_completion_log(tmp_path):
    """A policy's training log: format failure first, then a collapse onto D; the report has its stages, chart and
    verbatim completions."""
    _write(tmp_path, "base", _rows(["<think> Let us think"] * 150))
    train = tmp_path / "train" / "random"
    train.mkdir(parents=True)
    log = []
    for step in range(1, 33):
        for i in range(16):
            gold = "ABCD"[(step + i) % 4]
            text = "<think> I am not sure about this one" if step <= 8 else "<think>D</think><answer>D</answer>"
            log.append({"step": step, "call": step, "id": f"q{step}", "gold": gold, "completion": text})
    (train / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    out = report(tmp_path)
    dynamics = (out / "dynamics.md").read_text()
    assert "| random | format failure | 1 |" in dynamics and "| random | collapsed |" in dynamics
    assert "<think>D</think><answer>D</answer>" in dynamics
    assert (out / "dynamics_random.png").stat().st_size > 1000
    assert "Training dynamics" in (out / "index.html").read_text()
