"""What a recipe will do, said before anything runs: its model references resolved (:func:`check_models`), the
commands it runs (:func:`recipe_commands`), and the plan ``medrlvr run --plan`` prints (:func:`plan`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CommandsNotAllowed, RecipeError
from ..select import STRATEGIES
from ..train import TrainConfig
from .commands import commands_trusted
from .recipe import Recipe


def check_models(r: Recipe) -> None:
    """Resolve every model reference the recipe names before any stage runs (and so before any output is
    set aside): a typo is one line naming the recipe key, not a failed stage."""
    from ..models import ModelError, resolve

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


def launched(config: TrainConfig) -> bool:
    """Whether a policy trains under the recipe's ``train.launch``: not through verl (it starts its own processes,
    Ray) and not PPO on the TRL path (one process: its critic is not a model accelerate or DeepSpeed would wrap)."""
    return config.backend != "verl" and not (config.method == "ppo" and config.backend == "trl")


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
            if launched(p.config):
                path = recipe.run_dir / "train" / p.name / "study_train.yaml"
                commands.append(f"{recipe.train_launch} -m medrlvr.cli train --config {path}")
    return list(dict.fromkeys(commands))


def _cached(folder: Path) -> str:
    """' (finished: reused if its settings are unchanged)' for a stage folder a run already finished."""
    from .stagedirs import is_finished

    return " (finished: reused if its settings are unchanged)" if is_finished(folder) else ""


def _arm_lines(recipe: Recipe) -> list[str]:
    """The sweep grid and the seed replicates, one line per arm with more than one policy or grid values."""
    lines = []
    for name, arm in recipe.arms.items():
        if len(arm.get("policies", [])) < 2 and not arm.get("values") and not arm.get("control"):
            continue
        values = ", ".join(f"{k}={v}" for k, v in arm.get("values", {}).items())
        sweep = f"sweep {arm['sweep']} " if arm.get("sweep") else ""
        lines.append(f"arm {sweep}{name}: {values or arm.get('control') or 'replicates'}; seeds "
                     f"{arm.get('seeds')}: {', '.join(arm.get('policies', []))}")  # fmt: skip
    return lines


def plan(recipe: Recipe) -> list[str]:
    """The stages a recipe runs, in order (no data read, no model loaded)."""
    limit = f" (first {recipe.data.pool_limit})" if recipe.data.pool_limit else ""
    lines = [f"run directory: {recipe.run_dir}", f"pool: {recipe.data.pool}{limit}"]
    lines += [f"filter {f.name}: {f.config.model} via {f.config.engine}, k={f.config.k}" for f in recipe.filters]
    lines.append(f"decontaminate against: {', '.join(recipe.data.decontaminate or []) or 'nothing'}")
    for s in recipe.selections:
        c = s.config
        what = STRATEGIES[c.strategy].describe(c)
        by = f" by {' and '.join(s.filters)}" if s.filters else ""
        after = f", reading the run of pilot {s.pilot} (trained first)" if s.pilot else ""
        fill = ", the rest random (fill_short)" if c.fill_short else ""
        lines.append(f"select {s.name}: {c.strategy} {what}{by}{after}{fill}")
    pilots = {s.pilot for s in recipe.selections if s.pilot}
    for p in sorted(recipe.policies, key=lambda p: p.name not in pilots):  # the order they train in
        c = p.config
        steps = f"max_steps={c.max_steps}" if c.max_steps > 0 else f"epochs={c.num_train_epochs}"
        control = f", control {c.control}" if getattr(c, "control", None) else ""
        pilot = " (a pilot: trains before the selections that read it)" if p.name in pilots else ""
        lines.append(f"train {p.name}: {c.method} on select/{p.selection}, {c.model}, {steps}, seed {c.seed}"
                     f"{control}{pilot}{_cached(recipe.run_dir / 'train' / p.name)}")  # fmt: skip
    lines += _arm_lines(recipe)
    names = recipe.model_names
    for e in recipe.evals:
        c = e.config
        probes = [name for name, on in (("adversarial prefill", c.adversarial_prefill), ("open form", c.open_form))
                  if on]  # fmt: skip
        judge = f" (judge {c.judge_model})" if c.judge_model else ""
        probes_text = f", probes: {', '.join(probes)}{judge}" if probes else ""
        lines.append(
            f"eval {e.name}: {c.mode}, limit={c.limit}, engine={c.engine}{probes_text} for {', '.join(names)}"
        )
    lines.append("report: table1.md/csv/tex, charts, index.html")
    commands = recipe_commands(recipe)
    if commands:
        trusted = "confirmed before" if commands_trusted(commands) else "needs --allow-commands or a confirmation"
        lines.append(f"commands this recipe runs ({trusted}):")
        lines += [f"  {c}" for c in commands]
    else:
        lines.append("commands this recipe runs: none")
    return lines


def check_commands(recipe: Recipe, allowed: bool) -> None:
    """Stop, in one line listing them, before a recipe runs commands the user has neither allowed (``allowed``,
    ``--allow-commands``) nor confirmed."""
    commands = recipe_commands(recipe)
    if commands and not allowed and not commands_trusted(commands):
        listed = "; ".join(f"`{c}`" for c in commands)
        raise CommandsNotAllowed(
            f"{recipe.source or recipe.name}: this recipe runs commands: {listed}. Check them "
            "(medrlvr run RECIPE --plan) and run with --allow-commands, or confirm them at a terminal"
        )
