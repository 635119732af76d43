"""Seeds, controls and sweep grids expand into ordinary selections and policies."""

import pytest

from medrlvr.errors import UserError
from medrlvr.study.arms import expand, point_name

BASE = {
    "filter": [{"model": "smollm2-135m-instruct"}],
    "select": {"random": {"strategy": "random", "n": 32},
               "ratio": {"strategy": "ratio", "filter": "smollm2-135m-instruct", "hard": 26, "easy": 6}},
    "train": {"model": "m", "learning_rate": 5e-4},
}  # fmt: skip


def test_without_seeds_or_sweep_one_arm_per_policy():
    raw, arms = expand(BASE)
    assert raw["train"]["policies"] == {"random": {"selection": "random"}, "ratio": {"selection": "ratio"}}
    assert arms["random"]["policies"] == ["random"] and arms["ratio"]["selection"] == "ratio"
    assert raw["select"] == BASE["select"] and "seeds" not in raw["train"]


def test_train_seeds_replicate_every_policy_and_a_policy_may_set_its_own():
    control = {"selection": "random", "control": "random_reward", "seeds": [7]}
    raw = {**BASE, "train": {**BASE["train"], "seeds": [0, 1],
                             "policies": {"random": {"selection": "random"}, "control": control}}}  # fmt: skip
    out, arms = expand(raw)
    policies = out["train"]["policies"]
    assert set(policies) == {"random-seed0", "random-seed1", "control"}
    assert policies["random-seed1"] == {"selection": "random", "seed": 1}
    assert policies["control"]["seed"] == 7 and policies["control"]["control"] == "random_reward"
    assert arms["random"]["policies"] == ["random-seed0", "random-seed1"] and arms["random"]["seeds"] == [0, 1]
    assert arms["control"]["control"] == "random_reward"
    assert "seeds" not in out["train"]
    assert raw["train"]["seeds"] == [0, 1]  # the caller's mapping is not changed


def test_sweep_grid_names_arms_by_values_and_shares_selections():
    raw = {**BASE, "sweep": {"name": "ratio", "selection": "ratio", "seeds": [0, 1], "compare_random": True,
                             "grid": {"select": [{"hard": 16, "easy": 16}, {"hard": 32, "easy": 0}],
                                      "train.learning_rate": [5e-4, 1e-4]}}}  # fmt: skip
    out, arms = expand(raw)
    select = out["select"]
    assert select["ratio-hard16-easy16"] == {**BASE["select"]["ratio"], "hard": 16, "easy": 16}
    assert select["ratio-random-n32"] == {"strategy": "random", "n": 32, "seed": 0}
    policies = out["train"]["policies"]
    name = "ratio-hard16-easy16-learning_rate0.0001"
    assert policies[f"{name}-seed1"] == {"learning_rate": 1e-4, "selection": "ratio-hard16-easy16", "seed": 1}
    # the two learning rates share one selection: one filter run and one selection serve the whole grid
    assert policies["ratio-hard16-easy16-learning_rate0.0005-seed0"]["selection"] == "ratio-hard16-easy16"
    assert arms[name]["values"] == {"select": {"hard": 16, "easy": 16}, "train.learning_rate": 1e-4}
    assert arms[name]["policies"] == [f"{name}-seed0", f"{name}-seed1"] and arms[name]["sweep"] == "ratio"
    assert arms["ratio-random-n32"]["random_of_size"] == 32
    assert len([a for a in arms if a.startswith("ratio-")]) == 5  # 2 x 2 points and one random arm (one size)


def test_filter_gap_grid():
    raw = {**BASE, "filter": [{"model": "a"}, {"model": "b"}],
           "sweep": {"selection": "ratio", "grid": {"filter": ["a", "b"]}}}  # fmt: skip
    out, _ = expand(raw)
    assert out["select"]["sweep-filtera"]["filter"] == "a" and out["select"]["sweep-filterb"]["filter"] == "b"
    assert point_name("x", {"select.n": 64}) == "x-n64"


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"selection": "nope", "grid": {"select.n": [1]}}, "sweep.selection: 'nope' is not in the select section"),
        ({"selection": "ratio", "grid": {"eval.limit": [1]}}, "sweep.grid.eval.limit: a grid key is"),
        ({"selection": "ratio", "grid": {"select.n": 3}}, "sweep.grid.select.n: expected a non-empty list"),
        ({"selection": "ratio", "grid": {"select": [3]}}, "each value is a mapping"),
        ({"selection": "ratio", "grid": {"select.n": [1]}, "seeds": [0, 0]}, "seeds repeat"),
        ({"selection": "ratio", "grid": {"select.n": [1]}, "colour": 1}, "unknown key 'colour'"),
    ],
)
def test_bad_sweeps_are_one_line_errors(sweep, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        expand({**BASE, "sweep": sweep})


def test_a_recipe_extends_another_and_its_seeds_and_controls_become_policies(tmp_path):
    from pathlib import Path

    from medrlvr.study.plan import plan
    from medrlvr.study.recipe import load_recipe

    demo = Path(__file__).parent.parent / "recipes" / "demo-cpu.yaml"
    child = tmp_path / "child.yaml"
    child.write_text(
        f"extends: {demo}\nname: child\nselect:\n  random: {{strategy: random, n: 16}}\n"
        "train:\n  seeds: [0, 1]\n  policies:\n    random: {selection: random}\n"
        "    control: {selection: random, control: random_reward}\n"
    )
    recipe = load_recipe(child, data_dir=str(tmp_path))
    assert [p.name for p in recipe.policies] == ["random-seed0", "random-seed1", "control-seed0", "control-seed1"]
    assert recipe.policies[1].config.seed == 1 and recipe.policies[2].config.control == "random_reward"
    assert recipe.policies[0].config.learning_rate == 1e-3  # the demo's settings, inherited
    assert {s.name for s in recipe.selections} >= {"random", "smollm2-filter"}  # mappings merge
    assert recipe.arms["control"]["policies"] == ["control-seed0", "control-seed1"]
    lines = plan(recipe)
    assert any(line.startswith("arm control: random_reward; seeds [0, 1]") for line in lines)
    assert any("train random-seed1:" in line and "seed 1" in line for line in lines)


def test_a_recipe_that_extends_itself_is_an_error(tmp_path):
    from medrlvr.errors import RecipeError
    from medrlvr.study.recipe import load_recipe

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match="a cycle"):
        load_recipe(a)
