"""``medrlvr bench ...``: the subcommands and what each prints."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError


def add_bench_commands(commands, data: argparse.ArgumentParser) -> None:
    """The ``bench`` command and its subcommands (``data``: the shared ``--data-dir`` parent)."""
    bench = commands.add_parser("bench", help="throughput benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    rewards = bench_commands.add_parser("rewards", help="time to score 100 KB adversarial completions")
    rewards.add_argument("--size", type=int, default=100_000, help="characters per completion")
    rewards.set_defaults(func=_bench_rewards)
    generate = bench_commands.add_parser(
        "generate", parents=[data], help="tokens/s of each engine against a naive baseline"
    )
    generate.add_argument("--model", default="smollm2-135m-instruct")
    generate.add_argument("--prompts", type=int, default=64, help="MedQA test questions to use")
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--engines", default="transformers,llamacpp", help="comma-separated")
    generate.set_defaults(func=_bench_generate)
    filter_bench = bench_commands.add_parser(
        "filter", parents=[data], help="seconds of the filter at k samples per question against k = 1, same pool"
    )
    filter_bench.add_argument("--model", default="smollm2-135m-instruct")
    filter_bench.add_argument(
        "--pool", default="medmcqa:dev", help="NAME[:SPLIT] or a JSONL file (never a test split)"
    )
    filter_bench.add_argument("--k", default="1,8", help="comma-separated samples per question; the first is the base")
    filter_bench.add_argument("--limit", type=int, default=16, help="the first N questions of the pool")
    filter_bench.add_argument("--max-new-tokens", type=int, default=32)
    filter_bench.add_argument("--temperature", type=float, default=1.0, help="the same for every k")
    filter_bench.add_argument("--batch-size", type=int, default=64, help="the engine's decode batch (rows)")
    filter_bench.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice); on a "
                              "CPU shared with other work, 1 thread times more steadily than 2")  # fmt: skip
    filter_bench.add_argument("--json", help="also write the measurements to this file")
    filter_bench.set_defaults(func=_bench_filter)
    train_bench = bench_commands.add_parser(
        "train",
        parents=[data],
        help="seconds per GRPO step: TRL's own generation against medrlvr's rollouts, same settings",
    )
    train_bench.add_argument("--recipe", default="recipes/demo-cpu.yaml", help="the train settings to use")
    train_bench.add_argument("overrides", nargs="*", help="section.key=value over the recipe, e.g. train.model=M")
    train_bench.add_argument("--steps", type=int, default=4, help="GRPO steps per row (the first is warm-up)")
    train_bench.add_argument("--json", help="also write the measurements to this file")
    train_bench.add_argument("--method", choices=("grpo", "ppo"), default="grpo",
                             help="ppo: a PPO step against a GRPO step (same rollouts, batch, lengths, KL)")  # fmt: skip
    train_bench.set_defaults(func=_bench_train)
    lmeval = bench_commands.add_parser(
        "lmeval", parents=[data], help="loglik accuracy against lm-evaluation-harness (pip install lm-eval)"
    )
    lmeval.add_argument("--model", default="smollm2-135m-instruct")
    lmeval.add_argument("--subjects", default="medical", help="MMLU subjects or a group")
    lmeval.add_argument("--out", default="runs/lmeval")
    lmeval.add_argument("--limit", type=int, help="the first N questions of each subject (default: all)")
    lmeval.add_argument("--num-fewshot", default="0,5", help="comma-separated shot counts, one lm-eval run each")
    lmeval.add_argument("--dtypes", default="fp32,bf16", help="medrlvr's trunk dtypes (comma-separated) against "
                        "lm-eval in fp32; medrlvr's head is fp32 in every row")  # fmt: skip
    lmeval.add_argument("--json", help="also write the measurements to this file")
    lmeval.set_defaults(func=_bench_lmeval)
    circ = bench_commands.add_parser(
        "circular", parents=[data], help="log-likelihood: seconds of circular evaluation against one plain pass"
    )
    circ.add_argument("--model", default="smollm2-135m-instruct")
    circ.add_argument("--benchmark", default="mmlu:medical")
    circ.add_argument("--limit", type=int, default=40, help="questions (a seeded subsample)")
    circ.add_argument("--rotations", type=int, default=4, help="rotations per question at most")
    circ.add_argument("--repeats", type=int, default=2, help="timed runs of each row (the fastest is kept)")
    circ.add_argument("--unshared", action="store_true", help="also time circular with the stem copied into each "
                      "row's cache (the GPU layout) and with prefix sharing off")  # fmt: skip
    circ.add_argument("--json", help="also write the measurements to this file")
    circ.set_defaults(func=_bench_circular)
    study = bench_commands.add_parser(
        "study", help="seconds and peak memory per stage of finished studies, side by side (before/after)"
    )
    study.add_argument("run_dirs", nargs="+", help="study run directories (each has a manifest.json)")
    study.add_argument("--json", help="also write the table to this file")
    study.set_defaults(func=_bench_study)


def _bench_generate(args: argparse.Namespace) -> None:
    from . import bench_generate, print_generate

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    rows = bench_generate(args.model, args.data_dir, args.prompts, args.max_new_tokens, engines=engines)
    print_generate(rows, args.model)


def _bench_filter(args: argparse.Namespace) -> None:
    import json

    from . import bench_filter, print_filter

    try:
        ks = tuple(int(k) for k in args.k.split(",") if k.strip())
    except ValueError:
        raise UserError(f"--k takes comma-separated whole numbers, got {args.k!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k takes samples per question of at least 1, got {args.k!r}")
    for name in ("limit", "max_new_tokens", "batch_size", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.temperature <= 0 and max(ks) > 1:
        raise UserError("--temperature must be above 0 with k > 1 (greedy samples are all alike)")
    result = bench_filter(args.model, args.pool, args.data_dir, ks, args.limit, args.max_new_tokens,
                          args.temperature, {"batch_size": args.batch_size}, threads=args.threads)  # fmt: skip
    print_filter(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _bench_train(args: argparse.Namespace) -> None:
    import json

    from . import bench_train, print_train

    if args.steps < 2:
        raise UserError(f"--steps must be at least 2 (the first step is warm-up), got {args.steps}")
    result = bench_train(args.recipe, args.data_dir, args.steps, args.overrides, method=args.method)
    print_train(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _bench_lmeval(args: argparse.Namespace) -> None:
    import json

    from . import bench_lmeval, print_lmeval

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    try:
        shots = tuple(int(s) for s in args.num_fewshot.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--num-fewshot takes comma-separated whole numbers, got {args.num_fewshot!r}") from None
    dtypes = tuple(d.strip() for d in args.dtypes.split(",") if d.strip())
    result = bench_lmeval(args.model, args.data_dir, args.subjects, args.out, shots=shots, dtypes=dtypes,
                          limit=args.limit)  # fmt: skip
    print_lmeval(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _bench_study(args: argparse.Namespace) -> None:
    import json

    from . import print_stage_table, stage_table

    result = stage_table(args.run_dirs)
    print_stage_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _bench_circular(args: argparse.Namespace) -> None:
    import json

    from . import bench_circular, print_circular

    for flag, value, least in (("--limit", args.limit, 1), ("--rotations", args.rotations, 2),
                               ("--repeats", args.repeats, 1)):  # fmt: skip
        if value < least:
            raise UserError(f"{flag} must be at least {least}, got {value}")
    result = bench_circular(args.model, args.data_dir, args.benchmark, args.limit, args.rotations, args.repeats,
                            unshared=args.unshared)  # fmt: skip
    print_circular(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _bench_rewards(args: argparse.Namespace) -> None:
    from . import bench_rewards, print_rewards

    print_rewards(bench_rewards(args.size))
