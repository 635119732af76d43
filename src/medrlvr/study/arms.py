"""Arms of a study: seed replicates, controls and sweep grids, expanded from the raw recipe mapping before it is
parsed, so every expanded selection and policy is an ordinary recipe entry (checked, cached and planned like one).

- ``seeds: [0, 1]`` on ``train`` (every policy) or on one policy trains replicates ``NAME-seed0``, ``NAME-seed1``,
  each in its own folder, with ``seed`` set; the selection, filters and the base model's evaluation are shared.
- ``control: random_reward`` on a policy replaces its reward by coin flips of the same mean (see
  :mod:`medrlvr.train.grpo` for the reward); it is an arm like any other, and ``seeds`` replicate it.
- ``sweep:`` expands a grid into arms named after their values::

      sweep:
        name: ratio                  # the arms' name prefix (default: sweep)
        selection: ratio             # the template: an entry of `select` (its strategy, filter, n, ...)
        grid:                        # every combination; a value is a setting, or a mapping of several
          select: [{hard: 16, easy: 16}, {hard: 24, easy: 8}, {hard: 32, easy: 0}]
          train.learning_rate: [5.0e-4, 1.0e-4]
        seeds: [0, 1]                # replicates of every grid point
        compare_random: true         # a random selection of the same size per distinct size, same seeds

  Grid keys: ``select`` (a mapping merged into the template selection), ``select.KEY``, ``filter`` (the
  selection's filter model: the filter-policy capability gap), ``train`` (a mapping of policy settings) and
  ``train.KEY``. Grid points that differ only in training settings share one selection; a point whose selection and
  settings are unchanged is not retrained (the study's stage cache).

:func:`expand` returns the expanded mapping and the arms (arm -> its policies, seeds and grid values), which the
study writes to ``RUN/arms.json`` for the report.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from ..errors import UserError
from ..rundir import check_name

GRID_SECTIONS = ("select", "train", "filter")


def _short(value: Any) -> str:
    """A value as it appears in an arm's name: 0.0005 -> 0.0005, 1e-05 -> 1e-05, -1 -> -1, True -> true, text kept.
    A float is written as Python's shortest exact form (repr), so two values never share a name the way rounding
    to six digits (``{:g}``) would make them; the files named after an arm keep the whole name, dots included."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("/", "_").replace(":", "_")


def point_name(prefix: str, values: dict[str, Any]) -> str:
    """``ratio-hard24-easy8-learning_rate5e-04``: the prefix and each grid value, key by key."""
    parts = [prefix]
    for key, value in values.items():
        if isinstance(value, dict):
            parts += [f"{k}{_short(v)}" for k, v in value.items()]
        else:
            parts.append(f"{key.split('.')[-1]}{_short(value)}")
    return "-".join(parts)


def _policies(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The recipe's policies as explicit entries (by default one per selection)."""
    train = raw.get("train") or {}
    policies = train.get("policies")
    if policies is None:
        return {name: {"selection": name} for name in raw.get("select") or {}}
    if not isinstance(policies, dict):
        raise UserError("train.policies: expected a mapping of policy name -> settings")
    return {str(k): dict(v or {}) for k, v in policies.items()}


def _seed_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in value):  # fmt: skip
        raise UserError(f"{where}: seeds must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{where}: seeds repeat a value: {value!r}")
    return value


def _grid_points(grid: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise UserError(f"{where}.grid: expected a mapping of setting -> list of values")
    for key, values in grid.items():
        if key.split(".")[0] not in GRID_SECTIONS:
            raise UserError(f"{where}.grid.{key}: a grid key is select, select.KEY, filter, train or train.KEY")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}.grid.{key}: expected a non-empty list of values")
        if key in ("select", "train") and not all(isinstance(v, dict) for v in values):
            raise UserError(f"{where}.grid.{key}: each value is a mapping of settings")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _apply(point: dict[str, Any], selection: dict[str, Any], policy: dict[str, Any]) -> None:
    for key, value in point.items():
        section, _, setting = key.partition(".")
        if section == "filter":
            selection["filter"] = value
        elif section == "select":
            selection.update(value if not setting else {setting: value})
        else:
            _deep_update(policy, value if not setting else {setting: value})


def _deep_update(target: dict[str, Any], values: dict[str, Any]) -> None:
    """Nested mappings (``verl: {algorithm: ppo}``) update key by key; anything else is replaced."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _selection_size(entry: dict[str, Any]) -> int | None:
    if entry.get("strategy", "ratio") == "ratio":
        return int(entry.get("hard", 400)) + int(entry.get("easy", 100))
    return entry.get("n", 500)


def _expand_sweep(raw: dict[str, Any], policies: dict[str, dict], arms: dict[str, dict]) -> None:
    """Add the sweep's selections and policies to ``raw``/``policies`` and its arms to ``arms``."""
    sweep = raw.pop("sweep")
    where = "sweep"
    if not isinstance(sweep, dict):
        raise UserError(f"{where}: expected a mapping (name, selection, grid, seeds, compare_random)")
    unknown = sorted(set(sweep) - {"name", "selection", "grid", "seeds", "compare_random", "policy"})
    if unknown:
        raise UserError(
            f"{where}: unknown key {unknown[0]!r}; known: compare_random, grid, name, policy, selection, seeds"
        )
    selections = raw.setdefault("select", {})
    template_name = sweep.get("selection")
    if template_name not in selections:
        raise UserError(f"{where}.selection: {template_name!r} is not in the select section")
    prefix = check_name(sweep.get("name", "sweep"), f"{where}.name")
    seeds = _seed_list(sweep["seeds"], f"{where}") if "seeds" in sweep else None
    template_policy = dict(sweep.get("policy") or {})
    sizes: dict[int | None, str] = {}
    for point in _grid_points(sweep.get("grid"), where):
        selection, policy = copy.deepcopy(selections[template_name]), copy.deepcopy(template_policy)
        _apply(point, selection, policy)
        select_values = {k: v for k, v in point.items() if not k.startswith("train")}
        select_name = point_name(prefix, select_values) if select_values else template_name
        if select_name in selections and selections[select_name] != selection:
            raise UserError(f"{where}: the grid point {select_name} collides with select.{select_name}")
        selections[select_name] = selection
        name = point_name(prefix, point)
        if name in policies:  # two values written alike (1 and "1", or a value that names another policy)
            raise UserError(f"{where}.grid: the point {point} is named {name}, as another policy is; make the values "
                            "distinct")  # fmt: skip
        policies[name] = {**policy, "selection": select_name, **({"seeds": seeds} if seeds else {})}
        arms[name] = {"sweep": prefix, "values": point, "selection": select_name, "size": _selection_size(selection)}
        sizes.setdefault(_selection_size(selection), name)
    if sweep.get("compare_random"):
        for size in sizes:
            select_name = f"{prefix}-random-n{size}"
            selections[select_name] = {"strategy": "random", "n": size,
                                       "seed": selections[template_name].get("seed", 0)}  # fmt: skip
            policies[select_name] = {
                **template_policy,
                "selection": select_name,
                **({"seeds": seeds} if seeds else {}),
            }
            arms[select_name] = {"sweep": prefix, "values": {"random": size}, "selection": select_name,
                                 "random_of_size": size}  # fmt: skip


def _expand_seeds(policies: dict[str, dict], shared: Any, arms: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for name, entry in policies.items():
        seeds = entry.pop("seeds", shared)
        arm = arms.setdefault(name, {"values": {}, "selection": entry.get("selection")})
        arm["control"] = entry.get("control")
        if seeds is None:
            out[name] = entry
            arm.update(policies=[name], seeds=[entry.get("seed")])
            continue
        seeds = _seed_list(seeds, f"train.policies.{name}")
        members = [name if len(seeds) == 1 else f"{name}-seed{s}" for s in seeds]
        for member, seed in zip(members, seeds):
            out[member] = {**entry, "seed": seed}
        arm.update(policies=members, seeds=seeds)
    return out


def expand(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The recipe with its sweep and seed replicates written out as selections and policies, and the arms:
    ``{arm: {"policies": [...], "seeds": [...], "values": {...}, "selection": ..., "sweep": ..., "control": ...}}``.
    A recipe with neither gives itself back and one arm per policy."""
    raw = copy.deepcopy(raw)
    train = raw.get("train")
    if train is not None and not isinstance(train, dict):
        raise UserError("train: expected a mapping")
    shared_seeds = (train or {}).pop("seeds", None) if train is not None else None
    policies = _policies(raw)
    arms: dict[str, dict[str, Any]] = {}
    if "sweep" in raw:
        _expand_sweep(raw, policies, arms)
    if train is None and policies:
        train = raw["train"] = {}
    if train is not None:
        train["policies"] = _expand_seeds(policies, shared_seeds, arms)
    return raw, arms
