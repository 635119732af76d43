"""A whole study from one recipe: ``medrlvr run RECIPE.yaml``.

filter (one label set per filter model) -> decontaminate -> select (one training set per selection) -> train (one
policy per entry) -> evaluate (the base model and every policy on every benchmark) -> report.

Caching. Every stage writes ``stage.json`` in its output folder with a *key*: the hash of the stage's settings
and of the **content** of its inputs (the pool's questions, the labels file, the training file, the adapter's
weights, the result files). A stage whose finished marker has the same key, and whose outputs exist, is skipped.
An unfinished stage with the same key resumes (filter and eval from their per-question stores, training from its
last checkpoint), so a rerun after a crash continues where it stopped. A stage whose key changed starts over.
Because keys follow content, a change upstream that leaves a stage's inputs as they were does not rerun it.

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

from .config import build
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
SECTIONS = ("name", "description", "run_dir", "data", "filter", "select", "train", "eval", "report", "without_data_dir")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the recipe file and the key."""


class StageError(RuntimeError):
    """A stage's child process (a training launcher) failed; its own output says why."""


# --- recipe -------------------------------------------------------------------------------------------------


@dataclass
class DataSection:
    pool: str = "medmcqa:dev"  # NAME[:SPLIT] or a JSONL of records; never a test split
    pool_limit: int | None = None  # the first N questions of the pool, in pool order
    decontaminate: list[str] | None = None  # eval sets to drop 8-gram overlaps with; None: the eval benchmarks
    data_dir: str | None = None  # default: --data-dir or $MEDRLVR_DATA_DIR


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


def load_recipe(
    path: str | Path, overrides: Sequence[str] = (), data_dir: str | None = None, run_dir: str | None = None
) -> Recipe:
    """Read, override and validate a recipe. No data is read and no model is loaded."""
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
    fallback = raw.get("without_data_dir") or {}
    applied = bool(fallback) and resolve_data_dir((given.get("data") or {}).get("data_dir"), required=False) is None
    if applied:  # the recipe's own fallback first, then what the user overrode on top of it
        raw = apply_overrides(apply_overrides(raw, fallback, f"{path}: without_data_dir"), overrides, str(path))
    else:
        raw = given
    unknown = sorted(k for k in raw if k not in SECTIONS)
    if unknown:
        raise RecipeError(f"{path}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    data = _build(DataSection, dict(raw.get("data") or {}), f"{path}: data")

    filters = []
    for i, entry in enumerate(raw.get("filter") or []):
        entry = dict(entry or {})
        name = str(entry.pop("name", None) or slug(str(entry.get("model", ""))))
        serve = entry.pop("serve", None)
        config = _build(FilterConfig, entry, f"{path}: filter[{i}] ({name})")
        filters.append(FilterEntry(name, config, serve))
    if len({f.name for f in filters}) != len(filters):
        raise RecipeError(f"{path}: filter: two filters with the same name; give each a distinct 'name'")
    filter_names = {f.name for f in filters} | {f.config.model for f in filters}

    selections = []
    for name, entry in (raw.get("select") or {}).items():
        entry = dict(entry or {})
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

    train_values = dict(raw.get("train") or {})
    policy_values = train_values.pop("policies", None)
    launch = train_values.pop("launch", None)
    for key in ("train_file", "output_dir"):
        if key in train_values:
            raise RecipeError(f"{path}: train.{key} is set by the study (run_dir/select/..., run_dir/train/...)")
    if policy_values is None:  # one policy per selection, with the common settings
        policy_values = {name: {"selection": name} for name in selection_names}
    policies = []
    for name, entry in policy_values.items():
        entry = dict(entry or {})
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

    eval_values = dict(raw.get("eval") or {})
    benchmarks = eval_values.pop("benchmarks", None) or ["medqa", "mmlu:medical"]
    eval_base = bool(eval_values.pop("base", True))
    eval_serve = eval_values.pop("serve", None)
    evals = []
    for item in benchmarks:
        item = {"benchmark": item} if isinstance(item, str) else dict(item or {})
        bench = item.pop("benchmark", None)
        if not bench:
            raise RecipeError(f"{path}: eval.benchmarks: an entry without 'benchmark'")
        config = _build(
            EvalConfig, {**eval_values, **item}, f"{path}: eval ({bench})", drop=("model",), fixed={"model": "-"}
        )
        evals.append(EvalEntry(str(bench), config))
    if policies and evals and evals[0].config.engine == "llamacpp":
        raise RecipeError(f"{path}: eval.engine llamacpp cannot load a trained LoRA adapter; use transformers or openai")
    if policies and eval_serve and not all(p.config.merge or not p.config.lora for p in policies):
        raise RecipeError(f"{path}: eval through a server needs merged policies: set train.merge: true")
    if data.decontaminate is None:
        data.decontaminate = [e.benchmark for e in evals]

    name = str(raw.get("name") or path.stem)
    return Recipe(
        name=name,
        run_dir=Path(run_dir or raw.get("run_dir") or Path("runs") / name),
        data=data,
        filters=filters,
        selections=selections,
        policies=policies,
        base_model=base_model,
        evals=evals,
        eval_base=eval_base,
        eval_serve=eval_serve,
        train_launch=launch,
        report=dict(raw.get("report") or {}),
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


# --- the study ----------------------------------------------------------------------------------------------


class Study:
    """Runs a recipe's stages in order, skipping what is done; ``run()`` returns the run directory."""

    def __init__(self, recipe: Recipe, progress: bool = True, log: Callable[[str], None] | None = None):
        self.recipe = recipe
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
        over its old outputs instead of starting over."""
        key = _hash({"stage": kind, **inputs})
        store_key = _hash({"stage": kind, **{k: v for k, v in inputs.items() if k not in reuse}})
        marker = out / "stage.json"
        previous = json.loads(marker.read_text()) if marker.is_file() else None
        label = f"{kind} {name}".strip()
        done = previous and previous.get("key") == key and previous.get("status") == "done"
        if done and all((out / o).exists() for o in outputs):
            self._record(kind, name, out, key, "cached", 0.0)
            self.log(f"[{label}] cached ({out})")
            return "cached"
        resumed = bool(previous and previous.get("store_key") == store_key)
        if previous and not resumed:
            self.log(f"[{label}] inputs or settings changed: recomputing")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        state = {"stage": kind, "name": name, "key": key, "store_key": store_key, "inputs": inputs}
        write_json(marker, {**state, "status": "running", "started": _now()})
        self.log(f"[{label}] {'continuing' if resumed else 'running'} -> {out}")
        started = time.perf_counter()
        fn()
        seconds = round(time.perf_counter() - started, 1)
        write_json(marker, {**state, "status": "done", "finished": _now(), "seconds": seconds,
                            "peak_rss_mb": peak_rss_mb()})
        status = "ran" if not resumed else "resumed" if previous.get("key") == key else "updated"
        self._record(kind, name, out, key, status, seconds)
        self.log(f"[{label}] done in {seconds:.1f} s (peak memory so far {peak_rss_mb():.0f} MB)")
        return "ran"

    def _record(self, kind: str, name: str, out: Path, key: str, status: str, seconds: float) -> None:
        where = str(out.relative_to(self.run_dir))
        self.stages.append({"stage": kind, "name": name, "dir": where, "key": key[:16], "status": status,
                            "seconds": seconds, "peak_rss_mb": peak_rss_mb()})
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
                if self.recipe.train_launch:  # e.g. accelerate launch: one process per GPU, in a child process
                    import shlex

                    import yaml

                    path = out / "study_train.yaml"
                    path.write_text(yaml.safe_dump({"train": asdict(config)}, sort_keys=False))
                    command = [*shlex.split(self.recipe.train_launch), "-m", "medrlvr.cli", "train", "--config"]
                    self.log(f"[train {config.output_dir}] {' '.join(command)} {path}")
                    code = subprocess.run([*command, str(path)]).returncode
                    if code:
                        raise StageError(f"training {out.name} failed: `{' '.join(command)} {path}` exited with {code}")
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
                    out = eval_dir(self.run_dir, name, entry.benchmark)
                    inputs = {
                        "config": _without(config, "model", "engine_options", "chunk_size", "limit", "seed"),
                        "subsample": {"limit": config.limit, "seed": config.seed},
                        "model": fingerprint,
                        "benchmark": entry.benchmark,
                        "records": self.eval_hashes[entry.benchmark],
                        "fewshot": records_hash(shots) if shots else None,
                    }

                    def work(config=config, records=records, out=out, entry=entry, shots=shots):
                        engine = engine_for(config)
                        evaluate(records, config, out, entry.benchmark, shots, engine=engine, progress=self.progress)

                    self._stage("eval", f"{name} {entry.benchmark}", out, inputs, ["results.json"], work, ("subsample",))
            gc.collect()

    def _report(self) -> None:
        from .report import report

        names = self.recipe.model_names
        benchmarks = [e.benchmark for e in self.recipe.evals]
        results = [eval_dir(self.run_dir, n, b) / "results.json" for n in names for b in benchmarks]
        out = self.run_dir / "report"
        inputs = {
            "results": {str(p.relative_to(self.run_dir)): file_hash(p) for p in results if p.exists()},
            "metrics": {p.name: file_hash(self.run_dir / "train" / p.name / "metrics.jsonl") for p in self.recipe.policies},
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

        base_url = engine_options.get("base_url") or "http://127.0.0.1:8000/v1"
        with served(command.format(model=model), base_url, log_path=log_dir / "server.log"):
            yield

    def run(self) -> Path:
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
        lines.append(f"eval {e.benchmark}: {c.mode}, limit={c.limit}, engine={c.engine} for {', '.join(names)}")
    lines.append("report: table1.md/csv/tex, charts, index.html")
    return lines


def run_study(
    recipe: str | Path | Recipe,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    run_dir: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run (or continue) a study; returns its run directory."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides, data_dir=data_dir, run_dir=run_dir)
    return Study(recipe, progress=progress, log=log).run()
