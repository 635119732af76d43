"""The layout's rules, read from the code: every import of ``src/medrlvr`` (at module level, inside functions and
under ``TYPE_CHECKING`` alike) points down. No module imports one that imports it back (no circle), a package of a
higher floor never imports one of a lower floor's users, a stage never imports another stage or the study, the
report never imports a stage, a config never imports its backends and a backend never imports its dispatcher."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medrlvr"

# Floors, from the ground up: a unit may import units of lower floors only (the names are src/medrlvr's top-level
# modules and packages).
FLOORS = [
    {"errors"},
    {"config", "records", "stats"},
    {"store", "extract", "prompts", "models", "options"},
    {"data", "rewards", "modeling"},
    {"engines", "rundir"},
    {"filter", "select", "evaluate", "train"},  # the stages: none imports another
    {"report"},  # reads run files only: imports no stage
    {"study"},
    {"bench", "cliargs"},
    {"cli"},
    {"__init__"},
]
STAGES = {"filter", "select", "evaluate", "train"}
# (importer prefix, imported prefix): edges that must never be, whatever the floors say
NEVER = [
    ("medrlvr.train.config", "medrlvr.train.grpo"),  # a config never imports its backends
    ("medrlvr.train.config", "medrlvr.train.verl"),
    ("medrlvr.train.config", "medrlvr.train.ppo"),
    ("medrlvr.train.grpo", "medrlvr.train"),  # a backend never imports its dispatcher (medrlvr/train/__init__)
    ("medrlvr.train.verl", "medrlvr.train"),
    ("medrlvr.train.ppo", "medrlvr.train"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path, known: dict[str, Path], text: str | None = None) -> set[str]:
    """Every medrlvr module ``path`` imports (its ``text``, when given), wherever the import statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(text if text is not None else path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "medrlvr")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "medrlvr":
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import stagedirs` imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def unit(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(name: str) -> int:
    return next(i for i, units in enumerate(FLOORS) if unit(name) in units)


def test_every_module_has_a_floor():
    missing = sorted({unit(m) for m in modules()} - set().union(*FLOORS))
    assert not missing, f"give these a floor in FLOORS: {missing}"


def test_no_import_circle():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_arrows_point_down():
    upward = []
    for a, targets in graph().items():
        for b in targets:
            if unit(a) == unit(b):
                continue
            if floor(b) >= floor(a):
                upward.append(f"{a} -> {b}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_no_forbidden_edge():
    bad = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        for src, dst in NEVER
        if (a == src or a.startswith(src + ".")) and (b == dst or (dst != "medrlvr.train" and b.startswith(dst + ".")))
    ]
    bad += [f"{a} -> {b}" for a, targets in graph().items() for b in targets
            if unit(b) in STAGES and unit(a) in STAGES | {"report"} and unit(a) != unit(b)]  # fmt: skip
    assert not bad, "forbidden imports:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize("source, expected", [
    ("from ... import store\n", {"medrlvr.store"}),
    ("from .. import config\n", {"medrlvr.train.config"}),
    ("def f():\n    from ...errors import UserError\n", {"medrlvr.errors"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from medrlvr.records import Record\n", {"medrlvr.records"}),
])  # fmt: skip
def test_the_walker_counts_lazy_and_typing_imports(source, expected):
    path = SRC / "train" / "grpo" / "_probe_.py"  # read as if it stood in train/grpo/
    known = {**modules(), "medrlvr.train.grpo._probe_": path}
    assert imports(path, known, source) == expected


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(command):
    """``ruff check`` and ``ruff format --check`` with pyproject.toml's settings (ruff comes with the test extra)."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    root = SRC.parents[1]
    result = subprocess.run([ruff, *command, "src", "tests", "scripts"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
