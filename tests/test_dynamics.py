"""Training dynamics (issue 19): detectors on completions written for the purpose, the demo's three hacks, an honest
policy that must not be flagged, and a synthetic 32-step log whose stages are known."""

from __future__ import annotations

import json

import pytest

from medrlvr.report.charts import plot_dynamics
from medrlvr.report.dynamics import (
    analyze_training,
    detect,
    find_stages,
    flag_predictions,
    read_completions,
    step_table,
)

OPTIONS = {"A": "Iron deficiency", "B": "Vitamin B12 deficiency", "C": "Folate deficiency", "D": "Lead poisoning"}
GOLDS = ["D"] * 46 + ["A"] * 40 + ["B"] * 34 + ["C"] * 30  # the demo's 150 MMLU medical golds, by letter

REASONED = "Macrocytic anemia with neuropathy points to B12. Wait, folate gives no neuropathy. The answer is B."
# fmt: off
DETECTOR_CASES = [
    # text, well_formed, answer, leaked, empty_reasoning, contradicts, reflection
    ("<think>D</think><answer>D</answer>", True, "D", True, True, False, False),
    ("<think> A</think><answer>B</answer>", True, "B", True, True, True, False),
    ("<think>D</think><answer>B</answer>", True, "B", True, True, True, False),
    ("<think>Option C.</think>\n<answer>C</answer>", True, "C", True, False, False, False),
    ("<think>Folate deficiency</think><answer>C</answer>", True, "C", True, False, False, False),
    (f"<think>{REASONED}</think><answer>B</answer>", True, "B", False, False, False, True),
    ("<think>Low ferritin. The answer is A.</think><answer>C</answer>", True, "C", False, False, True, False),
    ("<think>Microcytic anemia with low ferritin in a menstruating woman", False, None, False, False, False, False),
    ("<think>Basophilic stippling.</think><answer> answer here </answer>", False, None, False, False, False, False),
    ("D <think>Because of stippling.</think><answer>D</answer>", False, None, True, False, False, False),
    ("<think>Hmm, however it could be folate.</think><answer>B or C</answer>", False, None, False, False, False, True),
    ("<think>Neuropathy, macrocytes.</think><answer>Vitamin B12 deficiency</answer>", True, "B", False, False, False, False),
]
# fmt: on


@pytest.mark.parametrize("text,well_formed,answer,leaked,empty,contradicts,reflection", DETECTOR_CASES)
def test_detectors(text, well_formed, answer, leaked, empty, contradicts, reflection):
    d = detect(text, OPTIONS)
    got = (d["well_formed"], d["answer"], d["leaked"], d["empty_reasoning"], d["contradicts"], d["reflection"])
    assert got == (well_formed, answer, leaked, empty, contradicts, reflection)
    assert d["hacked"] == (well_formed and (leaked or empty or contradicts))


def test_letters_only_and_length():
    d = detect("<think>It is lead.</think><answer>D</answer>", gold="D")
    assert d["correct"] and d["tokens"] == 3 and d["chars"] == 44 and d["think_tokens"] == 3


def _eval_rows(responses, golds=GOLDS):
    return [{"id": f"q{i}", "gold": g, "response": r} for i, (r, g) in enumerate(zip(responses, golds))]


@pytest.mark.parametrize(
    "response",
    [
        "<think>D</think><answer>D</answer>",
        "<think> A</think><answer>B</answer>",
        "<think>D</think><answer>B</answer>",
    ],
)
def test_the_demo_hacks_are_flagged(response):
    flags = flag_predictions(_eval_rows([response] * 150))
    assert [f["flag"] for f in flags] == ["collapsed", "hacking"]
    assert "of 150 answered questions" in flags[0]["reason"] and "x150" in flags[1]["reason"]


def test_the_random_policy_as_the_demo_printed_it():
    responses = ["<think>D</think><answer>D</answer>"] * 130 + [
        "<think>The answer is D.</think><answer>D</answer>"
    ] * 16
    responses += ["<think>Anemia</think><answer>A</answer>"] * 4
    flags = {f["flag"]: f["reason"] for f in flag_predictions(_eval_rows(responses))}
    assert set(flags) == {"collapsed", "hacking"}
    assert flags["collapsed"].startswith("answers D to 146 of 150") and "x130" in flags["hacking"]


def _honest(i: int, gold: str) -> str:
    letter = gold if i % 3 else "ABCD"[(i + 1) % 4]  # right two times in three, wrong answers spread
    findings = ["low ferritin", "hypersegmented neutrophils", "a goat-milk diet", "basophilic stippling"]
    return (
        f"<think>The smear shows {findings[i % 4]}. Of the options, {OPTIONS[letter].lower()} explains it best; "
        f"the others do not fit the history.</think><answer>{letter}</answer>"
    )


def test_collapse_is_judged_from_twelve_answers():
    """Twelve answered questions, all "D" against golds spread over the letters: collapsed; eleven: too few to say."""
    golds = list("ABCDABCDABCD")
    twelve = flag_predictions(_eval_rows(["<think>Anemia</think><answer>D</answer>"] * 12, golds))
    assert twelve[0]["flag"] == "collapsed"
    assert twelve[0]["reason"].startswith("answers D to 12 of 12 answered questions")
    eleven = flag_predictions(_eval_rows(["<think>Anemia</think><answer>D</answer>"] * 11 + ["<think>"], golds))
    assert "collapsed" not in [f["flag"] for f in eleven]


def test_an_honest_varied_policy_is_not_flagged():
    rows = _eval_rows([_honest(i, g) for i, g in enumerate(GOLDS)])
    assert flag_predictions(rows, OPTIONS) == []
    assert flag_predictions(rows, {r["id"]: OPTIONS for r in rows}) == []  # options per question


def test_a_base_that_never_closes_the_format_is_flagged():
    flags = flag_predictions(_eval_rows(["<think>The patient is a 45-year-old man with"] * 150))
    assert [f["flag"] for f in flags] == ["format_failure"] and "0 of 150" in flags[0]["reason"]


# --- a synthetic 32-step training log --------------------------------------------------------------------------

STAGE_STARTS = {"format_failure": 1, "verbose_formatting": 7, "concise": 15, "hacking": 21, "collapsed": 27}
VERBOSE = " ".join(["The presentation suggests a deficiency, so weigh each option against the findings."] * 6)


def _completion(step: int, gold: str) -> str:
    other = "ABCD"[(step + 1) % 4]
    if step < 7:  # format failure: the think block never closes
        return "<think>" + " ".join(["The patient presents with fatigue and pallor"] * 10)
    if step < 15:  # verbose formatting: long reasoning, varied answers
        return f"<think>{VERBOSE} Hence {OPTIONS[gold]}.</think><answer>{gold}</answer>"
    if step < 21:  # concise: a short phrase of reasoning
        return f"<think>Findings fit {OPTIONS[gold].lower()} best.</think><answer>{gold}</answer>"
    if step < 27:  # hacking: one letter in think, another in the answer, varied across questions
        return f"<think> {other}</think><answer>{'ABCD'[step % 4]}</answer>"
    return "<think>D</think><answer>D</answer>"  # collapsed


def _write_log(tmp_path, with_step: bool):
    out = tmp_path / "train" / "random"
    out.mkdir(parents=True)
    with open(out / "completions.jsonl", "w") as f:
        for step in range(1, 33):
            gold = "BCDA"[step % 4]
            for _ in range(2):  # two rollouts of one question per generation step, as train.CompletionSampler logs
                row = {"call": step, "id": f"q{step % 8}", "gold": gold, "completion": _completion(step, gold)}
                if with_step:
                    row |= {"step": step, "options": OPTIONS}
                f.write(json.dumps(row) + "\n")
    with open(out / "metrics.jsonl", "w") as f:
        for step in range(1, 33):
            f.write(json.dumps({"step": step, "reward": step / 32, "entropy": 2.0 - step / 20, "loss": 0.1}) + "\n")
        f.write(json.dumps({"step": 32, "train_runtime": 100.0, "train_loss": 0.1}) + "\n")
    return out


@pytest.mark.parametrize("with_step", [False, True], ids=["old-log", "new-log"])
def test_stages_of_a_synthetic_run_are_found_at_their_steps(tmp_path, with_step):
    result = analyze_training(_write_log(tmp_path, with_step))
    stages = result["stages"]
    assert stages["starts"] == STAGE_STARTS
    assert [s["stage"] for s in stages["segments"]] == list(STAGE_STARTS)
    assert stages["segments"][-1]["end"] == 32
    steps = result["steps"]
    assert len(steps) == 32 and steps[0]["entropy"] == pytest.approx(1.95) and "loss" not in steps[0]
    assert steps[-1]["top_letter"] == "D" and steps[-1]["top_share"] == 1.0
    for sample in result["samples"]:  # verbatim, bounded, from inside the stage
        assert 1 <= len(sample["completions"]) <= 3
        for c in sample["completions"]:
            assert sample["start"] <= c["step"] <= sample["end"] and len(c["text"]) <= 650
    assert result["samples"][-1]["completions"][0]["text"] == "<think>D</think><answer>D</answer>"
    assert analyze_training(_write_log(tmp_path / "again", with_step))["samples"] == result["samples"]


def test_one_odd_step_does_not_open_a_stage(tmp_path):
    rows = read_completions(_write_log(tmp_path, True) / "completions.jsonl")
    rows = [r if r["step"] != 10 else {**r, "completion": "<think>D</think><answer>D</answer>"} for r in rows]
    assert find_stages(step_table(rows))["starts"] == STAGE_STARTS


def test_plot_writes_png_and_svg(tmp_path):
    result = analyze_training(_write_log(tmp_path, True))
    paths = plot_dynamics(result["stages"], tmp_path / "charts" / "dynamics-random", title="random")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    assert plot_dynamics(result["steps"], tmp_path / "from-table")[0].exists()


def test_an_answer_named_by_its_option_text_is_well_formed_as_the_evaluator_read_it():
    """The evaluator reads answers with the question's own options ("<answer> Clot solubility.</answer>" is B);
    letters alone cannot: the row's ``answer`` and ``well_formed`` decide, so such a policy is no format failure."""
    from medrlvr.report.dynamics import flag_predictions

    text = "<think> the clot dissolves in urea</think><answer> Clot solubility.</answer>"
    rows = [{"id": f"q{i}", "gold": "ABCD"[i % 4], "response": text, "answer": "ABCD"[(i // 2) % 4],
             "well_formed": True} for i in range(40)]  # fmt: skip
    assert [f["flag"] for f in flag_predictions(rows)] == []
    bare = [{k: v for k, v in r.items() if k not in ("answer", "well_formed")} for r in rows]
    assert "format_failure" in [f["flag"] for f in flag_predictions(bare)]  # letters alone read nothing there


def test_a_ppo_run_has_the_same_stages_and_its_critic_in_the_table_and_chart(tmp_path):
    """The dynamics of a PPO run are read as a GRPO run's (the same completion log), plus the critic's per-step
    metrics (medrlvr.train.ppo writes them to metrics.jsonl), which the chart draws in a panel of their own."""
    out = _write_log(tmp_path, True)
    with open(out / "metrics.jsonl", "w") as f:
        for step in range(1, 33):
            f.write(json.dumps({"step": step, "reward": step / 32, "entropy": 2.0 - step / 20,
                                "ppo/value_loss": 1.0 / step, "ppo/explained_variance": step / 40,
                                "ppo/value_mean": step / 64, "ppo/return_mean": step / 32}) + "\n")  # fmt: skip
    result = analyze_training(out)
    assert result["stages"]["starts"] == STAGE_STARTS
    assert result["steps"][3]["ppo/value_loss"] == pytest.approx(0.25)
    assert result["steps"][-1]["ppo/explained_variance"] == pytest.approx(0.8)
    png, svg = plot_dynamics(result["stages"], tmp_path / "dynamics_ppo-seed0", title="ppo")
    assert png.name == "dynamics_ppo-seed0.png" and "explained variance" in svg.read_text()
