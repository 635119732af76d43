"""A study with the selection rules that read several filters or a pilot run: the stages in order (pilot training ->
its selections -> training), cached as any stage; and the bad settings that stop a recipe before anything runs."""

import json

import pytest

from medrlvr.cli import main
from medrlvr.study.runner import RecipeError, load_recipe, plan, run_study

RECIPE = """
name: tiny-selection
data: {{pool: demo:train, pool_limit: 8}}
filter:
  - {{name: self, model: "{model}", max_new_tokens: 4, strict: false, k: 2, temperature: 1.0, chunk_size: 8}}
  - {{name: other, model: "{model}", max_new_tokens: 4, strict: false, chunk_size: 8}}
select:
  pool: {{strategy: random, n: 8, allow_short: true}}
  variance: {{strategy: variance, filter: self, n: 2, allow_short: true}}
  failed: {{strategy: fail_then_diverse, filter: [self, other], n: 2, allow_short: true}}
  limr: {{strategy: limr, pilot: pilot, n: 2}}
train:
  model: "{model}"
  batch_size: 2
  num_generations: 2
  gradient_accumulation_steps: 1
  max_steps: 1
  max_completion_length: 4
  learning_rate: 0.01
  save_steps: 100
  lora_r: 4
  lora_alpha: 8
  rewards: {{accuracy: 1.0, format: 1.0}}
  policies:
    pilot: {{selection: pool, max_steps: 8}}
    limr: {{selection: limr}}
    failed: {{selection: failed}}
eval:
  benchmarks: [demo]
  limit: 4
"""


@pytest.fixture
def recipe(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    path = tmp_path / "tiny-selection.yaml"
    path.write_text(RECIPE.format(model=tiny_checkpoint))
    return path


def test_a_pilot_trains_before_the_selections_that_read_it(recipe, tmp_path):
    lines = plan(load_recipe(recipe))
    trains = [line.split(":")[0] for line in lines if line.startswith("train ")]
    assert trains[0] == "train pilot" and "reading the run of pilot pilot" in next(
        x for x in lines if x.startswith("select limr")
    )
    run_dir = run_study(recipe, run_dir=str(tmp_path / "run"), progress=False, log=lambda line: None)
    stages = [f"{s['stage']} {s['name']}" for s in json.loads((run_dir / "manifest.json").read_text())["stages"]]
    assert stages.index("train pilot") < stages.index("select limr") < stages.index("train limr")
    assert stages.index("select failed") < stages.index("train pilot")  # what needs no pilot does not wait for it
    log = [json.loads(x) for x in (run_dir / "train" / "pilot" / "question_rewards.jsonl").read_text().splitlines()]
    visits = {}
    for row in log:
        visits[row["id"]] = visits.get(row["id"], 0) + 1
    assert len(visits) == 8 and set(visits.values()) == {2}  # 8 steps x 2 questions: two visits of each
    limr = json.loads((run_dir / "select" / "limr" / "stats.json").read_text())
    assert limr["selected"] == 2 and set(limr["ids"]) <= set(visits) and "pilot_accuracy_histogram" in limr
    failed = json.loads((run_dir / "select" / "failed" / "stats.json").read_text())
    assert set(failed["pass_rate_histogram"]) == {"self", "other"}
    assert all(set(h) <= {"0.00"} for h in failed["pass_rate_histogram"].values())  # failed by both
    run_study(recipe, run_dir=str(run_dir), progress=False, log=lambda line: None)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {s["status"] for s in manifest["stages"]} == {"cached"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("select.limr.pilot=nobody", r"select.limr: pilot 'nobody' is not a policy of this recipe"),
        ("select.variance.filter=other", r"select.variance: strategy variance needs k >= 2 .* filter other has k=1"),
        ("filter.0.k=1", r"select.variance: strategy variance needs k >= 2 samples .* filter self has k=1"),
        ("select.limr.n=9", r"select.limr: asks for 9 questions and the pool holds at most 8"),
        ("select.limr.strategy=filter_agreement", r"select.limr: strategy filter_agreement needs 'filter'"),
        ("select.failed.strategy=filter_agreement", None),  # two filters: fine
        ("select.variance.pilot=pilot", r"select.variance: strategy variance reads no pilot run"),
        (
            "train.policies.pilot.selection=limr",
            r"select.limr: pilot pilot trains on select.limr, which needs a pilot",
        ),
        ("select.pool.strategy=learnability", r"select.pool: strategy learnability needs 'filter'"),
    ],
)
def test_bad_selection_settings_are_one_line_before_anything_runs(recipe, override, message, capsys):
    if message is None:
        load_recipe(recipe, [override])
        return
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe, [override])
    assert main(["run", str(recipe), override, "--plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiny-selection.yaml" in err and "Traceback" not in err


def test_more_questions_than_the_decontaminated_pool_holds_stops_before_any_stage(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["run", str(recipe), "data.pool_limit=null", "select.limr.n=41", "--run-dir", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "select.limr: asks for 41 questions and the pool holds 40" in err
    assert len(err.splitlines()) == 1 and not (run / "filter").exists()


def test_the_cpu_selection_sweep_plans_every_strategy_at_one_size(monkeypatch, fixture_data):
    from pathlib import Path

    from medrlvr.select import STRATEGIES

    monkeypatch.setenv("MEDRLVR_DATA_DIR", str(fixture_data))
    path = Path(__file__).resolve().parents[1] / "recipes" / "sweep-selection-cpu.yaml"
    assert "medrlvr run recipes/sweep-selection-cpu.yaml" in path.read_text()
    recipe = load_recipe(path)
    strategies = {s.config.strategy for s in recipe.selections}
    assert strategies == set(STRATEGIES) - {"ratio", "band"}
    assert {s.size for s in recipe.selections if s.name != "pilot-pool"} == {16}
    assert recipe.arms["control"]["control"] == "random_reward" and len(recipe.arms["limr"]["policies"]) == 2
    assert recipe.data.pool.startswith("medmcqa:")
    assert any(line.startswith("train pilot") for line in plan(recipe)[:20])
