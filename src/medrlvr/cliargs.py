"""Command-line flags derived from the settings dataclasses, and parsed flags turned back into a checked config.

Every ``config.setting`` field becomes ``--name`` (underscores as dashes) with its help, choices and default from
the field: ``bool`` is ``--flag/--no-flag``, a list is comma-separated or JSON, a mapping is JSON or
``key=value,key=value``, ``null`` or ``none`` gives None where the field allows it. A value outside the field's
range is a usage error naming the flag. Parsed values go through :func:`medrlvr.config.build`, the same checks a
recipe's values get.
"""

from __future__ import annotations

import argparse
import json
import os
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from .config import build, check_ranges, checked
from .errors import UserError

DATA_DIR_ENV = "MEDRLVR_DATA_DIR"


def data_dir_parent() -> argparse.ArgumentParser:
    """The one ``--data-dir`` flag, shared by every command that reads benchmark files."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--data-dir", help=f"folder of benchmark folders (default: ${DATA_DIR_ENV})")
    return parent


def data_dir(value: str | None) -> str | None:
    """The data directory a command uses: the flag, else $MEDRLVR_DATA_DIR, else None (bundled data only)."""
    return value or os.environ.get(DATA_DIR_ENV) or None


def _members(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def _parse_text(text: str, tp: Any) -> Any:
    """The command-line text as a value of annotation ``tp`` (before the type check)."""
    members = _members(tp)
    if type(None) in members and text.strip().lower() in ("null", "none"):
        return None
    kinds = {typing.get_origin(m) or m for m in members}
    if dict in kinds:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        import yaml

        pairs = [item.partition("=") for item in text.split(",") if item.strip()]
        return {k.strip(): yaml.safe_load(v) for k, sep, v in pairs if sep} if all(p[1] for p in pairs) else text
    if list in kinds and not (str in kinds and "," not in text and not text.lstrip().startswith("[")):
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _converter(cls, f, tp: Any):
    """An argparse ``type``: parse, type-check and range-check one flag's text."""

    def convert(text: str) -> Any:
        try:
            value = checked(_parse_text(text, tp), tp)
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        probe = cls.__new__(cls)
        for other in fields(cls):
            object.__setattr__(probe, other.name, None)
        object.__setattr__(probe, f.name, value)
        try:
            check_ranges(probe)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(f"setting '{f.name}' ", 1)[-1]) from None
        return value

    convert.__name__ = f.name  # argparse names the type in some messages
    return convert


def add_settings(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), group: str | None = None) -> None:
    """Add a ``--flag`` for every command-line setting of dataclass ``cls`` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    target = parser.add_argument_group(group) if group else parser
    for f in fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        tp = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        required = f.default is MISSING and f.default_factory is MISSING
        default = f.default if f.default is not MISSING else None if required else f.default_factory()
        text = f.metadata.get("help", "") or f.name.replace("_", " ")
        shown = "" if required or default in (None, "", [], {}) else f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text + shown}
        if required:
            kwargs["required"] = True
        if set(_members(tp)) <= {bool, type(None)}:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = f.metadata.get("choices")
        if choices:
            kwargs["choices"] = choices
        target.add_argument(flag, type=_converter(cls, f, tp), metavar=f.name.upper(), **kwargs)


def setting_names(parser: argparse.ArgumentParser) -> set[str]:
    """The ``dest`` of every option the parser has (what :func:`add_settings` reaches)."""
    return {a.dest for a in parser._actions if a.option_strings}


def config_from(args: argparse.Namespace, cls, where: str, values: dict[str, Any] | None = None, **fixed: Any):
    """``cls`` from ``values`` (a config file's, overrides) with the flags given on the command line on top,
    checked by :func:`medrlvr.config.build` as a recipe's values are. ``fixed`` gives fields the command sets."""
    given = dict(values or {})
    for f in fields(cls):
        if f.name in vars(args) and f.name not in fixed:
            given[f.name] = getattr(args, f.name)
    given.update(fixed)
    return build(cls, given, where, error=UserError)
