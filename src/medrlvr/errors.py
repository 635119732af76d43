"""The one error type for mistakes a user can fix (a bad setting, a missing file, a malformed row).

The CLI prints a ``UserError`` as one line and exits 2; any other exception is a bug in medrlvr and is shown with its
traceback and a line saying so. Each stage's own error types (``DataError``, ``RecipeError``, ``TrainError`` ...)
subclass it.
"""

from __future__ import annotations


class UserError(ValueError):
    """Something the user can fix; the message names the file, row and field, or the setting."""


class RecipeError(UserError):
    """A recipe that cannot run; the message names the recipe file and the key."""


class CommandsNotAllowed(RecipeError):
    """The recipe runs commands the user has not allowed; the message lists them."""


class StageError(UserError):
    """A stage's child process (a training launcher, verl) failed; its own output, shown above, says why."""


def require(module: str, needed_for: str, install: str) -> None:
    """One line with the pip command when the optional ``module`` is not installed (instead of a traceback)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"{needed_for} needs {module}, which is not installed: pip install '{install}'")
