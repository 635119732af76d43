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
it there, and a run with the old settings put back takes it back instead of recomputing.

Nothing on disk is trusted blindly. A finished stage's marker lists the files it wrote (size, sha256, rows, ids); a
cached stage whose files differ (cut, edited, deleted) is moved to ``RUN/.damaged/STAGE/NAME`` and computed again,
with a line naming the file (:func:`medrlvr.study.stagedirs.damage`). One study at a time writes into a run
directory (``RUN/.lock``, :func:`medrlvr.rundir.locked`), and every folder it writes is checked to lie inside it.

Before any stage runs, the recipe's settings are checked (types, ranges, placeholders, names) and its model
references resolved, so a typo stops the study with one line naming the recipe key.

Commands (``serve``, ``train.launch``) run only once the user allowed them: :mod:`medrlvr.study.commands`.

The run directory (``runs/NAME``) holds ``manifest.json``: the resolved recipe, data hashes, library versions, the
project commit, and each stage's status, time and the process's peak memory so far.

The recipe is read and checked by :mod:`medrlvr.study.recipe`; provenance (hashes, versions, memory) is
:mod:`medrlvr.study.provenance`; the commands a recipe may run are :mod:`medrlvr.study.commands`; the stage folders' moves are
:mod:`medrlvr.study.stagedirs`.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..errors import CommandsNotAllowed, RecipeError, StageError
from ..evaluate import EvalConfig, stage_settings
from ..rundir import LOCK_ENV, eval_dir, inside, locked
from ..select import SelectConfig
from ..store import write_json
from . import stagedirs
from .commands import commands_trusted, launch_training, served_model, trust_commands
from .eta import announce, remaining
from .eta import minutes as eta_text
from .inputs import load_inputs
from .plan import check_commands, check_models, launched, plan, recipe_commands
from .provenance import (
    file_hash,
    library_versions,
    now,
    peak_rss_mb,
    project_commit,
    records_hash,
    release_memory,
    stable_hash,
    without,
)
from .recipe import Recipe, apply_overrides, load_recipe

# Kept importable from here for callers of the single-module study (medrlvr.study.runner.load_recipe, ...).
__all__ = [
    "CommandsNotAllowed", "RecipeError", "StageError", "Study", "apply_overrides", "commands_trusted",
    "load_recipe", "peak_rss_mb", "plan", "recipe_commands", "run_study", "trust_commands",
]  # fmt: skip


class Study:
    """Runs a recipe's stages in order, skipping what is done; ``run()`` returns the run directory."""

    def __init__(
        self,
        recipe: Recipe,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        allow_commands: bool = False,
        verify: bool = False,
    ):
        self.recipe = recipe
        self.verify = verify  # check finished stages' large files by their sha256 too
        self.locked = ""  # the run directory, resolved, while this study holds its lock
        self.allow_commands = allow_commands
        self.run_dir = recipe.run_dir
        self.progress = progress
        self.log = log or (lambda line: print(line, flush=True))
        self.stages: list[dict[str, Any]] = []
        self.stage_estimates: dict[str, float] = {}  # label -> seconds on this machine (medrlvr.study.eta.announce)
        self.stage_measured: dict[str, tuple[float, float]] = {}  # kind -> (seconds taken, estimated) so far
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
        key = stable_hash({"stage": kind, **inputs})
        store_key = stable_hash({"stage": kind, **{k: v for k, v in inputs.items() if k not in reuse}})
        marker = out / "stage.json"
        label = f"{kind} {name}".strip()
        kept = inside(self.run_dir, ".previous", out.relative_to(self.run_dir))
        for folder in (out, kept):  # a damaged output is neither reused, taken back nor continued
            self._set_aside_if_damaged(label, folder)
        previous = stagedirs.marker(out)
        reused = self._reuse(kind, name, out, kept, key, outputs)
        if reused:
            return reused
        resumed = bool(previous and previous.get("store_key") == store_key)
        if previous and not resumed:
            if stagedirs.finished(previous):
                stagedirs.set_aside(out, kept)
                self.log(f"[{label}] inputs or settings changed: recomputing (the old output waits in {kept})")
            else:  # an unfinished run of settings no longer asked for; the last finished output stays kept
                shutil.rmtree(out)
                self.log(f"[{label}] inputs or settings changed: recomputing")
        out.mkdir(parents=True, exist_ok=True)
        state = {"stage": kind, "name": name, "key": key, "store_key": store_key, "inputs": inputs}
        write_json(marker, {**state, "status": "running", "started": now()})
        guess = self.stage_estimates.get(label)
        about = f" (estimate: {eta_text(guess)} on this machine)" if guess else ""
        self.log(f"[{label}] {'continuing' if resumed else 'running'} -> {out}{about}")
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
        files = stagedirs.written(out)  # what a later run checks before it trusts this output
        write_json(marker, {**state, "status": "done", "finished": now(), "seconds": seconds,
                            "peak_rss_mb": peak_rss_mb(), "files": files})  # fmt: skip
        if kept.exists():  # replaced: only now is the old output removed
            shutil.rmtree(kept)
            stagedirs.prune(kept.parent, self.run_dir)
        status = "ran" if not resumed else "resumed" if previous.get("key") == key else "updated"
        self._record(kind, name, out, key, status, seconds)
        self.log(
            f"[{label}] done in {seconds:.1f} s (peak memory so far {peak_rss_mb():.0f} MB){self._left(label, seconds)}"
        )
        return "ran"

    def _left(self, label: str, seconds: float) -> str:
        """``; about N min left`` for the stages still to run, their estimates scaled by how this run's stages of
        each kind compared with theirs (:func:`medrlvr.study.eta.remaining`); empty without estimates."""
        guess = self.stage_estimates.pop(label, None)
        if guess:
            taken, guessed = self.stage_measured.get(label.split(" ", 1)[0], (0.0, 0.0))
            self.stage_measured[label.split(" ", 1)[0]] = (taken + seconds, guessed + guess)
        if not self.stage_estimates:
            return ""
        return f"; about {eta_text(remaining(self.stage_estimates, self.stage_measured))} left"

    def _set_aside_if_damaged(self, label: str, folder: Path) -> None:
        """Move a finished stage folder whose files differ from what its marker recorded (cut, edited, deleted) to
        ``RUN/.damaged/...``, so the stage is computed again instead of trusted; the copy stays there for a look.
        A marker from before files were recorded is trusted as it was."""
        previous = stagedirs.marker(folder)
        if not stagedirs.finished(previous) or "files" not in previous:
            return
        why = stagedirs.damage(folder, previous["files"], deep=self.verify)
        if not why:
            return
        aside = inside(self.run_dir, ".damaged", folder.relative_to(self.run_dir))
        stagedirs.set_aside(folder, aside)
        stagedirs.prune(folder.parent, self.run_dir)
        self.manifest.setdefault("damaged", []).append({"stage": label, "why": why, "kept_in": str(aside)})
        self.log(f"[{label}] damaged output: {why}; recomputing (the damaged copy is kept in {aside})")

    def _reuse(self, kind: str, name: str, out: Path, kept: Path, key: str, outputs: Sequence[str]) -> str | None:
        """ "cached" when ``out`` holds the finished stage of ``key``, "restored" when ``kept`` (RUN/.previous/...) does
        and it was moved back; None when the stage must run."""
        previous = stagedirs.marker(out)
        label = f"{kind} {name}".strip()
        if stagedirs.finished(previous, key) and all((out / o).exists() for o in outputs):
            self._record(kind, name, out, key, "cached", 0.0)
            self.log(f"[{label}] cached ({out})")
            return "cached"
        stagedirs.finish_swap(out, kept)
        if stagedirs.finished(stagedirs.marker(kept), key) and all((kept / o).exists() for o in outputs):
            stagedirs.swap_back(out, kept, keep_displaced=stagedirs.finished(previous))
            stagedirs.prune(kept.parent, self.run_dir)
            self._record(kind, name, out, key, "restored", 0.0)
            self.log(f"[{label}] settings as before: took back the finished output from {kept}")
            return "restored"
        return None

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
            **({"finished": now()} if finished else {}),
        )
        write_json(self.run_dir / "manifest.json", self.manifest)

    # -- data --

    def _load_data(self) -> None:
        data = load_inputs(self.recipe)
        self.pool, self.eval_sets, self.decontam_sets, self.fewshot = (
            data.pool,
            data.eval_sets,
            data.decontam,
            data.fewshot,
        )
        self.pool_hash, self.eval_hashes = data.pool_hash, data.eval_hashes
        r = self.recipe
        self.manifest.update(recipe=r.source, name=r.name, started=now(), resolved=r.raw,
                             without_data_dir_applied=r.without_data_dir_applied, data=data.manifest(),
                             versions=library_versions(), commit=project_commit(), command=" ".join(sys.argv))  # fmt: skip

    # -- stages --

    def _filters(self) -> None:
        from ..filter import filter_pool

        for entry in self.recipe.filters:
            out = inside(self.run_dir, "filter", entry.name)
            inputs = {"config": without(entry.config, "engine_options"), "pool": self.pool_hash}

            def work(entry=entry, out=out):
                with served_model(entry.serve, entry.config.model, entry.config.engine_options, out):
                    filter_pool(self.pool, entry.config, out, progress=self.progress)

            self._stage("filter", entry.name, out, inputs, ["labels.jsonl", "stats.json"], work)

    def _decontaminate(self) -> None:
        """Drop the pool questions that overlap the evaluation sets (once, for every selection), and refuse, before
        any stage runs, a selection that asks for more questions than what is left holds."""
        from ..data.decontam import decontaminate

        evals = [r for records in self.decontam_sets.values() for r in records]
        kept, dropped = decontaminate(self.pool, evals) if evals else (self.pool, [])
        self.manifest["data"]["decontamination"] = {"kept": len(kept), "dropped": len(dropped)}
        self.decontaminated = {"against": list(self.decontam_sets), "pool": len(self.pool), "kept": len(kept),
                               "dropped": dropped}  # fmt: skip
        self.kept_hash = records_hash(kept)
        for entry in self.recipe.selections:
            if entry.size > len(kept) and not entry.config.allow_short:
                raise RecipeError(f"{self.recipe.source or self.recipe.name}: select.{entry.name}: asks for "
                                  f"{entry.size} questions and the pool holds {len(kept)} after decontamination; ask "
                                  "for fewer or set allow_short")  # fmt: skip

    def _evidence(self, entry) -> tuple[dict[str, Any], Callable[[], Any]]:
        """What a selection reads, as cache-key inputs (content hashes) and a loader: one filter's labels, several
        filters' (name -> labels), or its pilot's per-question trajectories."""
        from ..filter import load_labels
        from ..select import STRATEGIES, trajectories, with_samples
        from ..store import read_jsonl

        needs = STRATEGIES[entry.config.strategy].needs
        if entry.pilot:
            log = inside(self.run_dir, "train", entry.pilot, "question_rewards.jsonl")

            def pilot() -> Any:
                if not log.is_file():
                    raise StageError(f"select {entry.name}: pilot {entry.pilot} left no {log.name} (trained before "
                                     f"per-question rewards were logged? delete train/{entry.pilot} to retrain it)")  # fmt: skip
                return trajectories(read_jsonl(log))

            return {"pilot": file_hash(log)}, pilot
        files = {name: inside(self.run_dir, "filter", name, "labels.jsonl") for name in entry.filters}
        k = {f.name: f.config.k for f in self.recipe.filters}

        def labels() -> Any:
            sets = {name: with_samples(load_labels(path.parent), k[name]) for name, path in files.items()}
            if not sets:
                return None
            return sets if needs == "filters" else next(iter(sets.values()))

        hashes = {name: file_hash(path) for name, path in files.items()}
        return {"labels": next(iter(hashes.values())) if len(hashes) == 1 else hashes or None}, labels

    def _selections(self, entries) -> None:
        from ..select import run_selection

        write_json(inside(self.run_dir, "data", "decontamination.json"), self.decontaminated)
        for entry in entries:
            out = inside(self.run_dir, "select", entry.name)
            config = SelectConfig(**{**asdict(entry.config), "decontaminate": list(self.decontam_sets)})
            evidence, load = self._evidence(entry)
            inputs = {"config": asdict(config), "pool": self.kept_hash, **evidence}

            def work(out=out, config=config, load=load):
                parquet = bool(self.recipe.report.get("parquet"))
                run_selection(self.pool, load(), config, out, parquet=parquet, eval_sets=self.decontam_sets)

            self._stage("select", entry.name, out, inputs, ["train.jsonl", "stats.json"], work)

    def _say_identical_selections(self) -> None:
        """Selections that hold the same questions (filters that label every question alike pick alike): said
        once, and kept in the manifest, so that two identical rows of the report are read as one."""
        same: dict[str | None, list[str]] = {}
        for entry in self.recipe.selections:
            same.setdefault(file_hash(self.run_dir / "select" / entry.name / "train.jsonl"), []).append(entry.name)
        groups = [names for digest, names in same.items() if digest and len(names) > 1]
        for names in groups:
            self.log(f"[select] {' and '.join(names)} hold the same questions: policies trained on them with the "
                     "same settings are one policy trained twice")  # fmt: skip
        self.manifest["data"]["identical_selections"] = groups

    def _trainings(self, policies) -> None:
        from ..train import run as train

        for policy in policies:
            out = inside(self.run_dir, "train", policy.name)
            train_file = inside(self.run_dir, "select", policy.selection, "train.jsonl")
            config = copy.copy(policy.config)  # built and checked once, when the recipe was read
            config.train_file, config.output_dir = str(train_file), str(out)
            inputs = {"config": without(config, "train_file", "output_dir"), "train_file": file_hash(train_file)}
            final = "adapter" if config.lora or config.qlora else "model"

            def work(config=config):
                # verl starts its own processes (Ray), never under train.launch
                if self.recipe.train_launch and launched(config):
                    launch_training(self.recipe.train_launch, config, self.log, lock_env={LOCK_ENV: self.locked})
                else:
                    train(config, data_dir=self.recipe.data.data_dir)
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
                fingerprint = stable_hash(sorted((p.name, file_hash(p)) for p in weights.glob("*.safetensors")))
            models.append((policy.name, str(ref), fingerprint))
        return models

    def _evaluations(self) -> None:
        """Every model on every benchmark, one model at a time."""
        for name, ref, fingerprint in self._models():
            self._evaluate_model(name, ref, fingerprint)
            gc.collect()

    def _evaluate_model(self, name: str, ref: str, fingerprint: str) -> None:
        """One model on every benchmark: one engine, opened when its first uncached benchmark needs it (after the
        recipe's ``serve`` command, if any) and closed after its last; each benchmark is one cached stage running
        :func:`medrlvr.evaluate.evaluate`."""
        from ..engines import get_engine
        from ..evaluate import evaluate

        with contextlib.ExitStack() as stack:
            engines: list[Any] = []

            def engine(config: EvalConfig) -> Any:
                if not engines:
                    log_dir = inside(self.run_dir, "eval", name)
                    stack.enter_context(served_model(self.recipe.eval_serve, ref, config.engine_options, log_dir))
                    engines.append(get_engine(config.engine, config.model, **config.engine_options))
                    stack.callback(engines[0].close)
                return engines[0]

            for e in self.recipe.evals:
                config = replace(e.config, model=ref)
                out = eval_dir(self.run_dir, name, e.spec.label)
                records, shots = self.eval_sets[e.spec.benchmark], self.fewshot.get(e.spec.benchmark, [])

                def work(config=config, out=out, records=records, shots=shots, label=e.spec.label):
                    evaluate(records, config, out, label, shots, engine=engine(config), progress=self.progress,
                             fingerprint=fingerprint)  # fmt: skip

                inputs = {
                    **stage_settings(config),
                    "model": fingerprint,
                    "benchmark": e.spec.benchmark,
                    "records": self.eval_hashes[e.spec.benchmark],
                    "fewshot": records_hash(shots) if shots else None,
                }
                self._stage(
                    "eval", f"{name} {e.spec.label}", out, inputs, ["results.json"], work, ("subsample", "probes")
                )

    def _report(self) -> None:
        from ..report import report

        names = self.recipe.model_names
        benchmarks = [e.name for e in self.recipe.evals]
        results = [eval_dir(self.run_dir, n, b) / "results.json" for n in names for b in benchmarks]
        out = inside(self.run_dir, "report")
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

        inputs["completions"] = {p.name: file_hash(self.run_dir / "train" / p.name / "completions.jsonl")
                                 for p in self.recipe.policies}  # fmt: skip
        inputs["arms"] = self.recipe.arms
        # the selections' profiles: what each chose and the filters' pass rates it is described by
        inputs["selections"] = {s.name: file_hash(self.run_dir / "select" / s.name / "stats.json")
                                for s in self.recipe.selections}  # fmt: skip
        inputs["labels"] = {f.name: file_hash(self.run_dir / "filter" / f.name / "labels.jsonl")
                            for f in self.recipe.filters}  # fmt: skip

        def work():
            write_json(inside(self.run_dir, "arms.json"), self.recipe.arms)  # the report groups seeds and sweeps by it
            report(self.run_dir, out, models=names, baseline=baseline, title=title, benchmarks=benchmarks)

        self._stage("report", "", out, inputs, ["index.html", "table1.md"], work)

    def run(self) -> Path:
        check_commands(self.recipe, self.allow_commands)
        check_models(self.recipe)
        # one study at a time per run directory, from before its first read to its last write
        with locked(self.run_dir, command=" ".join(sys.argv)):
            self.locked = str(self.run_dir.resolve())  # children (a training launcher) run under this lock
            self._load_data()
            self._write_manifest()
            self.log(announce(self))  # the machine and what the stages left will take on it (medrlvr.study.eta)
            self._decontaminate()
            self._filters()
            # a selection that reads a pilot run waits for it: pilot training -> that selection -> the rest
            r = self.recipe
            pilots = {s.pilot for s in r.selections if s.pilot}
            self._selections([s for s in r.selections if not s.pilot])
            self._trainings([p for p in r.policies if p.name in pilots])
            self._selections([s for s in r.selections if s.pilot])
            self._say_identical_selections()
            self._trainings([p for p in r.policies if p.name not in pilots])
            self._evaluations()
            self._report()
            self._write_manifest(finished=True)
        return self.run_dir


def run_study(
    recipe: str | Path | Recipe,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    run_dir: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    allow_commands: bool = False,
    base_url: str | None = None,
    verify: bool = False,
) -> Path:
    """Run (or continue) a study; returns its run directory. A recipe that runs commands (``serve``,
    ``train.launch``) needs ``allow_commands=True`` unless the user confirmed these exact commands before;
    ``base_url`` is the OpenAI-compatible server the user chose (it, and $OPENAI_BASE_URL, get the API key)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides, data_dir=data_dir, run_dir=run_dir, base_url=base_url)
    return Study(recipe, progress=progress, log=log, allow_commands=allow_commands, verify=verify).run()
