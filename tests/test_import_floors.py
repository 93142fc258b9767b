"""The package's import graph: no cycle, and no floor imports a higher one.

Every module of ``muselq_sb/`` is parsed with ``ast``; every ``import``
counts, also one inside a function (a hidden import is still a dependency).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "muselq_sb"

#: The floors, lowest first (docs/package_map.md). A module may import its
#: own floor (without a cycle) and the floors below, never one above.
FLOORS = {
    "muselq_sb": 0, "version": 0, "utils": 0, "dataio": 0,
    "nnet": 1,
    "lobes": 2,
    "pretrain": 3, "inference": 3, "prepare": 3, "hear": 3,
    "downstream": 4,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (a ``from x import y`` of a
    module ``x.y`` counts as ``x.y``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def floor(name: str) -> int:
    parts = name.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else parts[0]]


GRAPH = {name: imported(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_floor():
    assert {n.split(".")[1] for n in GRAPH if "." in n} <= set(FLOORS)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_upward_import(name):
    upward = sorted(t for t in GRAPH[name] if floor(t) > floor(name))
    assert not upward, f"{name} (floor {floor(name)}) imports {upward}"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_checks_see_hidden_imports(tmp_path):
    """An import inside a function counts (the graph is not fooled)."""
    hidden = tmp_path / "m.py"
    hidden.write_text("def f():\n    from muselq_sb.lobes import model\n")
    assert imported("muselq_sb.nnet.m", hidden, {"muselq_sb.lobes.model"}) == {
        "muselq_sb.lobes.model"}
