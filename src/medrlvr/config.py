"""Settings dataclasses from YAML mappings: unknown keys and bad values become one-line errors that say where."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any


def build(
    cls,
    values: Any,
    where: str,
    drop: Sequence[str] = (),
    fixed: dict[str, Any] | None = None,
    error: type[ValueError] = ValueError,
):
    """``cls(**values)``, checked. ``drop`` names fields the mapping may not set; ``fixed`` gives their values.
    Numbers written as text (YAML reads ``1e-5`` as a string) are converted for ``int`` and ``float`` fields."""
    if not isinstance(values, dict):
        raise error(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f.type for f in fields(cls)}
    unknown = sorted(k for k in values if k not in known or k in drop)
    if unknown:
        allowed = ", ".join(sorted(k for k in known if k not in drop))
        raise error(f"{where}: unknown setting {unknown[0]!r}; known: {allowed}")
    values = dict(values)
    for key, value in values.items():
        if known[key] in ("float", "int") and isinstance(value, str):
            try:
                values[key] = float(value) if known[key] == "float" else int(value)
            except ValueError:
                raise error(f"{where}: setting '{key}' must be a number, got {value!r}") from None
    try:
        return cls(**values, **(fixed or {}))
    except (TypeError, ValueError) as e:
        raise error(f"{where}: {e}") from None
