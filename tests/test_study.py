"""`medrlvr run`: a whole study on a tiny random model and the bundled demo questions; stage caching, resumption
after an interruption, the manifest, recipe errors, and the recipes shipped in recipes/."""

import json
import sys
from pathlib import Path

import pytest

from medrlvr.cli import main
from medrlvr.study.runner import (
    CommandsNotAllowed,
    RecipeError,
    commands_trusted,
    load_recipe,
    plan,
    recipe_commands,
    run_study,
)

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """
name: tiny
data: {{pool: demo:train, pool_limit: 12}}
filter:
  - {{name: tiny, model: "{model}", max_new_tokens: 6, strict: false, chunk_size: 4}}
select:
  random: {{strategy: random, n: 4}}
  hard: {{strategy: ratio, filter: tiny, hard: 3, easy: 1, allow_short: true}}
train:
  model: "{model}"
  batch_size: 2
  num_generations: 2
  gradient_accumulation_steps: 1
  max_steps: 1
  max_completion_length: 6
  learning_rate: 0.01
  save_steps: 1
  lora_r: 4
  lora_alpha: 8
  policies:
    grpo: {{selection: hard}}
    sft: {{selection: random, method: sft}}
eval:
  benchmarks: [demo]
  limit: 8
"""


@pytest.fixture
def recipe(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.format(model=tiny_checkpoint))
    return path


def _statuses(run_dir: Path) -> dict[str, str]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {f"{s['stage']} {s['name']}".strip(): s["status"] for s in manifest["stages"]}


def _run(recipe, run_dir, *overrides, **kwargs):
    return run_study(recipe, overrides, run_dir=str(run_dir), progress=False, log=lambda line: None, **kwargs)


def test_study_runs_end_to_end_then_skips_what_is_done(recipe, tmp_path):
    run_dir = _run(recipe, tmp_path / "run")
    statuses = _statuses(run_dir)
    assert statuses == {
        "filter tiny": "ran",
        "select random": "ran",
        "select hard": "ran",
        "train grpo": "ran",
        "train sft": "ran",
        "eval base demo": "ran",
        "eval grpo demo": "ran",
        "eval sft demo": "ran",
        "report": "ran",
    }
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["data"]["source"] == "medrlvr's bundled demo sample"
    assert manifest["data"]["pool"]["questions"] == 12 and len(manifest["data"]["pool"]["sha256"]) == 64
    assert manifest["data"]["eval"]["demo"]["questions"] == 40
    assert {"python", "torch", "transformers", "trl", "peft"} <= set(manifest["versions"])
    assert "commit" in manifest and manifest["resolved"]["train"]["max_steps"] == 1
    assert manifest["data"]["identical_selections"] == []  # random and hard pick different questions
    assert manifest["peak_rss_mb"] > 0
    table = (run_dir / "report" / "table1.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["base", "grpo", "sft"]
    assert (run_dir / "report" / "paired.md").exists() and (run_dir / "report" / "index.html").exists()
    results = json.loads((run_dir / "eval" / "grpo" / "demo" / "results.json").read_text())
    assert results["n"] == 8 and results["model"] == str(run_dir / "train" / "grpo" / "adapter")
    chosen = [json.loads(line) for line in (run_dir / "select" / "hard" / "train.jsonl").read_text().splitlines()]
    labels = [r["label"] for r in chosen]
    assert labels.count("hard") == 3 and labels.count("easy") <= 1 and {r["split"] for r in chosen} == {"train"}

    adapter = run_dir / "train" / "grpo" / "adapter" / "adapter_model.safetensors"
    mtime = adapter.stat().st_mtime_ns
    _run(recipe, run_dir)
    assert set(_statuses(run_dir).values()) == {"cached"}
    assert adapter.stat().st_mtime_ns == mtime

    # Changing only the evaluation reruns only eval and report; predictions already made are kept and reused.
    _run(recipe, run_dir, "eval.limit=12")
    statuses = _statuses(run_dir)
    assert {k: v for k, v in statuses.items() if v != "cached"} == {
        "eval base demo": "updated", "eval grpo demo": "updated", "eval sft demo": "updated", "report": "ran"
    }  # fmt: skip
    assert json.loads((run_dir / "eval" / "sft" / "demo" / "results.json").read_text())["n"] == 12
    predictions = (run_dir / "eval" / "sft" / "demo" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == len({json.loads(p)["id"] for p in predictions}) <= 8 + 12  # none answered twice
    # another mode is another result (demo@generate), next to the loglik one, never mixed with it
    _run(recipe, run_dir, "eval.limit=12", "eval.mode=generate", "eval.max_new_tokens=4")
    assert len((run_dir / "eval" / "sft" / "demo@generate" / "predictions.jsonl").read_text().splitlines()) == 12
    assert json.loads((run_dir / "eval" / "sft" / "demo" / "results.json").read_text())["n"] == 12
    generated = json.loads((run_dir / "eval" / "sft" / "demo@generate" / "results.json").read_text())
    assert {"format_rate", "well_formed_rate", "formatted_without_option"} <= set(generated)

    # Another training set for one policy retrains that policy only.
    _run(recipe, run_dir, "eval.limit=12", "eval.mode=generate", "eval.max_new_tokens=4", "select.random.n=5")
    statuses = _statuses(run_dir)
    assert {k for k, v in statuses.items() if v == "ran"} == {
        "select random", "train sft", "eval sft demo@generate", "report"
    }  # fmt: skip

    # Switching a probe on reruns the evaluations over their old outputs: the answers stay, only the probe is asked;
    # the estimate before the stages counts that work (the stage folders are finished, their settings are not).
    answers = (run_dir / "eval" / "grpo" / "demo@generate" / "predictions.jsonl").read_text()
    lines: list[str] = []
    run_study(recipe, ["eval.limit=12", "eval.mode=generate", "eval.max_new_tokens=4", "select.random.n=5",
                       "eval.open_form=true"], run_dir=str(run_dir), progress=False, log=lines.append)  # fmt: skip
    statuses = _statuses(run_dir)
    assert {k: v for k, v in statuses.items() if v != "cached"} == {
        "eval base demo@generate": "updated", "eval grpo demo@generate": "updated",
        "eval sft demo@generate": "updated", "report": "ran"
    }  # fmt: skip
    assert (run_dir / "eval" / "grpo" / "demo@generate" / "predictions.jsonl").read_text() == answers
    probe = json.loads((run_dir / "eval" / "grpo" / "demo@generate" / "results.json").read_text())["open_form"]
    assert probe["n"] + sum(probe["skipped"].values()) == 12
    estimate = next(line for line in lines if line.startswith("estimate:"))
    assert "not estimated (model size unknown): eval" in estimate and "nothing left" not in estimate, estimate


def test_an_interrupted_study_resumes_to_the_same_result(recipe, tmp_path, monkeypatch):
    whole = _run(recipe, tmp_path / "whole")

    import importlib

    evaluate_module = importlib.import_module("medrlvr.evaluate")  # the module (the package exports the function)

    real, calls = evaluate_module.evaluate, []

    def crash_on_second_model(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second model is being evaluated
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", crash_on_second_model)
    with pytest.raises(KeyboardInterrupt):
        _run(recipe, tmp_path / "broken")
    monkeypatch.setattr(evaluate_module, "evaluate", real)
    broken = tmp_path / "broken"
    assert json.loads((broken / "manifest.json").read_text())["status"] == "running"
    _run(recipe, broken)
    statuses = _statuses(broken)
    assert statuses["filter tiny"] == statuses["train grpo"] == statuses["eval base demo"] == "cached"
    assert statuses["eval grpo demo"] == "resumed" and statuses["eval sft demo"] == "ran"
    for name in ("base", "grpo", "sft"):
        a = json.loads((whole / "eval" / name / "demo" / "results.json").read_text())
        b = json.loads((broken / "eval" / name / "demo" / "results.json").read_text())
        for r in (a, b):
            r.pop("model"), r["config"].pop("model")
        assert a == b, name
        rows = [sorted((json.loads(x)["id"], json.loads(x)["loglik"]) for x in open(d / "eval" / name / "demo" /
                "predictions.jsonl")) for d in (whole, broken)]  # fmt: skip
        assert rows[0] == rows[1], name
    for path in (
        "filter/tiny/labels.jsonl",
        "select/hard/train.jsonl",
        "select/random/train.jsonl",
        "train/grpo/adapter/adapter_model.safetensors",
        "train/sft/adapter/adapter_model.safetensors",
    ):
        assert (whole / path).read_bytes() == (broken / path).read_bytes(), path


def test_recipe_errors_name_the_file_and_the_key(recipe, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("hard: 3,", "hardd: 3,"))
    with pytest.raises(RecipeError, match=r"bad.yaml: select.hard: unknown setting 'hardd'"):
        load_recipe(bad)
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "hardd" in err
    with pytest.raises(RecipeError, match="selection 'nope' is not in the select section"):
        load_recipe(recipe, ["train.policies.grpo.selection=nope"])
    with pytest.raises(RecipeError, match="no such place"):
        load_recipe(recipe, ["filter.7.model=x"])
    with pytest.raises(RecipeError, match="train.output_dir is set by the study"):
        load_recipe(recipe, ["train.output_dir=elsewhere"])
    with pytest.raises(RecipeError, match="needs 'filter'"):
        load_recipe(recipe, ["select.random.strategy=ratio"])


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(ROOT)
        for p in [
            *(ROOT / "recipes" / f"{name}-cpu.yaml" for name in ("demo", "probes")),
            *ROOT.glob("recipes/*/*.yaml"),
        ]
        if "accelerate" not in p.parts
    ),  # fmt: skip
    ids=str,
)
def test_shipped_recipes_are_valid_and_say_how_to_run_them(path, monkeypatch, fixture_data):
    monkeypatch.setenv("MEDRLVR_DATA_DIR", str(fixture_data))
    text = (ROOT / path).read_text()
    assert text.startswith("#") and f"medrlvr run {path}" in text  # opens with what it does and the command
    recipe = load_recipe(ROOT / path)
    lines = plan(recipe)
    assert recipe.policies and recipe.evals and any(line.startswith("report") for line in lines)


def test_demo_recipe_falls_back_to_the_bundled_sample_without_data(monkeypatch, fixture_data):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    recipe = load_recipe(ROOT / "recipes" / "demo-cpu.yaml")
    assert recipe.without_data_dir_applied and recipe.data.pool == "demo:train"
    assert [e.name for e in recipe.evals] == ["demo@generate", "demo"] and recipe.data.decontaminate == ["demo"]
    recipe = load_recipe(ROOT / "recipes" / "demo-cpu.yaml", data_dir=str(fixture_data))
    assert not recipe.without_data_dir_applied and recipe.data.pool == "medmcqa:dev"


def test_a_served_engine_is_started_and_stopped(tmp_path):
    from medrlvr.engines.server import ServerStartError, served

    script = tmp_path / "server.py"
    script.write_text(
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.path == '/v1/models' else 404); self.end_headers()\n"
        "        self.wfile.write(b'{\"data\": []}')\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with served(f"{sys.executable} {script} {port}", url, tmp_path / "server.log", timeout=30, poll=0.1) as process:
        assert process.poll() is None
    assert process.poll() is not None  # stopped with the block
    with pytest.raises(ServerStartError, match="exited with code 3"):
        with served(f"{sys.executable} -c 'import sys; sys.exit(3)'", url, tmp_path / "x.log", timeout=30, poll=0.1):
            pass


def test_training_can_run_under_a_launcher(recipe, tmp_path):
    """train.launch runs each policy's training in a child process (accelerate launch on GPUs; plain python here)."""
    run_dir = _run(recipe, tmp_path / "launched", f"train.launch={sys.executable}",
                   "train.policies={grpo: {selection: hard}}", "eval.base=false", allow_commands=True)  # fmt: skip
    assert (run_dir / "train" / "grpo" / "study_train.yaml").exists()
    assert (run_dir / "train" / "grpo" / "adapter" / "adapter_model.safetensors").exists()
    assert _statuses(run_dir)["eval grpo demo"] == "ran"


def test_overrides_apply_over_the_fallback(monkeypatch):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    recipe = load_recipe(ROOT / "recipes" / "demo-cpu.yaml", ["data.pool_limit=8", "select.random.n=3"])
    assert recipe.without_data_dir_applied and recipe.data.pool_limit == 8
    assert next(s for s in recipe.selections if s.name == "random").config.n == 3


@pytest.mark.slow
def test_demo_recipe_end_to_end_with_the_packaged_models(tmp_path, monkeypatch):
    """The README's demo study, shrunk (fewer questions, one step): bundled sample, both packaged filters, three
    GRPO policies with medrlvr's rollouts, generate and loglik eval, report."""
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    run_dir = run_study(
        ROOT / "recipes" / "demo-cpu.yaml",
        ["data.pool_limit=16", "filter.0.max_new_tokens=48", "filter.1.max_new_tokens=32", "train.max_steps=1",
         "train.max_completion_length=24", "eval.limit=16", "select.random.n=6"],
        run_dir=str(tmp_path / "demo"),
        progress=False,
    )  # fmt: skip
    statuses = _statuses(run_dir)
    assert set(statuses.values()) == {"ran"} and len(statuses) == 2 + 3 + 3 + 4 * 2 + 1
    table = (run_dir / "report" / "table1.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == [
        "base", "random", "smollm2-filter", "gemma-filter"
    ]  # fmt: skip
    for name in ("base", "random", "smollm2-filter", "gemma-filter"):
        results = json.loads((run_dir / "eval" / name / "demo" / "results.json").read_text())
        assert results["n"] == 16 and 0 <= results["accuracy"] <= 1
        generated = json.loads((run_dir / "eval" / name / "demo@generate" / "results.json").read_text())
        assert generated["n"] == 16 and 0 <= generated["well_formed_rate"] <= generated["format_rate"] <= 1
    assert (run_dir / "report" / "training.md").exists() and (run_dir / "report" / "radar_demo.png").exists()
    assert "well-formed" in (run_dir / "report" / "paired.md").read_text()
    assert "bundled demo sample" in json.loads((run_dir / "manifest.json").read_text())["data"]["source"]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.sh")))
def test_shell_scripts_parse(script):
    import subprocess

    result = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- issue 14: nothing finished is lost to a typo, recipe mistakes are one line, commands need permission ---------

SMALL = ("train.policies={sft: {selection: random, method: sft}}", "eval.base=false", "eval.limit=2")


def test_a_typo_stops_the_study_before_any_output_is_touched(recipe, tmp_path, capsys):
    """`train.model=no-such-model` used to delete the trained adapter and then fail; `chunk_size: 0` the filter's
    responses and labels."""
    run_dir = _run(recipe, tmp_path / "run", *SMALL)
    files = [run_dir / "train/sft/adapter/adapter_model.safetensors", run_dir / "filter/tiny/labels.jsonl",
             run_dir / "filter/tiny/responses.jsonl", run_dir / "eval/sft/demo/predictions.jsonl"]  # fmt: skip
    before = {p: p.read_bytes() for p in files}
    with pytest.raises(RecipeError, match=r"tiny.yaml: train.model: unknown model 'no-such-model'"):
        _run(recipe, run_dir, *SMALL, "train.model=no-such-model")
    with pytest.raises(RecipeError, match=r"tiny.yaml: filter\[0\] \(tiny\): setting 'chunk_size' must be at least 1"):
        _run(recipe, run_dir, *SMALL, "filter.0.chunk_size=0")
    capsys.readouterr()  # the runs' progress output
    assert main(["run", str(recipe), *SMALL, "train.model=no-such-model", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.model" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in files} == before
    _run(recipe, run_dir, *SMALL)
    assert set(_statuses(run_dir).values()) == {"cached"}


def test_a_recompute_that_fails_keeps_the_old_output_and_the_old_settings_take_it_back(recipe, tmp_path, monkeypatch):
    import importlib

    run_dir = _run(recipe, tmp_path / "run", *SMALL)
    labels = (run_dir / "filter/tiny/labels.jsonl").read_bytes()
    filter_module = importlib.import_module("medrlvr.filter")
    real, calls = filter_module.filter_pool, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt  # Ctrl-C during the recompute

    monkeypatch.setattr(filter_module, "filter_pool", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(recipe, run_dir, *SMALL, "filter.0.max_new_tokens=5")
    kept = run_dir / ".previous" / "filter" / "tiny"
    assert (kept / "labels.jsonl").read_bytes() == labels and (kept / "responses.jsonl").exists()

    _run(recipe, run_dir, *SMALL)  # the old settings: taken back, not recomputed (the filter would crash)
    assert len(calls) == 1 and _statuses(run_dir)["filter tiny"] == "restored"
    assert set(_statuses(run_dir).values()) == {"cached", "restored"}
    assert (run_dir / "filter/tiny/labels.jsonl").read_bytes() == labels and not (run_dir / ".previous").exists()

    monkeypatch.setattr(filter_module, "filter_pool", real)  # the new settings, finished: only now is the old gone
    _run(recipe, run_dir, *SMALL, "filter.0.max_new_tokens=5")
    assert _statuses(run_dir)["filter tiny"] == "ran" and not (run_dir / ".previous").exists()
    assert json.loads((run_dir / "filter/tiny/config.json").read_text())["max_new_tokens"] == 5


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.benchmarks=42", r"eval.benchmarks must be a list, got 42"),
        ("data.pool=null", r"data: setting 'pool' must be text, got None"),
        ("eval.limit=eight", r"eval \(demo\): setting 'limit' must be an integer or null, got 'eight'"),
        ("eval.limit=0", r"eval \(demo\): setting 'limit' must be at least 1, got 0"),
        ("eval.limit=-5", r"eval \(demo\): setting 'limit' must be at least 1, got -5"),
        ("eval.chunk_size=0", r"eval \(demo\): setting 'chunk_size' must be at least 1, got 0"),
        ("data.pool_limit=-5", r"data: setting 'pool_limit' must be at least 1"),
        ("data.pool_limit=0", r"data: setting 'pool_limit' must be at least 1"),
        ("filter.0.strict=nope", r"filter\[0\] \(tiny\): setting 'strict' must be true or false, got 'nope'"),
        ("filter.0.chunk_size=0", r"filter\[0\] \(tiny\): setting 'chunk_size' must be at least 1, got 0"),
        ("filter.0.serve=vllm serve {model} --port {port}", r"filter\[0\].serve: placeholder \{port\} is not filled"),
        ("train.lora=nope", r"train.policies.grpo: setting 'lora' must be true or false, got 'nope'"),
        ("train.launch=[1]", r"train.launch must be text or null"),
        ("eval.base=maybe", r"eval.base must be true or false, got 'maybe'"),
        ("select=[1, 2]", r"select must be a mapping of settings"),
        ("filter={a: 1}", r"filter must be a list"),
    ],
)
def test_recipe_mistakes_are_one_line_naming_the_key(recipe, override, message, capsys):
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe, [override])
    assert main(["run", str(recipe), override, "--plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiny.yaml" in err and "Traceback" not in err


COMMANDS = ("filter.0.serve=sh -c 'echo uid=$(id -u)' {model}", "eval.serve=my-server --model {model}",
            "train.merge=true", "train.launch=accelerate launch --num_processes 2")  # fmt: skip


def test_plan_lists_every_command_and_running_them_needs_permission(recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDRLVR_CACHE", str(tmp_path / "cache"))  # where confirmations are remembered
    run_dir = tmp_path / "run"
    r = load_recipe(recipe, COMMANDS, run_dir=str(run_dir))
    commands = recipe_commands(r)
    lines = "\n".join(plan(r))
    for command in [
        f"sh -c 'echo uid=$(id -u)' {r.filters[0].config.model}",
        f"my-server --model {r.base_model}",
        f"my-server --model {run_dir / 'train' / 'grpo' / 'merged'}",
        f"accelerate launch --num_processes 2 -m medrlvr.cli train --config {run_dir / 'train/sft/study_train.yaml'}",
    ]:
        assert command in commands and f"  {command}" in lines
    assert "needs --allow-commands" in lines

    with pytest.raises(CommandsNotAllowed, match=r"runs commands: `sh -c 'echo uid=\$\(id -u\)'"):
        run_study(r, progress=False, log=lambda line: None)
    assert not run_dir.exists()  # nothing ran, nothing was written

    argv = ["run", str(recipe), *COMMANDS, "--run-dir", str(run_dir)]
    capsys.readouterr()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main(argv) == 2  # no terminal, no flag: one line that lists the commands
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "echo uid" in err and "--allow-commands" in err and not run_dir.exists()

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(argv) == 2 and not run_dir.exists() and not commands_trusted(commands)
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    main(argv)  # confirmed: it runs (and stops at the fake server, which exits at once)
    assert commands_trusted(commands) and "exited with code 0" in capsys.readouterr().err
    another = "eval.serve=my-server --model {model} --port 9000"
    changed = load_recipe(recipe, [*COMMANDS, another], run_dir=str(run_dir))
    assert not commands_trusted(recipe_commands(changed))  # another command: asked again


def test_a_recipe_cannot_send_the_api_key_to_an_address_it_chose(recipe, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    served = ["filter.0.engine=openai", "filter.0.model=served-model"]
    with pytest.raises(RecipeError, match=r"filter\[0\].engine_options.api_key_env: a recipe may not choose"):
        load_recipe(recipe, [*served, "filter.0.engine_options={api_key_env: AWS_SECRET_ACCESS_KEY}"])
    with pytest.raises(RecipeError, match=r"eval.engine_options.api_key_env"):
        load_recipe(recipe, ["eval.engine_options={api_key_env: HOME}"])
    elsewhere = "filter.0.engine_options={base_url: 'http://collector.example/v1'}"
    assert load_recipe(recipe, [*served, elsewhere]).filters[0].config.engine_options["api_key_env"] is None
    # the user's own address (on the command line, or in the environment) gets the key
    options = load_recipe(recipe, [*served, elsewhere], base_url="http://collector.example/v1/").filters[0]
    assert "api_key_env" not in options.config.engine_options
    monkeypatch.setenv("OPENAI_BASE_URL", "http://collector.example/v1")
    assert "api_key_env" not in load_recipe(recipe, [*served, elsewhere]).filters[0].config.engine_options
    # no base_url in the recipe: the user's --base-url is used, with the key
    options = load_recipe(recipe, served, base_url="http://mine.example/v1").filters[0].config.engine_options
    assert options == {"base_url": "http://mine.example/v1"}


def test_selections_holding_the_same_questions_are_said(tmp_path):
    """Two filters that label every question alike give one selection twice: the study says so and the manifest
    keeps it (the demo's two filters label all 64 pool questions hard)."""
    from types import SimpleNamespace

    from medrlvr.study.runner import Study

    for name, text in (("a", "q1\nq2\n"), ("b", "q1\nq2\n"), ("c", "q3\n")):
        (tmp_path / "select" / name).mkdir(parents=True)
        (tmp_path / "select" / name / "train.jsonl").write_text(text)
    lines: list[str] = []
    study = SimpleNamespace(recipe=SimpleNamespace(selections=[SimpleNamespace(name=n) for n in "abc"]),
                            run_dir=tmp_path, log=lines.append, manifest={"data": {}})  # fmt: skip
    Study._say_identical_selections(study)
    assert study.manifest["data"]["identical_selections"] == [["a", "b"]]
    assert lines == ["[select] a and b hold the same questions: policies trained on them with the same settings are "
                     "one policy trained twice"]  # fmt: skip


def test_the_policy_can_be_its_own_filter(recipe):
    """``model: policy`` is the recipe's train.model, ``policy:NAME`` that policy's base model (the self-filter, the
    paper's best medical arm); a selection may name it as ``policy``; a policy the recipe lacks is one line."""
    shared = str(load_recipe(recipe).base_model)
    r = load_recipe(recipe, ["filter.0.model=policy"])
    assert r.filters[0].config.model == shared and r.filters[0].policy == "policy"
    assert r.selections[1].filter == "tiny"
    r = load_recipe(recipe, ["filter.0.model=policy", "filter.0.name=null", "select.hard.filter=policy"])
    from medrlvr.models import slug

    assert r.selections[1].filter == r.filters[0].name == slug(shared)  # named after the model, as any filter
    r = load_recipe(recipe, ["filter.0.model=policy:grpo", "train.policies.grpo.model=smollm2-135m-instruct"])
    assert r.filters[0].config.model == "smollm2-135m-instruct"
    assert load_recipe(recipe, ["filter.0.model=policy:sft"]).filters[0].config.model == shared
    with pytest.raises(RecipeError, match=r"filter\[0\].model: 'policy:nope' names no policy of this recipe "
                                          r"\(policies: grpo, sft\)"):  # fmt: skip
        load_recipe(recipe, ["filter.0.model=policy:nope"])
