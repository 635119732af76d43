"""``medrlvr bench study``: each stage's seconds and peak memory in one or more studies' manifests, side by side,
with the machine each ran on -- the before/after table of a speed change, read from what the runs recorded
(``manifest.json``: every stage's wall time and the process's peak RSS when it ended) rather than re-timed.

Stages are matched by kind and name (``train random``, ``eval base medqa``); a stage one run has and another has not
reads ``-``. Stages a run took from an earlier run (``status: cached`` or ``restored``) read ``cached``, not 0 s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError

KINDS = ("filter", "select", "train", "eval", "report")


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """A study's manifest, or a one-line error naming the file."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path}: no manifest (is {run_dir} a study's run directory?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(manifest.get("stages"), list):
        raise UserError(f"{path}: field 'stages' is missing or not a list")
    return manifest


def stage_table(run_dirs: list[str | Path]) -> dict[str, Any]:
    """``{"runs": [{dir, machine, recipe, commit, wall_seconds, peak_rss_mb, status}], "rows": [{"stage", "name",
    "seconds": [s or None per run], "cached": [bool per run], "peak_rss_mb": [...]}], "totals": {kind: [s per
    run]}}``."""
    from ..study.provenance import machine_line

    manifests = [read_manifest(d) for d in run_dirs]
    runs, rows, index = [], [], {}
    for k, (run_dir, m) in enumerate(zip(run_dirs, manifests)):
        facts = m.get("machine")
        runs.append({"dir": str(run_dir), "machine": machine_line(facts) if facts else "not recorded",
                     "recipe": m.get("recipe"), "commit": _commit(m.get("commit")), "status": m.get("status"),
                     "wall_seconds": m.get("wall_seconds"), "peak_rss_mb": m.get("peak_rss_mb")})  # fmt: skip
        for s in m["stages"]:
            key = (s.get("stage"), s.get("name", ""))
            if key not in index:
                index[key] = len(rows)
                rows.append({"stage": key[0], "name": key[1], "seconds": [None] * len(manifests),
                             "cached": [False] * len(manifests), "peak_rss_mb": [None] * len(manifests)})  # fmt: skip
            row = rows[index[key]]
            row["cached"][k] = s.get("status") in ("cached", "restored")
            row["seconds"][k] = None if row["cached"][k] else s.get("seconds")
            row["peak_rss_mb"][k] = s.get("peak_rss_mb")
    rows.sort(key=lambda r: KINDS.index(r["stage"]) if r["stage"] in KINDS else len(KINDS))
    totals = {}
    for kind in dict.fromkeys(r["stage"] for r in rows):
        ran = [[r["seconds"][k] for r in rows if r["stage"] == kind and r["seconds"][k] is not None]
               for k in range(len(runs))]  # fmt: skip
        totals[kind] = [sum(values) if values else None for values in ran]
    return {"runs": runs, "rows": rows, "totals": totals}


def _commit(value: Any) -> str | None:
    """The commit a manifest records (``{"sha": ..., "dirty": ...}`` or a plain string)."""
    if isinstance(value, dict):
        sha = str(value.get("sha") or "?")[:12]
        return sha + (" with uncommitted changes" if value.get("dirty") else "")
    return None if value is None else str(value)[:12]


def _seconds(value: float | None, cached: bool = False) -> str:
    if cached:
        return "cached"
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _ratio(values: list[float | None]) -> str:
    first, last = values[0], values[-1]
    return f"{first / last:.2f}x" if first and last else ""


def print_stage_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    runs = result["runs"]
    table = Table(title="seconds per stage (manifest.json of each run)")
    table.add_column("stage")
    for k in range(len(runs)):
        table.add_column(f"run {k + 1}", justify="right")
    if len(runs) > 1:
        table.add_column("run 1 / last", justify="right")
    for r in result["rows"]:
        cells = [_seconds(s, c) for s, c in zip(r["seconds"], r["cached"])]
        table.add_row(f"{r['stage']} {r['name']}".strip(), *cells, *([_ratio(r["seconds"])] if len(runs) > 1 else []))
    table.add_section()
    for kind, values in result["totals"].items():
        table.add_row(f"all {kind}", *map(_seconds, values), *([_ratio(values)] if len(runs) > 1 else []))
    walls = [r["wall_seconds"] for r in runs]
    table.add_row("study wall time", *map(_seconds, walls), *([_ratio(walls)] if len(runs) > 1 else []))
    peaks = [f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-" for r in runs]
    table.add_row("peak RSS MB", *peaks, *([""] if len(runs) > 1 else []))
    console = Console(width=160)
    console.print(table)
    for k, r in enumerate(runs, 1):  # every figure is about the machine it was measured on
        console.print(f"run {k}: {r['dir']} ({r['recipe']}, commit {r['commit'] or '?'}, {r['status']}): "
                      f"{r['machine']}", soft_wrap=True)  # fmt: skip
