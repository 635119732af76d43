"""The selection rules of the RLVR literature (medrlvr.select's pass-rate, filter and pilot families), each on a table
written so that what it must pick is known by construction."""

import json
from collections import Counter

import pytest

from medrlvr.records import Record
from medrlvr.select import (
    SelectConfig,
    SelectionError,
    select,
    select_filled,
    trajectories,
    with_samples,
    write_selection,
)
from medrlvr.select.passrate import group_variance
from medrlvr.select.pilot import limr_scores, mean_curve


def rec(i, subject="s0"):
    return Record(id=f"q{i:02d}", question=f"Question {i}?", options={"A": "a", "B": "b", "C": "c", "D": "d"},
                  answer="A", subject=subject, source="toy", split="dev")  # fmt: skip


def labels_of(rates, k=4, easy_min=1.0):
    rows = {f"q{i:02d}": {"label": "easy" if p is not None and p >= easy_min else "hard" if p is not None
                          else "too_long", "pass_rate": p} for i, p in enumerate(rates)}  # fmt: skip
    return with_samples(rows, k)


# --- pass rates -------------------------------------------------------------------------------------------------

# 8 never solved, 8 always solved, 4 solved half the time: p(1-p) is zero but for the middle four
MIDDLE = [0.0] * 8 + [1.0] * 8 + [0.5] * 4
POOL20 = [rec(i) for i in range(20)]


@pytest.mark.parametrize("strategy", ["learnability", "variance"])
def test_pass_rate_rules_pick_the_middle(strategy):
    labels = labels_of(MIDDLE)
    for seed in range(5):
        chosen = select(POOL20, labels, SelectConfig(strategy=strategy, n=4, seed=seed))
        assert {r.id for r in chosen} == {"q16", "q17", "q18", "q19"}
    with pytest.raises(SelectionError, match="asked for 5 .* questions, the pool has 4"):
        select(POOL20, labels, SelectConfig(strategy=strategy, n=5))
    assert len(select(POOL20, labels, SelectConfig(strategy=strategy, n=5, allow_short=True))) == 4


def test_fill_short_tops_a_rule_up_at_random_and_says_how_many():
    config = SelectConfig(strategy="learnability", n=6, fill_short=True, seed=3)
    chosen, filled = select_filled(POOL20, labels_of(MIDDLE), config)
    assert len(chosen) == 6 and filled == 2
    assert {r.id for r in chosen[:4]} == {"q16", "q17", "q18", "q19"}  # the rule's own come first
    assert len({r.id for r in chosen}) == 6 and [r.id for r in select(POOL20, labels_of(MIDDLE), config)] == [
        r.id for r in chosen
    ]
    assert (
        select_filled(POOL20, labels_of(MIDDLE), SelectConfig(strategy="learnability", n=3, fill_short=True))[1] == 0
    )
    with pytest.raises(SelectionError, match="asked for 17 further"):
        select(POOL20, labels_of(MIDDLE), SelectConfig(strategy="variance", n=21, fill_short=True))


def test_learnability_samples_in_proportion_to_p_times_one_minus_p():
    # one question at p = 0.5 (weight 0.25) against one at p = 0.125 (weight 0.109): drawn alone, the first wins
    # 0.25 / (0.25 + 0.109) = 69.6% of seeds
    labels = labels_of([0.5, 0.125, 0.0, 1.0], k=8)
    wins = Counter(select([rec(i) for i in range(4)], labels, SelectConfig(strategy="learnability", n=1, seed=s))[0].id
                   for s in range(2000))  # fmt: skip
    assert set(wins) == {"q00", "q01"}
    assert 0.66 < wins["q00"] / 2000 < 0.73


def test_variance_ranks_by_normalised_group_variance_and_threshold():
    # G = 8: k = 4 -> 1, k = 2 or 6 -> 12/16 = 0.75, k = 1 -> 7/16, k = 0 or 8 -> 0
    assert group_variance({"pass_rate": 0.5, "samples": 8}) == 1.0
    assert group_variance({"pass_rate": 0.25, "samples": 8}) == 0.75
    assert group_variance({"pass_rate": 1 / 3, "samples": 3}) == 1.0  # odd G: k = 1 of 3 is the largest variance
    labels = labels_of([0.125, 0.25, 0.5, 0.75, 1.0, 0.0], k=8)
    pool = [rec(i) for i in range(6)]
    assert [r.id for r in select(pool, labels, SelectConfig(strategy="variance", n=1))] == ["q02"]
    top3 = select(pool, labels, SelectConfig(strategy="variance", n=3))
    assert {r.id for r in top3} == {"q01", "q02", "q03"}
    assert {r.id for r in select(pool, labels, SelectConfig(strategy="variance", n=4))} == {"q00", "q01", "q02", "q03"}
    with pytest.raises(SelectionError, match="normalised variance >= 0.8"):
        select(pool, labels, SelectConfig(strategy="variance", n=2, min_variance=0.8))


@pytest.mark.parametrize("strategy", ["learnability", "variance"])
def test_a_variance_rule_refuses_one_sample(strategy):
    with pytest.raises(SelectionError, match="k >= 2"):
        select(POOL20, labels_of(MIDDLE, k=1), SelectConfig(strategy=strategy, n=2))


# --- several filters --------------------------------------------------------------------------------------------

# strong solves q00-q09, weak solves q00-q04; q10-q19 failed by both; subjects: s0 holds 8 of the failed, s1 and
# s2 one each
FILTERS = {
    "weak": labels_of([1.0] * 5 + [0.0] * 15, k=1),
    "strong": labels_of([1.0] * 10 + [0.0] * 10, k=1),
}
POOL_SUBJECTS = [rec(i, subject="s1" if i == 10 else "s2" if i == 11 else "s0") for i in range(20)]


def test_fail_then_diverse_keeps_what_all_fail_and_spreads_over_subjects():
    for seed in range(5):
        chosen = select(POOL_SUBJECTS, FILTERS, SelectConfig(strategy="fail_then_diverse", n=3, seed=seed))
        assert all(int(r.id[1:]) >= 10 for r in chosen)
        assert {r.subject for r in chosen} == {"s0", "s1", "s2"}  # uniform over subjects, not over questions
    with pytest.raises(SelectionError, match="failed by weak and strong"):
        select(POOL_SUBJECTS, FILTERS, SelectConfig(strategy="fail_then_diverse", n=11))


def test_filter_agreement_all_and_weaker_only():
    hard_for_all = select(POOL20, FILTERS, SelectConfig(strategy="filter_agreement", n=10, agreement="all"))
    assert {r.id for r in hard_for_all} == {f"q{i}" for i in range(10, 20)}
    weaker = select(POOL20, FILTERS, SelectConfig(strategy="filter_agreement", n=5, agreement="weaker_only"))
    assert {r.id for r in weaker} == {f"q{i:02d}" for i in range(5, 10)}  # the gap between the two filters
    flipped = {"strong": FILTERS["strong"], "weak": FILTERS["weak"]}  # the order named does not decide which is weaker
    assert select(POOL20, flipped, SelectConfig(strategy="filter_agreement", n=5, agreement="weaker_only")) == weaker
    with pytest.raises(SelectionError, match="two filters or more"):
        select(POOL20, {"weak": FILTERS["weak"]}, SelectConfig(strategy="filter_agreement", n=1))


# --- pilot runs -------------------------------------------------------------------------------------------------


def pilot_log():
    """A pilot of 4 visits whose mean curve is 0.2, 0.4, 0.6, 0.8 by construction: q00 follows it exactly, q01 a
    constant 0.1 off it, q02 flat at 0.5 (ends 0.3 off), q03 the curve reversed (0.8 ... 0.2), q04 balances the
    others so that the mean is the curve. LIMR's ranking: q00 > q01 > q02 > q03."""
    curve = [0.2, 0.4, 0.6, 0.8]
    paths = {
        "q00": curve,
        "q01": [c + 0.1 for c in curve],
        "q02": [0.5] * 4,
        "q03": curve[::-1],
    }
    paths["q04"] = [5 * c - sum(p[k] for p in paths.values()) for k, c in enumerate(curve)]
    rows = []
    for visit in range(4):
        for j, (qid, path) in enumerate(paths.items()):
            rows.append({"step": 1 + visit * 5 + j, "id": qid, "accuracy": path[visit], "reward": 9.0})
    return rows, paths, curve


def test_trajectories_and_limr_ranking_known_by_construction():
    rows, paths, curve = pilot_log()
    rows.append({**rows[0], "accuracy": 0.2})  # a resumed run logs a step again: counted once
    got = trajectories(rows)
    assert got.keys() == paths.keys() and all(got[q] == pytest.approx(p) for q, p in paths.items())
    assert mean_curve(got) == pytest.approx(curve)
    scores = limr_scores(got)
    assert scores["q00"] == pytest.approx(1.0)
    assert scores["q01"] == pytest.approx(1 - 4 * 0.01 / (0.64 + 0.36 + 0.16 + 0.04))
    assert scores["q00"] > scores["q01"] > scores["q02"] > scores["q03"]
    pool = [rec(i) for i in range(5)]
    chosen = select(pool, got, SelectConfig(strategy="limr", n=3))
    assert [r.id for r in chosen] == ["q00", "q01", "q02"]


def test_pilot_variance_ranks_by_variance_over_visits_and_needs_visits():
    paths = {"q00": [0.0, 1.0, 0.0, 1.0], "q01": [0.25, 0.5, 0.25, 0.5], "q02": [0.5] * 4, "q03": [1.0]}
    pool = [rec(i) for i in range(4)]
    assert [r.id for r in select(pool, paths, SelectConfig(strategy="pilot_variance", n=2))] == ["q00", "q01"]
    # q03 was visited once: no trajectory to score
    with pytest.raises(SelectionError, match="asked for 4 pilot-scored .* the pool has 3"):
        select(pool, paths, SelectConfig(strategy="pilot_variance", n=4))
    with pytest.raises(SelectionError, match="pilot run's question log"):
        select(pool, None, SelectConfig(strategy="limr", n=1))


def test_every_strategy_is_pure_and_stats_profile_the_selection(tmp_path):
    rows, paths, _ = pilot_log()
    pool = [rec(i, subject=f"s{i % 2}") for i in range(5)]
    evidence = {"learnability": labels_of([0.25, 0.5, 0.75, 0.5, 0.0]),
                "variance": labels_of([0.25, 0.5, 0.75, 0.5, 0.0]),
                "fail_then_diverse": {"a": labels_of([0.0] * 5), "b": labels_of([0.0, 0.0, 0.0, 1.0, 0.0])},
                "filter_agreement": {"a": labels_of([0.0] * 5), "b": labels_of([0.0, 0.0, 0.0, 1.0, 0.0])},
                "limr": trajectories(rows), "pilot_variance": trajectories(rows)}  # fmt: skip
    for strategy, ev in evidence.items():
        config = SelectConfig(strategy=strategy, n=3, seed=7)
        first = [r.id for r in select(pool, ev, config)]
        assert first == [r.id for r in select(list(reversed(pool)), ev, config)], strategy
        out = write_selection(select(pool, ev, config), ev, [], config, tmp_path / strategy)
        stats = json.loads((out / "stats.json").read_text())
        assert stats["ids"] == sorted(first) and stats["selected"] == 3
        assert sum(stats["by_subject"].values()) == 3 and stats["subjects"] == len(stats["by_subject"])
        if strategy in ("limr", "pilot_variance"):
            assert sum(stats["pilot_accuracy_histogram"].values()) == 3
        else:
            assert all(sum(h.values()) == 3 for h in stats["pass_rate_histogram"].values())
    stats = json.loads((tmp_path / "fail_then_diverse" / "stats.json").read_text())
    assert stats["pass_rate_histogram"] == {"a": {"0.00": 3}, "b": {"0.00": 3}}


def test_the_select_command_reads_several_filters_and_a_pilot(tmp_path, capsys):
    from medrlvr.cli import main

    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in POOL20))
    for name, k, rates in (("a", 4, MIDDLE), ("b", 1, [0.0] * 20)):
        folder = tmp_path / "run" / "filter" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"k": k}))
        (folder / "labels.jsonl").write_text("".join(json.dumps({"id": i, **row}) + "\n"
                                                     for i, row in labels_of(rates).items()))  # fmt: skip
    common = ["--pool", str(pool), "--run-dir", str(tmp_path / "run")]
    assert main(["select", "--strategy", "variance", "--filter-model", "a", "--n", "4", *common]) == 0
    stats = json.loads((tmp_path / "run" / "select" / "variance" / "stats.json").read_text())
    assert stats["ids"] == ["q16", "q17", "q18", "q19"]
    assert main(["select", "--strategy", "variance", "--filter-model", "b", "--n", "1", *common]) == 2
    assert "k >= 2" in capsys.readouterr().err  # filter b sampled once
    assert main(["select", "--strategy", "fail_then_diverse", "--filter-model", "a,b", "--n", "8", *common]) == 0
    stats = json.loads((tmp_path / "run" / "select" / "fail_then_diverse" / "stats.json").read_text())
    assert stats["ids"] == [f"q{i:02d}" for i in range(8)] and set(stats["pass_rate_histogram"]) == {"a", "b"}
    rows, _, _ = pilot_log()
    pilot = tmp_path / "run" / "train" / "pilot"
    pilot.mkdir(parents=True)
    (pilot / "question_rewards.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["select", "--strategy", "limr", "--pilot", str(pilot), "--n", "2", *common]) == 0
    assert json.loads((tmp_path / "run" / "select" / "limr" / "stats.json").read_text())["ids"] == ["q00", "q01"]
