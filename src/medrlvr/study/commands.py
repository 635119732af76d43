"""Which programs a recipe runs and where the API key may go: the study's trust rules.

``serve`` and ``train.launch`` run programs the recipe names. A study runs them only with ``allow_commands=True``
(``medrlvr run --allow-commands``) or once the user has confirmed exactly these commands (``medrlvr run`` asks at a
terminal and remembers the sha256 of the command list in the cache directory; a changed command asks again). An
OpenAI-compatible server at an address the recipe chose gets no API key unless the user configured the same address
(``--base-url`` or ``$OPENAI_BASE_URL``), and a recipe cannot choose which environment variable is sent as the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import checked
from ..errors import RecipeError, StageError
from ..store import write_json
from .provenance import now

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/")


def key_policy(
    config: Any, where: str, user_base_url: str | None, served: bool, field: str = "engine_options", engine: str = ""
) -> dict:
    """The engine options a study uses. The API key (``$OPENAI_API_KEY``) goes only to an address the user chose:
    ``--base-url`` or ``$OPENAI_BASE_URL``. A ``base_url`` from the recipe (or the local address of a server the
    recipe starts) that is not one of them gets no key, so a recipe cannot send the key where it likes. ``field``
    names other options under the same rule (an evaluation's ``judge_options``, for the ``engine`` given)."""
    options = dict(getattr(config, field))
    if "api_key_env" in options:
        raise RecipeError(
            f"{where}.{field}.api_key_env: a recipe may not choose which environment variable is sent as the "
            "API key; the key is $OPENAI_API_KEY, sent only to --base-url or $OPENAI_BASE_URL"
        )
    if (engine or config.engine) != "openai":
        return options
    if served:  # the engine talks to the server the study starts, not to $OPENAI_BASE_URL
        options.setdefault("base_url", DEFAULT_BASE_URL)
    if user_base_url:
        options.setdefault("base_url", user_base_url)
    if "base_url" in options:
        url = _url(options["base_url"], f"{where}.{field}.base_url")
        trusted = {_normal_url(u) for u in (user_base_url, os.environ.get("OPENAI_BASE_URL")) if u}
        if _normal_url(url) not in trusted:
            options["api_key_env"] = None  # the engine then sends no Authorization header
    return options


def _url(value: Any, where: str) -> str:
    try:
        return checked(value, str)
    except TypeError as e:
        raise RecipeError(f"{where} {e}") from None


def _trust_file() -> Path:
    from ..models import cache_dir

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
    trusted[commands_digest(commands)] = {"recipe": recipe, "commands": list(commands), "confirmed": now()}
    write_json(path, trusted)


def launch_training(
    launch: str, config: Any, log: Callable[[str], None], lock_env: dict[str, str] | None = None
) -> None:
    """Train one policy (a :class:`~medrlvr.train.TrainConfig`) in child processes started by the recipe's
    ``train.launch`` (e.g. ``accelerate launch``: one process per GPU). They run ``medrlvr train`` on the settings,
    written beside the output as ``study_train.yaml``. ``lock_env`` tells them they run under the study's lock of
    the run directory (:func:`medrlvr.rundir.locked`)."""
    import shlex
    import subprocess
    from dataclasses import asdict

    import yaml

    out = Path(config.output_dir)
    path = out / "study_train.yaml"
    path.write_text(yaml.safe_dump({"train": asdict(config)}, sort_keys=False))
    command = [*shlex.split(launch), "-m", "medrlvr.cli", "train", "--config"]
    log(f"[train {config.output_dir}] {' '.join(command)} {path}")
    code = subprocess.run([*command, str(path)], env={**os.environ, **(lock_env or {})}).returncode
    if code:
        raise StageError(f"training {out.name} failed: `{' '.join(command)} {path}` exited with {code}")


@contextlib.contextmanager
def served_model(command: str | None, model: str, engine_options: dict[str, Any], log_dir: Path):
    """The recipe's ``serve`` command for ``model`` running (its log in ``log_dir``) until the context ends."""
    if not command:
        yield
        return
    from ..engines.server import served

    base_url = engine_options.get("base_url") or DEFAULT_BASE_URL
    with served(command.format(model=model), base_url, log_path=log_dir / "server.log"):
        yield
