"""``medrlvr data list`` and ``medrlvr data show``: the benchmarks medrlvr knows, and what the data directory holds."""

from __future__ import annotations

import argparse
from collections import Counter

from ..prompts import render_question
from . import BENCHMARKS, SUBJECT2CATEGORY, benchmark_files, load_benchmark, resolve_data_dir


def add_data_commands(commands, data: argparse.ArgumentParser) -> None:
    data_cmd = commands.add_parser("data", help="the benchmarks medrlvr knows and what the data directory holds")
    data_commands = data_cmd.add_subparsers(dest="data_command", required=True)
    listing = data_commands.add_parser(
        "list", parents=[data], help="known benchmarks and which splits the data directory has"
    )
    listing.set_defaults(func=_data_list)
    show = data_commands.add_parser(
        "show", parents=[data], help="counts by split and subject, answer letters, one sample"
    )
    show.add_argument("name", choices=list(BENCHMARKS))
    show.add_argument("--split", default="test")
    show.add_argument("--subjects", help="subject or group names, comma-separated (e.g. medical)")
    show.add_argument("--index", type=int, default=0, help="which question to render as the sample")
    show.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="what a malformed row does")
    show.set_defaults(func=_data_show)


def _data_list(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    root = resolve_data_dir(args.data_dir, required=False)
    table = Table(title=f"benchmarks (data directory: {root or 'not set; use --data-dir or MEDRLVR_DATA_DIR'})")
    for column in ("name", "benchmark", "splits found", "splits known", "Hugging Face id"):
        table.add_column(column)
    for name, bench in BENCHMARKS.items():
        found = [s for s in bench.files if (bench.root or root) and benchmark_files(name, s, root)]
        table.add_row(name, bench.title, ", ".join(found) or "-", ", ".join(bench.files), bench.hf_id)
    Console().print(table)


def _data_show(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    records = load_benchmark(args.name, args.split, args.data_dir, args.subjects, on_error=args.on_error)
    console = Console()
    split = records[0].split if records else args.split
    console.print(
        f"[bold]{args.name}[/bold] {split}: {len(records)} questions"
        + (f", {len(records.skipped)} malformed rows skipped" if records.skipped else "")
    )
    categories = SUBJECT2CATEGORY.get(args.name, {})
    table = Table(title="by subject")
    table.add_column("subject")
    if categories:
        table.add_column("category")
    table.add_column("questions", justify="right")
    for subject, count in sorted(Counter(r.subject for r in records).items()):
        table.add_row(subject or "-", *([categories.get(subject, "-")] if categories else []), str(count))
    console.print(table)
    answers = Counter(r.answer for r in records)
    if records and records[0].is_multiple_choice:
        console.print(
            "answer letters: " + "  ".join(f"{k} {v} ({v / len(records):.1%})" for k, v in sorted(answers.items()))
        )
        console.print(
            "options per question: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(len(r.options) for r in records).items()))
        )
    if records:
        sample = records[min(args.index, len(records) - 1)]
        console.print(
            f"\n[bold]sample[/bold] {sample.id} (subject {sample.subject or '-'}; gold {sample.answer})",
            highlight=False,
        )
        console.print(render_question(sample), markup=False, highlight=False)
