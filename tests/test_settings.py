"""Every stage setting is reachable from the command line and from a recipe, and every out-of-range value is one
line naming the setting, before anything loads (issues 18 and 21)."""

import argparse
from dataclasses import fields

import pytest

from medrlvr.cli import build_parser, main
from medrlvr.errors import RecipeError
from medrlvr.evaluate import EvalConfig
from medrlvr.filter import FilterConfig
from medrlvr.select import SelectConfig
from medrlvr.study.recipe import load_recipe
from medrlvr.train import TrainConfig

# command, config, recipe section, fields the study sets itself (not recipe keys)
STAGES = [
    ("filter", FilterConfig, "filter.0", ()),
    ("select", SelectConfig, "select.random", ("decontaminate",)),
    ("eval", EvalConfig, "eval", ("model",)),
    ("train", TrainConfig, "train", ("train_file", "output_dir")),
]
RECIPE = """
name: tiny
data: {pool: demo:train, pool_limit: 12}
filter:
  - {name: tiny, model: m}
select:
  random: {strategy: random, n: 4, allow_short: true}  # the defaults (n: 500) ask for more than pool_limit
train: {model: m}
eval: {benchmarks: [demo]}
"""


def _subparser(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE)
    return path


def _out_of_range(f):
    meta = f.metadata
    if meta.get("ge") is not None:
        return meta["ge"] - 1
    if meta.get("gt") is not None:
        return meta["gt"] - (1 if isinstance(f.default, int) else 0.5)
    if meta.get("le") is not None:
        return meta["le"] + 1
    if meta.get("lt") is not None:
        return meta["lt"] + 1
    return None


@pytest.mark.parametrize("command, cls, section, study_sets", STAGES)
def test_every_setting_is_reachable_from_the_cli_and_a_recipe(command, cls, section, study_sets, recipe):
    dests = {a.dest for a in _subparser(command)._actions if a.option_strings}
    for f in fields(cls):
        assert f.name in dests, f"medrlvr {command} has no flag for {cls.__name__}.{f.name}"
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        if f.name in study_sets:
            continue
        default = f.default if f.default is not f.default_factory else None
        value = f.default_factory() if callable(f.default_factory) else default
        if value is None or value == "":
            continue
        value = (
            "random" if f.name == "strategy" else value
        )  # ratio needs a filter's labels  # leaving the default is all a recipe can say here; the key itself is checked below
        load_recipe(
            recipe,
            [
                f"{section}.{f.name}={value!r}"
                if isinstance(value, str)
                else f"{section}.{f.name}={str(value).lower() if isinstance(value, bool) else value}"
            ],
        )


@pytest.mark.parametrize("command, cls, section, study_sets", STAGES)
def test_out_of_range_settings_are_one_line_naming_the_key(command, cls, section, study_sets, recipe, capsys):
    required = {"filter": ["--model", "m"], "eval": ["--model", "m"], "select": [], "train": []}[command]
    checked = 0
    for f in fields(cls):
        bad = _out_of_range(f)
        if bad is None:
            continue
        checked += 1
        with pytest.raises(SystemExit) as info:  # the flag: a usage error before any data or model is read
            main([command, *required, f"--{f.name.replace('_', '-')}", str(bad)])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and len(err.splitlines()) == 1 and f"--{f.name.replace('_', '-')}" in err, err
        with pytest.raises(RecipeError, match=rf"'?{f.name}'? must be"):
            load_recipe(recipe, [f"{section}.{f.name}={bad}"])
        if command == "train":  # key=value over a config: the recipe's override code, the same checks
            assert main(["train", f"{f.name}={bad}"]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f.name in err, err
    assert checked


@pytest.mark.parametrize("override", ["train.max_steps=0", "train.learning_rate=-1", "train.temperature=-1",
                                      "filter.0.temperature=-1"])  # fmt: skip
def test_study_settings_fail_before_anything_runs(recipe, tmp_path, override, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(run_dir), override, "--allow-commands"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override.split("=")[0].split(".")[-1] in err
    assert not run_dir.exists()


def test_overrides_may_follow_options(recipe, tmp_path, capsys):
    """`medrlvr run RECIPE --run-dir X key=value` used to fail with 'unrecognized arguments'."""
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "x"), "select.random.n=3", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "select random: random n=3" in out and str(tmp_path / "x") in out
    with pytest.raises(SystemExit):
        main(["run", str(recipe), "--plan", "--no-such-flag"])


def test_empty_or_zero_selections_are_errors(tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("")
    with pytest.raises(SystemExit):
        main(["select", "--strategy", "random", "--n", "0", "--run-dir", str(tmp_path)])
    assert "--n: must be at least 1" in capsys.readouterr().err
    for command in (["filter", "--model", "m"], ["select", "--strategy", "random", "--n", "1"]):
        assert main([*command, "--pool", str(pool), "--run-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "empty" in err


@pytest.mark.parametrize(
    "row, field",
    [('"split": null', "split"), ('"split": ["test"]', "split"), ('"options": {}', "options"),
     ('"options": {"A": "only"}', "options")],
)  # fmt: skip
def test_malformed_pool_rows_name_the_file_row_and_field(tmp_path, capsys, row, field):
    good = '{"id": "a", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "A", "split": "dev"}'
    bad = (
        good.replace('"split": "dev"', row) if "split" in row else good.replace('"options": {"A": "x", "B": "y"}', row)
    )
    pool = tmp_path / "pool.jsonl"
    pool.write_text(good + "\n" + bad.replace('"id": "a"', '"id": "b"') + "\n")
    assert main(["select", "--strategy", "random", "--n", "1", "--pool", str(pool), "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pool.jsonl: line 2" in err and f"'{field}'" in err, err


def test_a_bug_is_not_dressed_as_a_user_error(monkeypatch, capsys):
    import medrlvr.cli as cli

    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "_report", broken)
    assert main(["report", "--run-dir", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "bug in medrlvr" in err


def test_a_missing_optional_dependency_is_one_line_with_the_pip_command(tmp_path):
    from medrlvr.errors import UserError, require
    from medrlvr.modeling import load_for_training

    with pytest.raises(
        UserError, match=r"^thing needs no_such_module_medrlvr, which is not installed: pip install 'x'$"
    ):
        require("no_such_module_medrlvr", "thing", "x")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:  # as on this project's CPU machines
        with pytest.raises(UserError, match="pip install 'bitsandbytes'") as error:
            load_for_training(
                str(tmp_path), on_gpu=False, bf16=False, frozen=True, qlora=True, trust_remote_code=False
            )
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("key, setting", [
    ("learning_rate", "learning_rate"), ("num_generations", "num_generations"),
    ("per_device_train_batch_size", "batch_size"), ("vllm_importance_sampling_mode", "rollout_importance_sampling"),
])  # fmt: skip
def test_a_setting_repeated_in_extra_is_an_error_naming_both(key, setting):
    from medrlvr.errors import UserError
    from medrlvr.train import TrainConfig

    with pytest.raises(UserError, match=rf"^extra\.{key} is the train setting {setting}: set that instead$"):
        TrainConfig(extra={key: 1})
    assert TrainConfig(extra={"warmup_ratio": 0.1}).extra == {"warmup_ratio": 0.1}  # TRL's own settings pass


def test_every_trl_argument_medrlvr_sets_is_a_named_setting_or_pinned():
    """The re-declared TRL fields map one to one: each GRPOConfig argument medrlvr passes comes from a train setting
    of the same name or one listed in EXTRA_WITH_NAMES, or is a value medrlvr pins (listed here, with why)."""
    from dataclasses import fields

    from medrlvr.train import TrainConfig
    from medrlvr.train.config import EXTRA_WITH_NAMES
    from medrlvr.train.grpo import grpo_settings
    from medrlvr.train.trainer import common_args

    config = TrainConfig()
    passed = {**common_args(config, on_gpu=False, use_bf16=False), **grpo_settings(config, [1.0], "medrlvr")}
    names = {f.name for f in fields(TrainConfig)} | set(EXTRA_WITH_NAMES)
    pinned = {"min_p", "repetition_penalty", "multi_objective_aggregation", "shuffle_dataset",  # paper/TRL 0.15 values
              "use_cpu", "save_only_model", "disable_tqdm", "bf16"}  # machine and bookkeeping  # fmt: skip
    assert set(passed) - names - pinned == set()
