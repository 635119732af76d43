"""The report's selection sections on run files written here: each strategy against random selection of its size
(the numbers follow from the files), each selection's profile (difficulty under the filters, subjects) and the
overlaps between selections."""

import json

from medrlvr.evaluate import summarize
from medrlvr.report import report
from medrlvr.report.selection import jaccard, reference_filter

BENCH = "mmlu:medical@generate"
N = 40


def _eval(run, model, accuracy, well_formed=1.0):
    rows = []
    for i in range(N):
        ok, formed = i < accuracy * N, i < well_formed * N
        rows.append({"id": f"e{i}", "subject": "anatomy", "gold": "ABCD"[i % 4], "answer": "ABCD"[i % 4] if ok else
                     ("A" if "ABCD"[i % 4] != "A" else "B"), "correct": ok, "correct_flexible": ok,
                     "format_ok": formed, "well_formed": formed,
                     "response": "<think> the vessel narrows</think><answer>A</answer>"})  # fmt: skip
    path = run / "eval" / model / BENCH.replace(":", "_")
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"model": model, **summarize(rows, BENCH)}))
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _selection(run, name, strategy, ids, subjects):
    folder = run / "select" / name
    folder.mkdir(parents=True)
    stats = {"config": {"strategy": strategy}, "selected": len(ids), "ids": sorted(ids),
             "by_subject": {s: subjects.count(s) for s in set(subjects)}}  # fmt: skip
    (folder / "stats.json").write_text(json.dumps(stats))


def _filter(run, name, k, rates):
    folder = run / "filter" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"k": k}))
    (folder / "labels.jsonl").write_text("".join(json.dumps({"id": i, "label": "hard", "pass_rate": p}) + "\n"
                                                 for i, p in rates.items()))  # fmt: skip


def _two_seed_arms(run, accuracies):
    """arms.json with one arm per selection named in ``accuracies``, two seeds each scoring the accuracy given."""
    arms = {}
    for arm, acc in accuracies.items():
        members = [f"{arm}-seed{s}" for s in range(2)]
        for member in members:
            _eval(run, member, acc)
        arms[arm] = {"policies": members, "seeds": [0, 1], "values": {}, "selection": arm, "control": None}
    (run / "arms.json").write_text(json.dumps(arms))


def test_strategies_against_random_profiles_and_overlaps(tmp_path):
    run = tmp_path
    # the pool q0-q7; the policy as its own filter (k = 4) and a second filter (k = 1)
    _filter(run, "self", 4, {f"q{i}": [0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0, 1.0][i] for i in range(8)})
    _filter(run, "other", 1, {f"q{i}": 0.0 for i in range(8)})
    _selection(run, "random", "random", ["q0", "q1", "q2", "q3"], ["s0", "s0", "s1", "s1"])
    _selection(run, "learnability", "learnability", ["q1", "q2", "q3", "q5"], ["s0", "s1", "s1", "s2"])
    _selection(run, "limr", "limr", ["q0", "q6", "q4"], ["s0", "s0", "s0"])
    _selection(run, "pilot-pool", "random", [f"q{i}" for i in range(8)], ["s0"] * 8)
    arms = {}
    for arm, accs in {"random": (0.30, 0.35), "learnability": (0.45, 0.70), "limr": (0.30, 0.40)}.items():
        members = [f"{arm}-seed{s}" for s in range(2)]
        for member, acc in zip(members, accs):
            _eval(run, member, acc)
        arms[arm] = {"policies": members, "seeds": [0, 1], "values": {}, "selection": arm, "control": None}
    _eval(run, "control", 0.25)
    arms["control"] = {"policies": ["control"], "seeds": [0], "values": {}, "selection": "random",
                       "control": "random_reward"}  # fmt: skip
    _eval(run, "pilot", 0.2)
    arms["pilot"] = {"policies": ["pilot"], "seeds": [0], "values": {}, "selection": "pilot-pool", "control": None}
    (run / "arms.json").write_text(json.dumps(arms))
    (run / "manifest.json").write_text(json.dumps({"resolved": {"select": {"limr": {"strategy": "limr",
                                                                                      "pilot": "pilot"}}}}))  # fmt: skip
    out = report(run)

    lines = (out / "strategies.md").read_text().splitlines()
    learn = next(x for x in lines if x.startswith("| learnability |") and "| accuracy |" in x)
    cells = [c.strip() for c in learn.split("|")[1:-1]]
    assert cells[:9] == ["learnability", "learnability", "4", BENCH, "accuracy", "2", "0.575 ± 0.177",
                         "0.450-0.700", "random"]  # fmt: skip
    assert cells[11] == "0.333" and float(cells[12]) < 0.05  # 2 seeds: permutation p >= 1/3; McNemar sees it
    assert cells[9] == "+0.250" and cells[13].startswith("differs on the questions (McNemar), not shown over seeds")
    limr = next(x for x in lines if x.startswith("| limr |") and "| accuracy |" in x)
    assert "| random (size 4) |" in limr and "| +0.025 |" in limr  # sizes differ: said
    assert any(x.startswith("| random | random | 4 |") and x.endswith("| reference |") for x in lines)
    pilot = [x for x in lines if x.startswith("| pilot (pilot) |")]  # the pilot is listed, compared with nothing
    assert pilot and all(x.endswith("| - | - | - | - | - | - |") for x in pilot)
    control = next(x for x in lines if x.startswith("| control (control: random_reward) | random |"))
    assert "| random | -0.075 | - | - |" in control and control.endswith("(1 seed: no test over seeds)) |")
    assert "| no gain in either arm: control: accuracy 0.250" in control  # at chance, as the random arm is

    text = (out / "selections.md").read_text()
    # learnability's questions under the self filter: 0.25, 0.5, 0.75, 0.5 -> mean 0.50; no 0 and no 1
    assert "| learnability | learnability | 4 | 0 | 3 | s1 2, " in text
    row = next(x for x in text.splitlines() if x.startswith("| learnability |"))
    assert "self 0.50" in row and "other 0.00" in row and row.endswith("| 0.00 / 0.00 (self) |")
    limr_row = next(x for x in text.splitlines() if x.startswith("| limr |"))
    assert limr_row.endswith("| 0.67 / 0.33 (self) |")  # q0, q6 never solved, q4 always
    overlap = next(x for x in text.splitlines() if x.startswith("| random | ") and "1.00" in x)
    assert [c.strip() for c in overlap.split("|")[1:-1]] == [
        "random",
        "0.60",
        "0.17",
        "0.50",
        "1.00",
    ]  # learnability, limr, pilot-pool, random
    assert jaccard({"a", "b"}, {"b", "c"}) == 1 / 3 and reference_filter(run, {"other": {}, "self": {}}) == "self"
    assert (out / "strategies.png").stat().st_size > 1000 and (out / "selections.png").stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "Selection strategies against random selection" in page and "overlap (Jaccard" in page


def test_a_strategy_below_chance_is_no_gain_whatever_random_scored(tmp_path):
    """The demo's case: a strategy's policies at 0.20, below chance, against random-selection policies that never
    answered right. McNemar finds the difference; the verdict must say first that neither arm learned anything."""
    run = tmp_path
    _selection(run, "random", "random", ["q0", "q1"], ["s0", "s0"])
    _selection(run, "hard", "hard", ["q2", "q3"], ["s0", "s0"])
    _two_seed_arms(run, {"random": 0.0, "hard": 0.20})
    lines = (report(run) / "strategies.md").read_text().splitlines()
    hard = next(x for x in lines if x.startswith("| hard |") and "| accuracy |" in x)
    cells = [c.strip() for c in hard.split("|")[1:-1]]
    assert cells[9] == "+0.200" and float(cells[12]) < 0.05  # McNemar sees a difference between the arms...
    assert cells[13].startswith("no gain in either arm: hard-seed0: accuracy 0.200")  # ...which is no gain
    assert "is not above chance 0.250" in cells[13] and "(against random: differs" in cells[13]
    formed = next(x for x in lines if x.startswith("| hard |") and "| well-formed |" in x)
    assert "no gain" not in formed  # the letter floor is a rule for accuracies only


def test_a_rule_that_chose_random_s_questions_says_so(tmp_path):
    """The CPU sweep's case: every filter failed every pool question, so filter_agreement kept the whole pool and
    sampled it with random's seed: the same questions, the same training, the same scores. The verdict says that
    before anything else; a rule with other questions does not get it."""
    run = tmp_path
    _selection(run, "random", "random", ["q0", "q1", "q2"], ["s0"] * 3)
    _selection(run, "agreement", "filter_agreement", ["q2", "q1", "q0"], ["s0"] * 3)
    _selection(run, "limr", "limr", ["q0", "q1", "q3"], ["s0"] * 3)
    _two_seed_arms(run, {"random": 0.5, "agreement": 0.5, "limr": 0.6})
    lines = (report(run) / "strategies.md").read_text().splitlines()
    for arm, same in (("agreement", True), ("limr", False)):
        rows = [x for x in lines if x.startswith(f"| {arm} |")]
        assert len(rows) == 2  # accuracy and well-formed
        verdicts = [x.split("|")[-2].strip() for x in rows]
        assert all(v.startswith("same 3 questions as random's selection") == same for v in verdicts), verdicts


def test_a_study_with_one_selection_has_no_strategy_sections(tmp_path):
    run = tmp_path
    _selection(run, "train", "random", ["q0", "q1"], ["s0", "s0"])
    members = ["ppo-seed0", "ppo-seed1"]
    for member in members:
        _eval(run, member, 0.3)
    arms = {"ppo": {"policies": members, "seeds": [0, 1], "values": {}, "selection": "train", "control": None}}
    (run / "arms.json").write_text(json.dumps(arms))
    out = report(run)
    assert (out / "arms.md").is_file()  # the seeds are reported...
    assert not (out / "strategies.md").exists() and not (out / "selections.md").exists()  # ...no comparison of one
