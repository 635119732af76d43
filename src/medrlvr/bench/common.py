"""What the benchmarks share: running one configuration in a fresh process, so each row's peak memory is its own."""

from __future__ import annotations

from ..study.provenance import peak_rss_mb
from ..study.recipe import load_recipe

__all__ = ["isolated", "load_recipe", "peak_rss_mb"]


def isolated(target, *args) -> dict:
    """``target(*args)`` (a dict of measurements) in a fresh process, with its peak RSS; an exception becomes an
    ``error`` row instead of ending the whole benchmark."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _child(target, args, queue) -> None:
    try:
        result = target(*args)
        result["peak_rss_mb"] = peak_rss_mb()
        queue.put(result)
    except Exception as e:  # reported as a row, not a crash of the whole benchmark
        queue.put({"error": f"{type(e).__name__}: {e}"})
