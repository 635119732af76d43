"""What a study reads before its first stage: the pool (with its limit), the evaluation sets, the sets to
decontaminate against and the few-shot pools, loaded once, with the hashes the stage keys and the manifest use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import DataError, load_eval_spec, load_pool, resolve_data_dir
from ..records import Record
from .provenance import records_hash
from .recipe import Recipe


@dataclass
class Inputs:
    recipe: Recipe
    pool: list[Record]
    eval_sets: dict[str, list[Record]]
    decontam: dict[str, list[Record]]
    fewshot: dict[str, list[Record]]
    pool_hash: str
    eval_hashes: dict[str, str]

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``data`` entry: where the data came from and each set's size and sha256."""
        r = self.recipe
        root = resolve_data_dir(r.data.data_dir, required=False)
        return {
            "data_dir": str(root.resolve()) if root else None,
            "source": f"data directory {root.resolve()}" if root else "medrlvr's bundled demo sample",
            "pool": {
                "spec": r.data.pool,
                "limit": r.data.pool_limit,
                "questions": len(self.pool),
                "sha256": self.pool_hash,
            },  # fmt: skip
            "eval": {s: {"questions": len(rs), "sha256": self.eval_hashes[s]} for s, rs in self.eval_sets.items()},
            "decontaminate": list(self.decontam),
        }


def load_inputs(r: Recipe) -> Inputs:
    data_dir = r.data.data_dir
    pool = load_pool(r.data.pool, data_dir)
    pool = list(pool[: r.data.pool_limit] if r.data.pool_limit else pool)
    if not pool:
        raise DataError(f"the pool {r.data.pool} is empty")
    eval_sets = {e.benchmark: e.spec.load(data_dir) for e in r.evals}
    decontam = {spec: eval_sets.get(spec) or load_eval_spec(spec, data_dir) for spec in r.data.decontaminate or []}
    fewshot = {e.benchmark: e.spec.fewshot_pool(data_dir) for e in r.evals if e.config.num_fewshot}
    return Inputs(r, pool, eval_sets, decontam, fewshot, records_hash(pool),
                  {spec: records_hash(rs) for spec, rs in eval_sets.items()})  # fmt: skip
