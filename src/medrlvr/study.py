"""A whole study from one recipe: ``medrlvr run RECIPE.yaml``.

filter (one label set per filter model) -> decontaminate -> select (one training set per selection) -> train (one
policy per entry) -> evaluate (the base model and every policy on every benchmark) -> report.

Caching. Every stage writes ``stage.json`` in its output folder with a *key*: the hash of the stage's settings
and of the **content** of its inputs (the pool's questions, the labels file, the training file, the adapter's
weights, the result files). A stage whose finished marker has the same key, and whose outputs exist, is skipped.
An unfinished stage with the same key resumes (filter and eval from their per-question stores, training from its
last checkpoint), so a rerun after a crash continues where it stopped. A stage whose key changed starts over.
Because keys follow content, a change upstream that leaves a stage's inputs as they were does not rerun it.

Nothing finished is deleted before it is replaced. A stage whose key changed first moves its old output to
``RUN/.previous/STAGE/NAME`` and deletes it only when the new run is done; a run that fails or is interrupted leaves
it there, and a run with the old settings put back takes it back instead of recomputing. Before any stage runs,
the recipe's settings are checked (types, ranges, placeholders) and its model references resolved, so a typo
stops the study with one line naming the recipe key.

Commands. ``serve`` and ``train.launch`` run programs the recipe names. ``--plan`` lists every such command, and
a study runs them only with ``allow_commands=True`` (``medrlvr run --allow-commands``) or once the user has
confirmed exactly these commands (``medrlvr run`` asks at a terminal and remembers the sha256 of the command list
in the cache directory; a changed command asks again). An OpenAI-compatible server at an address the recipe chose
gets no API key unless the user configured the same address (``--base-url`` or ``$OPENAI_BASE_URL``), and a recipe
cannot choose which environment variable is sent as the key.

The run directory (``runs/NAME``) holds ``manifest.json``: the resolved recipe, data hashes, library versions, the
project commit, and each stage's status, time and the process's peak memory so far.

A recipe is YAML with the sections ``name``, ``run_dir``, ``data``, ``filter``, ``select``, ``train``, ``eval``,
``report`` and ``without_data_dir`` (dotted overrides applied when no data directory is set, e.g. to use the
bundled demo questions); ``recipes/demo-cpu.yaml`` documents every key.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import build, checked
from .data import DataError, load_benchmark, load_eval_spec, load_pool, resolve_data_dir
from .evaluate import EvalConfig, eval_dir
from .filter import FilterConfig
from .models import slug
from .records import Record
from .select import SelectConfig
from .store import write_json
from .train import TrainConfig

LIBRARIES = (
    "medrlvr", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "safetensors",
    "gguf", "llama_cpp_python", "vllm", "deepspeed", "numpy", "pyarrow", "matplotlib",
)  # fmt: skip
SECTIONS = (
    "name",
    "description",
    "run_dir",
    "data",
    "filter",
    "select",
    "train",
    "eval",
    "report",
    "without_data_dir",
)


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the recipe file and the key."""


class StageError(RuntimeError):
    """A stage's child process (a training launcher) failed; its own output says why."""


class CommandsNotAllowed(RecipeError):
    """The recipe runs commands the user has not allowed; the message lists them."""


# --- recipe -------------------------------------------------------------------------------------------------


@dataclass
class DataSection:
    pool: str = "medmcqa:dev"  # NAME[:SPLIT] or a JSONL of records; never a test split
    pool_limit: int | None = None  # the first N questions of the pool, in pool order (None: all)
    decontaminate: list[str] | None = None  # eval sets to drop 8-gram overlaps with; None: the eval benchmarks
    data_dir: str | None = None  # default: --data-dir or $MEDRLVR_DATA_DIR

    def __post_init__(self) -> None:
        if not self.pool.strip():
            raise ValueError("setting 'pool' is empty; give NAME[:SPLIT] (e.g. medmcqa:dev) or a JSONL file")
        if self.pool_limit is not None and self.pool_limit < 1:
            raise ValueError(f"setting 'pool_limit' must be at least 1 (leave it out for all), got {self.pool_limit}")


@dataclass
class FilterEntry:
    name: str
    config: FilterConfig
    serve: str | None = None  # a command that starts a server for this model (engine: openai)


@dataclass
class SelectEntry:
    name: str
    config: SelectConfig
    filter: str | None = None  # whose labels (a filter's name); needed by ratio and band


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

    def __post_init__(self) -> None:
        self.name = self.name or (self.benchmark + ("@generate" if self.config.mode == "generate" else ""))


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
    without_data_dir_applied: bool = False

    @property
    def model_names(self) -> list[str]:
        """The evaluated models' names: ``base`` (the untrained model) and the policies."""
        return (["base"] if self.eval_base else []) + [p.name for p in self.policies]


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str] | dict[str, Any], where: str) -> dict[str, Any]:
    """Set ``section.key=value`` items (values read as YAML) in a copy of ``raw``."""
    out = json.loads(json.dumps(raw))
    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise RecipeError(f"{where}: override {item!r} is not section.key=value")
            parsed.append((key.strip(), _parse_value(value)))
        items = parsed
    for key, value in items:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if node is None:
                raise RecipeError(f"{where}: override {key!r}: no such place in the recipe")
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"{where}: override {key!r}: no such place in the recipe")
    return out


def _build(cls, values: Any, where: str, drop: Sequence[str] = (), fixed: dict[str, Any] | None = None):
    return build(cls, values, where, drop, fixed, error=RecipeError)


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


DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/")


def _key_policy(config: FilterConfig | EvalConfig, where: str, user_base_url: str | None, served: bool) -> dict:
    """The engine options a study uses. The API key (``$OPENAI_API_KEY``) goes only to an address the user chose:
    ``--base-url`` or ``$OPENAI_BASE_URL``. A ``base_url`` from the recipe (or the local address of a server the
    recipe starts) that is not one of them gets no key, so a recipe cannot send the key where it likes."""
    options = dict(config.engine_options)
    if "api_key_env" in options:
        raise RecipeError(
            f"{where}.engine_options.api_key_env: a recipe may not choose which environment variable is sent as the "
            "API key; the key is $OPENAI_API_KEY, sent only to --base-url or $OPENAI_BASE_URL"
        )
    if config.engine != "openai":
        return options
    if served:  # the engine talks to the server the study starts, not to $OPENAI_BASE_URL
        options.setdefault("base_url", DEFAULT_BASE_URL)
    if user_base_url:
        options.setdefault("base_url", user_base_url)
    if "base_url" in options:
        url = _typed(options["base_url"], str, f"{where}.engine_options.base_url")
        trusted = {_normal_url(u) for u in (user_base_url, os.environ.get("OPENAI_BASE_URL")) if u}
        if _normal_url(url) not in trusted:
            options["api_key_env"] = None  # the engine then sends no Authorization header
    return options


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
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecipeError(f"{path}: line {mark.line + 1 if mark else '?'}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections ({', '.join(SECTIONS)})")
    unknown = sorted(k for k in raw if k not in SECTIONS)
    if unknown:
        raise RecipeError(f"{path}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    given = apply_overrides(raw, overrides, str(path))
    if data_dir is not None:
        given.setdefault("data", {})["data_dir"] = data_dir
    fallback = _mapping(raw.get("without_data_dir"), f"{path}: without_data_dir")
    applied = bool(fallback) and resolve_data_dir((given.get("data") or {}).get("data_dir"), required=False) is None
    if applied:  # the recipe's own fallback first, then what the user overrode on top of it
        raw = apply_overrides(apply_overrides(raw, fallback, f"{path}: without_data_dir"), overrides, str(path))
    else:
        raw = given
    unknown = sorted(k for k in raw if k not in SECTIONS)
    if unknown:
        raise RecipeError(f"{path}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    data = _build(DataSection, _mapping(raw.get("data"), f"{path}: data"), f"{path}: data")

    filters = []
    for i, entry in enumerate(_typed(raw.get("filter") or [], list, f"{path}: filter")):
        entry = _mapping(entry, f"{path}: filter[{i}]")
        name = _typed(entry.pop("name", None), str | None, f"{path}: filter[{i}].name")
        name = name or slug(str(entry.get("model", "")))
        serve = _command(entry.pop("serve", None), f"{path}: filter[{i}].serve")
        config = _build(FilterConfig, entry, f"{path}: filter[{i}] ({name})")
        config.engine_options = _key_policy(config, f"{path}: filter[{i}]", base_url, bool(serve))
        filters.append(FilterEntry(name, config, serve))
    if len({f.name for f in filters}) != len(filters):
        raise RecipeError(f"{path}: filter: two filters with the same name; give each a distinct 'name'")
    filter_names = {f.name for f in filters} | {f.config.model for f in filters}

    selections = []
    for name, entry in _mapping(raw.get("select"), f"{path}: select").items():
        entry = _mapping(entry, f"{path}: select.{name}")
        whose = entry.pop("filter", None)
        config = _build(SelectConfig, entry, f"{path}: select.{name}", drop=("decontaminate",))
        if config.strategy != "random" and not whose:
            raise RecipeError(f"{path}: select.{name}: strategy {config.strategy} needs 'filter' (whose labels)")
        if whose and whose not in filter_names:
            raise RecipeError(f"{path}: select.{name}: filter {whose!r} is not in the filter section")
        if whose:
            whose = next(f.name for f in filters if whose in (f.name, f.config.model))
        selections.append(SelectEntry(str(name), config, whose))
    selection_names = [s.name for s in selections]

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
        config = _build(TrainConfig, {**train_values, **entry}, f"{path}: train.policies.{name}")
        policies.append(Policy(str(name), selection, config))
    base_model = str(train_values.get("model") or TrainConfig.model)
    if "base" in {p.name for p in policies}:
        raise RecipeError(f"{path}: train.policies: 'base' is the name of the untrained model; pick another")

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
        config = _build(
            EvalConfig, {**eval_values, **item}, f"{path}: eval ({bench})", drop=("model",), fixed={"model": "-"}
        )
        config.engine_options = _key_policy(config, f"{path}: eval", base_url, bool(eval_serve))
        evals.append(EvalEntry(bench, config, label))
    names = [e.name for e in evals]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise RecipeError(f"{path}: eval.benchmarks: {twice!r} twice; give one entry a distinct 'name'")
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
        name=name,
        run_dir=Path(run_dir or recipe_run_dir or Path("runs") / name),
        data=data,
        filters=filters,
        selections=selections,
        policies=policies,
        base_model=base_model,
        evals=evals,
        eval_base=eval_base,
        eval_serve=eval_serve,
        train_launch=launch,
        report=_mapping(raw.get("report"), f"{path}: report"),
        source=str(path),
        raw=raw,
        without_data_dir_applied=applied,
    )


# --- hashing and environment --------------------------------------------------------------------------------


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def records_hash(records: Sequence[Record]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_hash(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in LIBRARIES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            continue
    return out


def project_commit() -> dict[str, Any] | None:
    """The git commit of the medrlvr source tree, and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(dirty)}


def release_memory() -> None:
    """Hand the memory a finished stage freed back to the operating system. glibc keeps freed heap pages for reuse,
    and a stage's tensors leave them too fragmented to serve the next stage's: measured on the CPU demo, the study's
    resident memory stayed 3 GB above what was alive after training and the evaluations stacked their own peak on
    top (7.3 GB in all); with ``malloc_trim`` after each stage the whole study peaks at the training stage's 4.7."""
    import ctypes

    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _without(config: Any, *names: str) -> dict[str, Any]:
    values = asdict(config)
    for name in names:
        values.pop(name, None)
    return values


# --- commands a recipe runs -----------------------------------------------------------------------------------


def recipe_commands(recipe: Recipe) -> list[str]:
    """Every program the recipe runs, written as it will run (servers for filter models and evaluated models, the
    training launcher per policy)."""
    commands = [f.serve.format(model=f.config.model) for f in recipe.filters if f.serve]
    if recipe.eval_serve:
        refs = [recipe.base_model] if recipe.eval_base else []
        for p in recipe.policies:  # a server loads the merged policy (or the fully trained model)
            final = "merged" if p.config.lora or p.config.qlora else "model"
            refs.append(str(recipe.run_dir / "train" / p.name / final))
        commands += [recipe.eval_serve.format(model=ref) for ref in refs]
    if recipe.train_launch:
        for p in recipe.policies:
            if getattr(p.config, "backend", "trl") != "verl":  # verl starts its own processes
                path = recipe.run_dir / "train" / p.name / "study_train.yaml"
                commands.append(f"{recipe.train_launch} -m medrlvr.cli train --config {path}")
    return list(dict.fromkeys(commands))


def _trust_file() -> Path:
    from .models import cache_dir

    return cache_dir() / "trusted-commands.json"


def commands_digest(commands: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(commands).encode()).hexdigest()


def commands_trusted(commands: Sequence[str]) -> bool:
    """Whether the user has confirmed exactly these commands before."""
    path = _trust_file()
    try:
        trusted = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return False
    return isinstance(trusted, dict) and commands_digest(commands) in trusted


def trust_commands(commands: Sequence[str], recipe: str) -> None:
    """Remember that the user confirmed these exact commands (keyed by their sha256)."""
    path = _trust_file()
    try:
        trusted = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        trusted = {}
    trusted[commands_digest(commands)] = {"recipe": recipe, "commands": list(commands), "confirmed": _now()}
    write_json(path, trusted)


# --- stage folders ------------------------------------------------------------------------------------------


def _marker(folder: Path) -> dict[str, Any] | None:
    path = folder / "stage.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:  # torn by a crash: the folder's state is unknown, as if unmarked
        return None


def _finished(marker: dict[str, Any] | None, key: str | None = None) -> bool:
    return bool(marker) and marker.get("status") == "done" and (key is None or marker.get("key") == key)


def _set_aside(out: Path, kept: Path) -> None:
    """Move a finished stage folder to ``kept`` (a rename: nothing is copied), replacing an older one there."""
    if kept.exists():
        shutil.rmtree(kept)
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out, kept)


def _swap_back(out: Path, kept: Path, keep_displaced: bool) -> None:
    """Put ``kept`` back at ``out``; what was at ``out`` is kept in its place if finished, else removed."""
    swap = kept.with_name(kept.name + ".swap")
    if out.exists():
        os.replace(out, swap)
    os.replace(kept, out)
    if swap.exists():
        if keep_displaced:
            os.replace(swap, kept)
        else:
            shutil.rmtree(swap)


def _finish_swap(out: Path, kept: Path) -> None:
    """Settle a :func:`_swap_back` that a kill interrupted: before ``kept`` moved, undo it; after, keep both."""
    swap = kept.with_name(kept.name + ".swap")
    if not swap.exists():
        return
    if not kept.exists():
        os.replace(swap, kept)
    elif not out.exists():
        os.replace(swap, out)
    else:
        shutil.rmtree(swap)


def _prune(folder: Path, root: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``root``."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


# --- the study ----------------------------------------------------------------------------------------------


class Study:
    """Runs a recipe's stages in order, skipping what is done; ``run()`` returns the run directory."""

    def __init__(
        self,
        recipe: Recipe,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        allow_commands: bool = False,
    ):
        self.recipe = recipe
        self.allow_commands = allow_commands
        self.run_dir = recipe.run_dir
        self.progress = progress
        self.log = log or (lambda line: print(line, flush=True))
        self.stages: list[dict[str, Any]] = []
        self.manifest: dict[str, Any] = {}
        self.started = time.perf_counter()

    # -- stage bookkeeping --

    def _stage(
        self,
        kind: str,
        name: str,
        out: Path,
        inputs: dict[str, Any],
        outputs: Sequence[str],
        fn,
        reuse: Sequence[str] = (),
    ) -> str:
        """Run ``fn`` unless ``out`` holds a finished stage with the same key. ``reuse`` names inputs that may change
        while what is on disk stays valid (the eval subsample: predictions are per question), so the stage reruns
        over its old outputs instead of starting over.

        A finished output is never deleted before its replacement is done: when the key changed it is moved to
        ``RUN/.previous/...`` and deleted after ``fn`` returns. If ``fn`` fails or is interrupted it stays there,
        and a later call whose key matches it (the old settings put back) moves it back instead of recomputing."""
        key = _hash({"stage": kind, **inputs})
        store_key = _hash({"stage": kind, **{k: v for k, v in inputs.items() if k not in reuse}})
        marker = out / "stage.json"
        previous = _marker(out)
        label = f"{kind} {name}".strip()
        if _finished(previous, key) and all((out / o).exists() for o in outputs):
            self._record(kind, name, out, key, "cached", 0.0)
            self.log(f"[{label}] cached ({out})")
            return "cached"
        kept = self.run_dir / ".previous" / out.relative_to(self.run_dir)
        _finish_swap(out, kept)
        if _finished(_marker(kept), key) and all((kept / o).exists() for o in outputs):
            _swap_back(out, kept, keep_displaced=_finished(previous))
            _prune(kept.parent, self.run_dir)
            self._record(kind, name, out, key, "restored", 0.0)
            self.log(f"[{label}] settings as before: took back the finished output from {kept}")
            return "restored"
        resumed = bool(previous and previous.get("store_key") == store_key)
        if previous and not resumed:
            if _finished(previous):
                _set_aside(out, kept)
                self.log(f"[{label}] inputs or settings changed: recomputing (the old output waits in {kept})")
            else:  # an unfinished run of settings no longer asked for; the last finished output stays kept
                shutil.rmtree(out)
                self.log(f"[{label}] inputs or settings changed: recomputing")
        out.mkdir(parents=True, exist_ok=True)
        state = {"stage": kind, "name": name, "key": key, "store_key": store_key, "inputs": inputs}
        write_json(marker, {**state, "status": "running", "started": _now()})
        self.log(f"[{label}] {'continuing' if resumed else 'running'} -> {out}")
        started = time.perf_counter()
        try:
            fn()
        except BaseException:
            release_memory()
            if kept.exists():
                self.log(f"[{label}] stopped; the previous output is kept in {kept} (the old settings take it back)")
            raise
        seconds = round(time.perf_counter() - started, 1)
        release_memory()
        write_json(
            marker, {**state, "status": "done", "finished": _now(), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}
        )
        if kept.exists():  # replaced: only now is the old output removed
            shutil.rmtree(kept)
            _prune(kept.parent, self.run_dir)
        status = "ran" if not resumed else "resumed" if previous.get("key") == key else "updated"
        self._record(kind, name, out, key, status, seconds)
        self.log(f"[{label}] done in {seconds:.1f} s (peak memory so far {peak_rss_mb():.0f} MB)")
        return "ran"

    def _record(self, kind: str, name: str, out: Path, key: str, status: str, seconds: float) -> None:
        where = str(out.relative_to(self.run_dir))
        self.stages.append(
            {
                "stage": kind,
                "name": name,
                "dir": where,
                "key": key[:16],
                "status": status,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
        self._write_manifest()

    def _write_manifest(self, finished: bool = False) -> None:
        self.manifest.update(
            stages=self.stages,
            status="finished" if finished else "running",
            wall_seconds=round(time.perf_counter() - self.started, 1),
            peak_rss_mb=peak_rss_mb(),
            **({"finished": _now()} if finished else {}),
        )
        write_json(self.run_dir / "manifest.json", self.manifest)

    # -- data --

    def _load_data(self) -> None:
        r = self.recipe
        data_dir = r.data.data_dir
        root = resolve_data_dir(data_dir, required=False)
        pool = load_pool(r.data.pool, data_dir)
        self.pool = list(pool[: r.data.pool_limit] if r.data.pool_limit else pool)
        if not self.pool:
            raise DataError(f"the pool {r.data.pool} is empty")
        self.eval_sets = {e.benchmark: load_eval_spec(e.benchmark, data_dir) for e in r.evals}
        self.decontam_sets = {
            spec: self.eval_sets.get(spec) or load_eval_spec(spec, data_dir) for spec in r.data.decontaminate or []
        }
        self.pool_hash = records_hash(self.pool)
        self.eval_hashes = {spec: records_hash(rs) for spec, rs in self.eval_sets.items()}
        self.fewshot = {  # the dev split of each benchmark evaluated few-shot
            e.benchmark: load_benchmark(e.benchmark.split(":")[0], "dev", data_dir)
            for e in r.evals
            if e.config.num_fewshot
        }
        self.manifest.update(
            recipe=r.source,
            name=r.name,
            started=_now(),
            resolved=r.raw,
            without_data_dir_applied=r.without_data_dir_applied,
            data={
                "data_dir": str(root.resolve()) if root else None,
                "source": f"data directory {root.resolve()}" if root else "medrlvr's bundled demo sample",
                "pool": {
                    "spec": r.data.pool,
                    "limit": r.data.pool_limit,
                    "questions": len(self.pool),
                    "sha256": self.pool_hash,
                },
                "eval": {s: {"questions": len(rs), "sha256": self.eval_hashes[s]} for s, rs in self.eval_sets.items()},
                "decontaminate": list(self.decontam_sets),
            },
            versions=library_versions(),
            commit=project_commit(),
            command=" ".join(sys.argv),
        )

    # -- stages --

    def _filters(self) -> None:
        from .filter import filter_pool

        for entry in self.recipe.filters:
            out = self.run_dir / "filter" / entry.name
            inputs = {"config": _without(entry.config, "engine_options"), "pool": self.pool_hash}

            def work(entry=entry, out=out):
                with self._served(entry.serve, entry.config.model, entry.config.engine_options, out):
                    filter_pool(self.pool, entry.config, out, progress=self.progress)

            self._stage("filter", entry.name, out, inputs, ["labels.jsonl", "stats.json"], work)

    def _selections(self) -> None:
        from .decontam import decontaminate
        from .filter import load_labels
        from .select import select, write_selection

        evals = [r for records in self.decontam_sets.values() for r in records]
        kept, dropped = decontaminate(self.pool, evals) if evals else (self.pool, [])
        self.manifest["data"]["decontamination"] = {"kept": len(kept), "dropped": len(dropped)}
        write_json(
            self.run_dir / "data" / "decontamination.json",
            {"against": list(self.decontam_sets), "pool": len(self.pool), "kept": len(kept), "dropped": dropped},
        )
        kept_hash = records_hash(kept)
        for entry in self.recipe.selections:
            out = self.run_dir / "select" / entry.name
            config = SelectConfig(**{**asdict(entry.config), "decontaminate": list(self.decontam_sets)})
            labels_file = self.run_dir / "filter" / entry.filter / "labels.jsonl" if entry.filter else None
            inputs = {
                "config": asdict(config),
                "pool": kept_hash,
                "labels": file_hash(labels_file) if labels_file else None,
            }

            def work(entry=entry, out=out, config=config):
                labels = load_labels(out.parent.parent / "filter" / entry.filter) if entry.filter else None
                chosen = select(kept, labels, config)
                write_selection(chosen, labels, dropped, config, out, parquet=bool(self.recipe.report.get("parquet")))

            self._stage("select", entry.name, out, inputs, ["train.jsonl", "stats.json"], work)

    def _trainings(self) -> None:
        from .train import train

        for policy in self.recipe.policies:
            out = self.run_dir / "train" / policy.name
            train_file = self.run_dir / "select" / policy.selection / "train.jsonl"
            config = TrainConfig(**{**asdict(policy.config), "train_file": str(train_file), "output_dir": str(out)})
            inputs = {"config": _without(config, "train_file", "output_dir"), "train_file": file_hash(train_file)}
            final = "adapter" if config.lora or config.qlora else "model"

            def work(config=config, out=out):
                if config.backend == "verl":  # verl starts its own processes (Ray), never under train.launch
                    from .verl_backend import train as verl_train

                    verl_train(config, data_dir=self.recipe.data.data_dir)
                elif self.recipe.train_launch:  # e.g. accelerate launch: one process per GPU, in a child process
                    import shlex

                    import yaml

                    path = out / "study_train.yaml"
                    path.write_text(yaml.safe_dump({"train": asdict(config)}, sort_keys=False))
                    command = [*shlex.split(self.recipe.train_launch), "-m", "medrlvr.cli", "train", "--config"]
                    self.log(f"[train {config.output_dir}] {' '.join(command)} {path}")
                    code = subprocess.run([*command, str(path)]).returncode
                    if code:
                        raise StageError(
                            f"training {out.name} failed: `{' '.join(command)} {path}` exited with {code}"
                        )
                else:
                    train(config)
                gc.collect()

            self._stage("train", policy.name, out, inputs, [final], work)

    def _models(self) -> list[tuple[str, str, str]]:
        """(name, model reference, fingerprint) of every model to evaluate."""
        models = []
        if self.recipe.eval_base:
            models.append(("base", self.recipe.base_model, self.recipe.base_model))
        for policy in self.recipe.policies:
            out = self.run_dir / "train" / policy.name
            # Both backends leave this layout: verl's export is moved here by verl_backend.collect.
            if policy.config.lora or policy.config.qlora:
                weights = out / "adapter"
                fingerprint = file_hash(weights / "adapter_model.safetensors")
                ref = out / "merged" if self.recipe.eval_serve and (out / "merged").exists() else weights
            else:
                ref = weights = out / "model"
                fingerprint = _hash(sorted((p.name, file_hash(p)) for p in weights.glob("*.safetensors")))
            models.append((policy.name, str(ref), fingerprint))
        return models

    def _evaluations(self) -> None:
        from .engines import get_engine
        from .evaluate import evaluate

        for name, ref, fingerprint in self._models():
            with contextlib.ExitStack() as stack:
                engine_box: dict[str, Any] = {}

                def engine_for(config: EvalConfig, ref=ref, stack=stack, engine_box=engine_box, name=name):
                    if "engine" not in engine_box:  # loaded once per model, only if some benchmark needs it
                        log_dir = self.run_dir / "eval" / name
                        stack.enter_context(self._served(self.recipe.eval_serve, ref, config.engine_options, log_dir))
                        engine_box["engine"] = get_engine(config.engine, ref, **config.engine_options)
                        stack.callback(engine_box["engine"].close)
                    return engine_box["engine"]

                for entry in self.recipe.evals:
                    config = EvalConfig(**{**asdict(entry.config), "model": ref})
                    records = self.eval_sets[entry.benchmark]
                    shots = self.fewshot.get(entry.benchmark, [])
                    out = eval_dir(self.run_dir, name, entry.name)
                    inputs = {
                        "config": _without(config, "model", "engine_options", "chunk_size", "limit", "seed"),
                        "subsample": {"limit": config.limit, "seed": config.seed},
                        "model": fingerprint,
                        "benchmark": entry.benchmark,
                        "records": self.eval_hashes[entry.benchmark],
                        "fewshot": records_hash(shots) if shots else None,
                    }

                    def work(config=config, records=records, out=out, entry=entry, shots=shots, fp=fingerprint):
                        engine = engine_for(config)
                        evaluate(
                            records,
                            config,
                            out,
                            entry.name,
                            shots,
                            engine=engine,
                            progress=self.progress,
                            fingerprint=fp,
                        )

                    self._stage("eval", f"{name} {entry.name}", out, inputs, ["results.json"], work, ("subsample",))
            gc.collect()

    def _report(self) -> None:
        from .report import report

        names = self.recipe.model_names
        benchmarks = [e.name for e in self.recipe.evals]
        results = [eval_dir(self.run_dir, n, b) / "results.json" for n in names for b in benchmarks]
        out = self.run_dir / "report"
        inputs = {
            "results": {str(p.relative_to(self.run_dir)): file_hash(p) for p in results if p.exists()},
            "metrics": {
                p.name: file_hash(self.run_dir / "train" / p.name / "metrics.jsonl") for p in self.recipe.policies
            },
            "settings": self.recipe.report,
            "models": names,
        }
        baseline = "base" if self.recipe.eval_base else None
        title = f"medrlvr study: {self.recipe.name}"

        def work():
            report(self.run_dir, out, models=names, baseline=baseline, title=title, benchmarks=benchmarks)

        self._stage("report", "", out, inputs, ["index.html", "table1.md"], work)

    @contextlib.contextmanager
    def _served(self, command: str | None, model: str, engine_options: dict[str, Any], log_dir: Path):
        if not command:
            yield
            return
        from .engines.server import served

        base_url = engine_options.get("base_url") or DEFAULT_BASE_URL
        with served(command.format(model=model), base_url, log_path=log_dir / "server.log"):
            yield

    def _check_commands(self) -> None:
        commands = recipe_commands(self.recipe)
        if commands and not self.allow_commands and not commands_trusted(commands):
            listed = "; ".join(f"`{c}`" for c in commands)
            raise CommandsNotAllowed(
                f"{self.recipe.source or self.recipe.name}: this recipe runs commands: {listed}. Check them "
                "(medrlvr run RECIPE --plan) and run with --allow-commands, or confirm them at a terminal"
            )

    def _check_models(self) -> None:
        """Resolve every model reference the recipe names before any stage runs (and so before any output is
        set aside): a typo is one line naming the recipe key, not a failed stage."""
        from .models import ModelError, resolve

        r = self.recipe
        checks = [(f"filter[{i}].model", f.config.model) for i, f in enumerate(r.filters)
                  if f.config.engine != "openai"]  # fmt: skip
        train = r.raw.get("train") if isinstance(r.raw.get("train"), dict) else {}
        own = train.get("policies") if isinstance(train.get("policies"), dict) else {}
        for p in r.policies:
            entry = own.get(p.name)
            checks.append((f"train.policies.{p.name}.model" if isinstance(entry, dict) and "model" in entry
                           else "train.model", p.config.model))  # fmt: skip
        if r.eval_base and r.evals and r.evals[0].config.engine != "openai":
            checks.append(("train.model (the base model, evaluated)", r.base_model))
        for where, ref in dict.fromkeys(checks):
            try:
                resolve(ref)
            except ModelError as e:
                raise RecipeError(f"{r.source or r.name}: {where}: {e}") from None

    def run(self) -> Path:
        self._check_commands()
        self._check_models()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._load_data()
        self._write_manifest()
        self._filters()
        self._selections()
        self._trainings()
        self._evaluations()
        self._report()
        self._write_manifest(finished=True)
        return self.run_dir


def plan(recipe: Recipe) -> list[str]:
    """The stages a recipe runs, in order (no data read, no model loaded)."""
    limit = f" (first {recipe.data.pool_limit})" if recipe.data.pool_limit else ""
    lines = [f"run directory: {recipe.run_dir}", f"pool: {recipe.data.pool}{limit}"]
    lines += [f"filter {f.name}: {f.config.model} via {f.config.engine}, k={f.config.k}" for f in recipe.filters]
    lines.append(f"decontaminate against: {', '.join(recipe.data.decontaminate or []) or 'nothing'}")
    for s in recipe.selections:
        c = s.config
        what = {"random": f"n={c.n}", "ratio": f"hard={c.hard} easy={c.easy}", "band": f"[{c.lo}, {c.hi}] n={c.n}"}
        lines.append(f"select {s.name}: {c.strategy} {what[c.strategy]}" + (f" by {s.filter}" if s.filter else ""))
    for p in recipe.policies:
        c = p.config
        steps = f"max_steps={c.max_steps}" if c.max_steps > 0 else f"epochs={c.num_train_epochs}"
        lines.append(f"train {p.name}: {c.method} on select/{p.selection}, {c.model}, {steps}")
    names = recipe.model_names
    for e in recipe.evals:
        c = e.config
        lines.append(f"eval {e.name}: {c.mode}, limit={c.limit}, engine={c.engine} for {', '.join(names)}")
    lines.append("report: table1.md/csv/tex, charts, index.html")
    commands = recipe_commands(recipe)
    if commands:
        trusted = "confirmed before" if commands_trusted(commands) else "needs --allow-commands or a confirmation"
        lines.append(f"commands this recipe runs ({trusted}):")
        lines += [f"  {c}" for c in commands]
    else:
        lines.append("commands this recipe runs: none")
    return lines


def run_study(
    recipe: str | Path | Recipe,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    run_dir: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    allow_commands: bool = False,
    base_url: str | None = None,
) -> Path:
    """Run (or continue) a study; returns its run directory. A recipe that runs commands (``serve``,
    ``train.launch``) needs ``allow_commands=True`` unless the user confirmed these exact commands before;
    ``base_url`` is the OpenAI-compatible server the user chose (it, and $OPENAI_BASE_URL, get the API key)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides, data_dir=data_dir, run_dir=run_dir, base_url=base_url)
    return Study(recipe, progress=progress, log=log, allow_commands=allow_commands).run()
