"""Settings dataclasses from YAML mappings: unknown keys and bad values become one-line errors that say where."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, field, fields
from typing import Any

from .errors import UserError


def setting(
    default: Any = MISSING,
    *,
    help: str = "",
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    default_factory: Any = MISSING,
    cli: bool = True,
):
    """A settings field with what the CLI and the checks need: help text, allowed choices and a numeric range
    (``ge``/``gt``/``le``/``lt``; None values always pass). ``cli=False`` keeps it out of the command line (a
    field only the Python API sets, such as an in-memory object). Every setting is defined once, here, and the CLI
    flags, recipe keys and range checks are derived from it."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "cli": cli,
                "ge": ge, "gt": gt, "le": le, "lt": lt}  # fmt: skip
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_ranges(obj: Any, where: str = "", error: type[Exception] = UserError) -> None:
    """Raise ``error`` naming the first setting of dataclass ``obj`` outside its declared choices or range."""
    prefix = f"{where}: " if where else ""
    for f in fields(obj):
        meta = f.metadata
        value = getattr(obj, f.name)
        if value is None or isinstance(value, bool) or not meta:
            continue
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(map(str, choices))
            raise error(f"{prefix}setting '{f.name}' must be one of {allowed}, got {_shown(value)}")
        if not isinstance(value, (int, float)):
            continue
        for key, ok, word in (("ge", value.__ge__, "at least"), ("gt", value.__gt__, "above"),
                              ("le", value.__le__, "at most"), ("lt", value.__lt__, "below")):  # fmt: skip
            bound = meta.get(key)
            if bound is not None and not ok(bound):
                raise error(f"{prefix}setting '{f.name}' must be {word} {bound}, got {_shown(value)}")


def build(
    cls,
    values: Any,
    where: str,
    drop: Sequence[str] = (),
    fixed: dict[str, Any] | None = None,
    error: type[ValueError] = ValueError,
):
    """``cls(**values)``, checked. ``drop`` names fields the mapping may not set; ``fixed`` gives their values.
    Every value is checked against its field's annotation (see :func:`checked`), so a wrong type is an error that
    names the setting instead of a traceback later or a silent ``bool('nope') == True``."""
    if not isinstance(values, dict):
        raise error(f"{where}: expected a mapping, got {type(values).__name__}")
    known = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(k for k in values if k not in names or k in drop)
    if unknown:
        allowed = ", ".join(sorted(k for k in names if k not in drop))
        raise error(f"{where}: unknown setting {unknown[0]!r}; known: {allowed}")
    values = dict(values)
    for key, value in values.items():
        try:
            values[key] = checked(value, known[key])
        except TypeError as e:
            raise error(f"{where}: setting '{key}' {e}") from None
    try:
        obj = cls(**values, **(fixed or {}))
    except (TypeError, ValueError) as e:
        raise error(f"{where}: {e}") from None
    check_ranges(obj, where, error)
    return obj


def _describe(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "text"
    if tp is list:
        return "a list"
    if tp is dict:
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is(value: Any, tp: Any) -> bool:
    if tp is type(None):
        return value is None
    if tp in (int, float) and isinstance(value, bool):
        return False
    kind = typing.get_origin(tp) or tp
    return isinstance(kind, type) and isinstance(value, kind)


def _number(value: Any, tp: type) -> int | float | None:
    """``value`` as an int or float (text that reads as one included; a bool never), or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if tp is float:
        return float(number)
    return int(number) if float(number).is_integer() else None


def checked(value: Any, tp: Any) -> Any:
    """``value`` as the annotated type ``tp``, or TypeError saying what was expected. YAML gives bools, ints,
    floats, text, lists and mappings; a bool is never taken for a number (``True == 1``) and text is never taken
    for a bool (``strict: 'nope'`` must not mean true). Numbers written as text (YAML 1.1 reads ``1e-5`` as a
    string) are converted."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # A member the value already is comes first: "8" for ``str | int`` stays text, 5 for ``int | float`` an int.
        members = sorted(typing.get_args(tp), key=lambda member: not _is(value, member))
        for member in members:
            try:
                return checked(value, member)
            except TypeError:
                continue
        raise TypeError(f"must be {_describe(tp)}, got {_shown(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"must be {_describe(tp)}, got {_shown(value)}")
        (item,) = typing.get_args(tp)
        out = []
        for i, v in enumerate(value):
            try:
                out.append(checked(v, item))
            except TypeError as e:
                raise TypeError(f"item {i}: {e}") from None
        return out
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"must be a mapping, got {_shown(value)}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            try:
                out[checked(k, key_type)] = checked(v, value_type)
            except TypeError as e:
                raise TypeError(f"entry {k!r}: {e}") from None
        return out
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp in (int, float):
        number = _number(value, tp)
        if number is not None:
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value  # an annotation this checker does not know: the dataclass checks it
    raise TypeError(f"must be {_describe(tp)}, got {_shown(value)}")


# --- overrides: one syntax for recipes (section.key=value) and single-stage commands (key=value) ----------------


def parse_overrides(
    items: Sequence[str] | dict[str, Any], where: str, error: type[Exception] = UserError
) -> list[tuple[str, Any]]:
    """``key=value`` items (keys dotted into a nested mapping, values read as YAML) as (key, value) pairs."""
    import yaml

    if isinstance(items, dict):
        return list(items.items())
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{where}: override {item!r} is not key=value (section.key=value in a recipe)")
        try:
            pairs.append((key.strip(), yaml.safe_load(value)))
        except yaml.YAMLError:
            raise error(f"{where}: override {item!r}: the value is not valid YAML") from None
    return pairs


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str] | dict[str, Any], where: str, error: type[Exception] = UserError
) -> dict[str, Any]:
    """Set ``key=value`` items in a copy of ``raw``: a dotted key walks into mappings and (by index) lists, so
    ``eval.limit=50`` sets a recipe's ``eval: {limit: 50}`` and ``max_steps=20`` a training config's field."""
    import json

    out = json.loads(json.dumps(raw))
    for key, value in parse_overrides(overrides, where, error):
        parts = key.split(".")
        node: Any = out
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if node is None:
                raise error(f"{where}: override {key!r}: no such place in the recipe")
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise error(f"{where}: override {key!r}: no such place in the recipe")
    return out
