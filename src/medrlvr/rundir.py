"""Where each stage writes in a run directory (the layout in the README), for the stages that write there and the
report and the study that read it."""

from __future__ import annotations

from pathlib import Path

from .data import folder_name


def eval_dir(run_dir: str | Path, model: str, benchmark: str) -> Path:
    """Where one model's results on one benchmark go: RUN/eval/MODEL/FOLDER (``benchmark`` is the results' label,
    see :class:`medrlvr.data.BenchmarkSpec`). The report reads the same layout."""
    return Path(run_dir) / "eval" / model / folder_name(benchmark)
