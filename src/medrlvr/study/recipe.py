"""A study's recipe: its sections, reading and checking it (no data read, no model loaded), and its plan.

A recipe is YAML with the sections ``name``, ``run_dir``, ``data``, ``filter``, ``select``, ``train``, ``eval``,
``report`` and ``without_data_dir`` (dotted overrides applied when no data directory is set, e.g. to use the
bundled demo questions); ``recipes/demo-cpu.yaml`` documents every key. Overrides are ``section.key=value`` (values
read as YAML), the same syntax single-stage commands take as ``key=value`` (:func:`medrlvr.config.apply_overrides`).
Every setting is type- and range-checked here, so a typo stops a study with one line naming the recipe key before
anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as _config
from ..config import checked, setting
from ..data import BenchmarkSpec, resolve_data_dir
from ..errors import RecipeError, UserError
from ..evaluate import EvalConfig
from ..filter import FilterConfig
from ..models import slug
from ..rundir import check_distinct, check_name
from ..select import STRATEGIES, SelectConfig
from ..train import TrainConfig
from ..train import check as check_backend
from .arms import expand
from .commands import key_policy

SECTIONS = ("name", "description", "run_dir", "data", "filter", "select", "train", "eval", "report",
            "without_data_dir", "extends", "sweep")  # fmt: skip


@dataclass
class DataSection:
    pool: str = setting("medmcqa:dev", help="NAME[:SPLIT] or a JSONL of records; never a test split")
    pool_limit: int | None = setting(None, ge=1, help="the first N questions of the pool, in pool order (None: all)")
    decontaminate: list[str] | None = setting(
        None, help="eval sets to drop 8-gram overlaps with; None: the eval benchmarks"
    )
    data_dir: str | None = setting(None, help="default: --data-dir or $MEDRLVR_DATA_DIR")

    def __post_init__(self) -> None:
        if not self.pool.strip():
            raise RecipeError("setting 'pool' is empty; give NAME[:SPLIT] (e.g. medmcqa:dev) or a JSONL file")


@dataclass
class FilterEntry:
    name: str
    config: FilterConfig
    serve: str | None = None  # a command that starts a server for this model (engine: openai)
    policy: str | None = None  # ``policy`` or ``policy:NAME`` when the recipe named the policy's model (self-filter)


@dataclass
class SelectEntry:
    name: str
    config: SelectConfig
    filter: str | None = None  # whose labels (a filter's name); needed by ratio and band; the first of ``filters``
    filters: list[str] = field(default_factory=list)  # every filter it reads (fail_then_diverse, filter_agreement)
    pilot: str | None = None  # the policy whose training log it reads (limr, pilot_variance): trained before it

    @property
    def size(self) -> int:
        """How many questions it asks for."""
        return self.config.hard + self.config.easy if self.config.strategy == "ratio" else self.config.n


@dataclass
class Policy:
    name: str
    selection: str
    config: TrainConfig  # train_file and output_dir are set by the study


@dataclass
class EvalEntry:
    benchmark: str  # NAME[:SUBJECTS]
    config: EvalConfig  # model is set per evaluated model
    name: str = ""  # the results' name (folder, report column): the benchmark, "@generate" added in generate mode
    spec: BenchmarkSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = BenchmarkSpec.parse(self.benchmark, self.config.mode, self.name or None)
        self.benchmark, self.name = self.spec.benchmark, self.spec.label


@dataclass
class Recipe:
    name: str
    run_dir: Path
    data: DataSection
    filters: list[FilterEntry]
    selections: list[SelectEntry]
    policies: list[Policy]
    base_model: str
    evals: list[EvalEntry]
    eval_base: bool = True
    eval_serve: str | None = None
    train_launch: str | None = None  # e.g. "accelerate launch --config_file recipes/accelerate/multi-gpu.yaml"
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the recipe file
    raw: dict[str, Any] = field(default_factory=dict)  # the recipe as resolved (overrides applied)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # medrlvr.study.arms: seeds, controls, sweep points
    without_data_dir_applied: bool = False

    @property
    def model_names(self) -> list[str]:
        """The evaluated models' names: ``base`` (the untrained model) and the policies."""
        return (["base"] if self.eval_base else []) + [p.name for p in self.policies]


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str] | dict[str, Any], where: str) -> dict[str, Any]:
    """Set ``section.key=value`` items (values read as YAML) in a copy of ``raw``."""
    return _config.apply_overrides(raw, overrides, where, error=RecipeError)


def _build(cls, values: Any, where: str, drop: Sequence[str] = (), fixed: dict[str, Any] | None = None):
    return _config.build(cls, values, where, drop, fixed, error=RecipeError)


def _typed(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against ``tp`` (see :func:`medrlvr.config.checked`); the error names the recipe key."""
    try:
        return checked(value, tp)
    except TypeError as e:
        raise RecipeError(f"{where} {e}") from None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    """A section or entry that must be a mapping (an empty one when left out)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a mapping of settings, got {type(value).__name__} {value!r:.60}")
    return dict(value)


def _command(template: Any, where: str) -> str | None:
    """A ``serve`` or ``launch`` command: text, whose only placeholder is ``{model}``."""
    template = _typed(template, str | None, where)
    if template is not None:
        try:
            template.format(model="MODEL")
        except (KeyError, IndexError) as e:
            raise RecipeError(
                f"{where}: placeholder {{{e.args[0]}}} is not filled in; the only one is {{model}} "
                "(write {{ and }} for literal braces)"
            ) from None
        except ValueError as e:
            raise RecipeError(f"{where}: {e} (write {{{{ and }}}} for literal braces)") from None
    return template


def _check_sections(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections ({', '.join(SECTIONS)})")
    unknown = sorted(k for k in raw if k not in SECTIONS)
    if unknown:
        raise RecipeError(f"{path}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")


def _merged(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``parent``: mappings merge key by key, anything else (lists included) is replaced, and a
    ``null`` in place of a mapping removes it (``select: {gemma-filter: null}`` drops the parent's selection)."""
    out = dict(parent)
    for key, value in child.items():
        if value is None and isinstance(out.get(key), dict):
            del out[key]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _yaml_load(text: str, path: Path) -> Any:
    """YAML as ``yaml.safe_load`` reads it, except that a key given twice in one mapping is an error naming both
    lines (PyYAML keeps the last one silently, so a setting written twice would win or lose unseen)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in lines:
                        raise RecipeError(f"{path}: line {line}: key {key!r} is given twice (lines {lines[key]} and "
                                          f"{line}); keep one")  # fmt: skip
                    lines[key] = line
                except TypeError:  # an unhashable key: PyYAML's own error says so
                    pass
            return super().construct_mapping(node, deep)

    return yaml.load(text, Loader=Loader)  # a SafeLoader: builds plain values only


def _extended(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe file, over the recipe its ``extends:`` names (a path relative to it), recursively."""
    import yaml

    if not path.is_file():
        raise RecipeError(f"recipe {path} not found" + (f" (extended by {seen[-1]})" if seen else ""))
    try:
        raw = _yaml_load(path.read_text(encoding="utf-8"), path) or {}
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise RecipeError(f"{path}: line {line}: not UTF-8 text (byte {e.object[e.start]:#04x}); save the recipe "
                          "as UTF-8") from None  # fmt: skip
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecipeError(f"{path}: line {mark.line + 1 if mark else '?'}: not valid YAML") from None
    _check_sections(raw, path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends: expected the path of another recipe, got {parent!r}")
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen or parent_path == path.resolve():
        raise RecipeError(f"{path}: extends: {parent} extends itself (a cycle)")
    return _merged(_extended(parent_path, (*seen, path.resolve())), raw)


def _read(path: Path, overrides: Sequence[str], data_dir: str | None) -> tuple[dict[str, Any], bool]:
    """The recipe with overrides applied, and whether its ``without_data_dir`` fallback was (no data directory)."""

    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    raw = _extended(path)
    given = apply_overrides(raw, overrides, str(path))
    if data_dir is not None:
        given.setdefault("data", {})["data_dir"] = data_dir
    fallback = _mapping(raw.get("without_data_dir"), f"{path}: without_data_dir")
    applied = bool(fallback) and resolve_data_dir((given.get("data") or {}).get("data_dir"), required=False) is None
    if applied:  # the recipe's own fallback first, then what the user overrode on top of it
        raw = apply_overrides(apply_overrides(raw, fallback, f"{path}: without_data_dir"), overrides, str(path))
    else:
        raw = given
    _check_sections(raw, path)
    return raw, applied


SELF_FILTER = "policy"  # a filter entry's ``model: policy`` (or ``policy:NAME``): the policy's own base model


def _policy_model(raw: dict[str, Any], ref: str, where: str) -> str:
    """The model a self-filter reference names: ``policy`` is the recipe's ``train.model`` (every policy's base
    unless one overrides it), ``policy:NAME`` the base model of the policy NAME (its own ``model`` or the shared
    one). The self-filter is the paper's best medical arm: the model to be trained labels its own training data."""
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    shared = _typed(train.get("model") or TrainConfig.model, str, f"{where}: train.model")
    if ref == SELF_FILTER:
        return shared
    name = ref.split(":", 1)[1]
    policies = train.get("policies")
    if isinstance(policies, dict):
        names = [str(n) for n in policies]
    else:  # one policy per selection
        names = [str(n) for n in (raw.get("select") or {})] if isinstance(raw.get("select"), dict) else []
    if name not in names:
        raise RecipeError(f"{where}.model: {ref!r} names no policy of this recipe (policies: "
                          f"{', '.join(names) or 'none'}); use 'policy' for train.model")  # fmt: skip
    entry = policies.get(name) if isinstance(policies, dict) else None
    own = entry.get("model") if isinstance(entry, dict) else None
    return _typed(own or shared, str, f"{where}: train.policies.{name}.model")


def _filters(raw: dict[str, Any], path: Path, base_url: str | None) -> list[FilterEntry]:
    filters = []
    for i, entry in enumerate(_typed(raw.get("filter") or [], list, f"{path}: filter")):
        entry = _mapping(entry, f"{path}: filter[{i}]")
        name = _typed(entry.pop("name", None), str | None, f"{path}: filter[{i}].name")
        ref = entry.get("model")
        policy = ref if isinstance(ref, str) and (ref == SELF_FILTER or ref.startswith(SELF_FILTER + ":")) else None
        if policy:
            entry["model"] = _policy_model(raw, policy, f"{path}: filter[{i}]")
        name = name or slug(str(entry.get("model", "")))
        serve = _command(entry.pop("serve", None), f"{path}: filter[{i}].serve")
        config = _build(FilterConfig, entry, f"{path}: filter[{i}] ({name})")
        config.engine_options = key_policy(config, f"{path}: filter[{i}]", base_url, bool(serve))
        filters.append(FilterEntry(name, config, serve, policy))
    if len({f.name for f in filters}) != len(filters):
        raise RecipeError(f"{path}: filter: two filters with the same name; give each a distinct 'name'")
    return filters


def _selections(raw: dict[str, Any], path: Path, filters: list[FilterEntry]) -> list[SelectEntry]:
    by_name = (
        {f.name: f for f in filters}
        | {f.config.model: f for f in filters}
        | {f.policy: f for f in filters if f.policy}
    )
    selections = []
    for name, entry in _mapping(raw.get("select"), f"{path}: select").items():
        where = f"{path}: select.{name}"
        entry = _mapping(entry, where)
        whose = _typed(entry.pop("filter", None), str | list[str] | None, f"{where}.filter")
        whose = [whose] if isinstance(whose, str) else list(whose or [])
        pilot = _typed(entry.pop("pilot", None), str | None, f"{where}.pilot")
        config = _build(SelectConfig, entry, where, drop=("decontaminate",))
        strategy = STRATEGIES[config.strategy]
        for w in whose:
            if w not in by_name:
                raise RecipeError(f"{where}: filter {w!r} is not in the filter section")
        whose = list(dict.fromkeys(by_name[w].name for w in whose))
        if strategy.needs in ("labels", "filters") and not whose:
            raise RecipeError(f"{where}: strategy {config.strategy} needs 'filter' (whose labels)")
        if strategy.needs == "labels" and len(whose) > 1:
            raise RecipeError(f"{where}: strategy {config.strategy} reads one filter's labels, got {whose}")
        if config.strategy == "filter_agreement" and len(whose) < 2:
            raise RecipeError(f"{where}: filter_agreement compares filters: name two or more (filter: [A, B])")
        for w in whose:
            if by_name[w].config.k < strategy.samples:
                raise RecipeError(
                    f"{where}: strategy {config.strategy} needs k >= {strategy.samples} samples per question (one "
                    f"sample has no variance); filter {w} has k={by_name[w].config.k}: set its k and temperature > 0"
                )
        if strategy.needs == "pilot" and not pilot:
            raise RecipeError(
                f"{where}: strategy {config.strategy} needs 'pilot' (the policy whose short run it reads)"
            )
        if pilot and strategy.needs != "pilot":
            raise RecipeError(f"{where}: strategy {config.strategy} reads no pilot run; drop 'pilot'")
        selections.append(SelectEntry(str(name), config, whose[0] if whose else None, whose, pilot))
    return selections


def _check_pilots(path: Path, selections: list[SelectEntry], policies: list[Policy], pool_limit: int | None) -> None:
    """A pilot is a policy of the recipe that trains on a selection needing no pilot itself, on the TRL path (which
    logs per-question rewards); no selection asks for more questions than a limited pool holds."""
    by_name = {p.name: p for p in policies}
    needs_pilot = {s.name for s in selections if s.pilot}
    for s in selections:
        where = f"{path}: select.{s.name}"
        if pool_limit is not None and s.size > pool_limit and not s.config.allow_short:
            raise RecipeError(f"{where}: asks for {s.size} questions and the pool holds at most {pool_limit} "
                              "(data.pool_limit); ask for fewer or set allow_short")  # fmt: skip
        if not s.pilot:
            continue
        pilot = by_name.get(s.pilot)
        if pilot is None:
            raise RecipeError(f"{where}: pilot {s.pilot!r} is not a policy of this recipe (policies: "
                              f"{', '.join(by_name) or 'none'}; a policy with seeds is named NAME-seedN)")  # fmt: skip
        if pilot.selection in needs_pilot:
            raise RecipeError(f"{where}: pilot {s.pilot} trains on select.{pilot.selection}, which needs a pilot "
                              "itself; a pilot trains on a selection of its own")  # fmt: skip
        if pilot.config.method not in ("grpo", "ppo") or pilot.config.backend != "trl":
            raise RecipeError(f"{where}: pilot {s.pilot} trains with {pilot.config.method} on {pilot.config.backend}, "
                              "which logs no per-question rewards; a pilot is a GRPO or PPO policy on the TRL path")  # fmt: skip


def _policies(raw: dict[str, Any], path: Path, selection_names: list[str]) -> tuple[list[Policy], str | None, str]:
    """The policies to train, the training launcher, and the base model."""
    train_values = _mapping(raw.get("train"), f"{path}: train")
    policy_values = train_values.pop("policies", None)
    if policy_values is not None:
        policy_values = _mapping(policy_values, f"{path}: train.policies")
    launch = _command(train_values.pop("launch", None), f"{path}: train.launch")
    for key in ("train_file", "output_dir"):
        if key in train_values:
            raise RecipeError(f"{path}: train.{key} is set by the study (run_dir/select/..., run_dir/train/...)")
    if policy_values is None:  # one policy per selection, with the common settings
        policy_values = {name: {"selection": name} for name in selection_names}
    policies = []
    for name, entry in policy_values.items():
        entry = _mapping(entry, f"{path}: train.policies.{name}")
        selection = entry.pop("selection", None)
        if selection not in selection_names:
            raise RecipeError(
                f"{path}: train.policies.{name}: selection {selection!r} is not in the select section "
                f"({', '.join(selection_names) or 'empty'})"
            )
        for key in ("train_file", "output_dir"):
            if key in entry:
                raise RecipeError(f"{path}: train.policies.{name}.{key} is set by the study")
        where = f"{path}: train.policies.{name}"
        config = _build(TrainConfig, {**train_values, **entry}, where)
        try:
            check_backend(config)  # a bad verl setting fails here, before anything runs (and in --plan)
        except UserError as e:
            raise RecipeError(f"{where}: {e}") from None
        policies.append(Policy(str(name), selection, config))
    if "base" in {p.name for p in policies}:
        raise RecipeError(f"{path}: train.policies: 'base' is the name of the untrained model; pick another")
    return policies, launch, str(train_values.get("model") or TrainConfig.model)


def _evals(raw: dict[str, Any], path: Path, base_url: str | None) -> tuple[list[EvalEntry], bool, str | None]:
    """The evaluations, whether the base model is evaluated, and the server command."""
    eval_values = _mapping(raw.get("eval"), f"{path}: eval")
    benchmarks = eval_values.pop("benchmarks", None) or ["medqa", "mmlu:medical"]
    if isinstance(benchmarks, str):  # one benchmark, or several comma-separated as on the command line
        benchmarks = [b.strip() for b in benchmarks.split(",") if b.strip()]
    benchmarks = _typed(benchmarks, list, f"{path}: eval.benchmarks")
    eval_base = _typed(eval_values.pop("base", True), bool, f"{path}: eval.base")
    eval_serve = _command(eval_values.pop("serve", None), f"{path}: eval.serve")
    evals = []
    for i, item in enumerate(benchmarks):
        where = f"{path}: eval.benchmarks[{i}]"
        item = {"benchmark": item} if isinstance(item, str) else _mapping(item, where)
        bench = _typed(item.pop("benchmark", None), str | None, f"{where}.benchmark")
        if not bench:
            raise RecipeError(f"{where}: an entry without 'benchmark' (NAME[:SUBJECTS], e.g. mmlu:medical)")
        label = _typed(item.pop("name", None), str | None, f"{where}.name") or ""
        given = BenchmarkSpec.parse(bench).mode  # NAME@generate
        if given and item.setdefault("mode", given) != given:
            raise RecipeError(f"{where}: {bench!r} says mode {given} but the entry sets mode {item['mode']!r}")
        config = _build(
            EvalConfig, {**eval_values, **item}, f"{path}: eval ({bench})", drop=("model",), fixed={"model": "-"}
        )
        try:
            config.check_probes()
        except UserError as e:
            raise RecipeError(f"{path}: eval ({bench}): {e}") from None
        config.engine_options = key_policy(config, f"{path}: eval", base_url, bool(eval_serve))
        if config.judge_model:  # the open-form judge's server: the same rule for the key
            config.judge_options = key_policy(config, f"{path}: eval", base_url, False, "judge_options", "openai")
        evals.append(EvalEntry(bench, config, label))
    names = [e.name for e in evals]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise RecipeError(f"{path}: eval.benchmarks: {twice!r} twice; give one entry a distinct 'name'")
    return evals, eval_base, eval_serve


def _check_names(
    path: Path,
    filters: list[FilterEntry],
    selections: list[SelectEntry],
    policies: list[Policy],
    evals: list[EvalEntry],
) -> None:
    """Every name that becomes a folder of the run directory is one folder name (no path, nothing hidden) and no two
    of one kind share a folder (case ignored, as some file systems do): one line naming the recipe key."""
    try:
        for kind, names in (
            ("filter", {f"{path}: filter[{i}].name": f.name for i, f in enumerate(filters)}),
            ("selection", {f"{path}: select.{s.name}": s.name for s in selections}),
            ("policy", {f"{path}: train.policies.{p.name}": p.name for p in policies}),
            ("eval", {f"{path}: eval.benchmarks[{i}]": e.spec.folder for i, e in enumerate(evals)}),
        ):
            for where, name in names.items():
                check_name(name, where)
            check_distinct(names, kind)
    except UserError as e:
        raise RecipeError(str(e)) from None


def load_recipe(
    path: str | Path,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    run_dir: str | None = None,
    base_url: str | None = None,
) -> Recipe:
    """Read, override and validate a recipe. No data is read and no model is loaded. ``base_url`` is the
    OpenAI-compatible server the user named on the command line (the only address, with $OPENAI_BASE_URL, that
    gets the API key)."""
    path = Path(path)
    raw, applied = _read(path, overrides, data_dir)
    try:
        raw, arms = expand(raw)  # seeds, controls and sweeps become ordinary selections and policies
    except UserError as e:
        raise RecipeError(f"{path}: {e}") from None
    data = _build(DataSection, _mapping(raw.get("data"), f"{path}: data"), f"{path}: data")
    filters = _filters(raw, path, base_url)
    selections = _selections(raw, path, filters)
    policies, launch, base_model = _policies(raw, path, [s.name for s in selections])
    evals, eval_base, eval_serve = _evals(raw, path, base_url)
    _check_names(path, filters, selections, policies, evals)
    _check_pilots(path, selections, policies, data.pool_limit)
    if policies and evals and evals[0].config.engine == "llamacpp":
        raise RecipeError(
            f"{path}: eval.engine llamacpp cannot load a trained LoRA adapter; use transformers or openai"
        )
    if policies and eval_serve and not all(p.config.merge or not p.config.lora for p in policies):
        raise RecipeError(f"{path}: eval through a server needs merged policies: set train.merge: true")
    if data.decontaminate is None:
        data.decontaminate = list(dict.fromkeys(e.benchmark for e in evals))
    name = _typed(raw.get("name"), str | None, f"{path}: name") or path.stem
    recipe_run_dir = _typed(raw.get("run_dir"), str | None, f"{path}: run_dir")
    return Recipe(
        name=name, run_dir=Path(run_dir or recipe_run_dir or Path("runs") / name), data=data, filters=filters,
        selections=selections, policies=policies, base_model=base_model, evals=evals, eval_base=eval_base,
        eval_serve=eval_serve, train_launch=launch, report=_mapping(raw.get("report"), f"{path}: report"),
        source=str(path), raw=raw, without_data_dir_applied=applied, arms=arms,
    )  # fmt: skip
