"""Imports point one way: no cycles (deferred imports included), the layering of the packages,
and the leaves of ``trainables`` import nothing else of it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "trainables", "search_spaces", "analysis")
FORBIDDEN = {
    "trainables": {"study", "analysis", "search_spaces"},
    "analysis": {"study", "trainables", "search_spaces"},
    "search_spaces": {"study", "analysis"},
}


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _type_checking_only(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (not for type checking)."""
    files = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
        deps = set()
        for m in found:
            while m and m not in files:
                m = m.rpartition(".")[0]
            if m and m != name:
                deps.add(m)
        graph[name] = deps
    return graph


def _related(a: str, b: str) -> bool:  # a package and its own submodules
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if _related(u, v):
                continue
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v) :] + [v])
            elif v not in state:
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert cycles == []


def test_layering():
    bad = [
        f"{m} imports {d}"
        for m, deps in import_graph().items()
        for d in deps
        if d.split(".")[0] in FORBIDDEN.get(m.split(".")[0], ())
    ]
    assert bad == []


def test_config_and_data_types_are_leaves():
    graph = import_graph()
    for leaf in ("trainables.families", "trainables.data.sets", "trainables.registry"):
        assert graph[leaf] == set(), f"{leaf} imports {graph[leaf]}"
    # The config derives its family fields from the families table, and nothing else.
    assert graph["trainables.config"] == {"trainables.families"}
    # The config's keys need nothing but the config and the families (no torch, no registry).
    assert graph["trainables.game.keys"] == {"trainables.config", "trainables.families"}


def test_importing_the_report_loads_no_training_or_tracking_code():
    code = (
        "import sys, analysis.report, analysis.load\n"
        "heavy = ('torch', 'ray', 'mlflow', 'trainables', 'study', 'search_spaces')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


#: ``trainables`` from the bottom up: the foundation (the config schema and what every package
#: reads), then the sub-packages by concern, then the trial's story and the CLIs. A module imports
#: only its own layer and those below, so the walk from ``run_trial`` enters each package once.
TRAINABLES_LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "trainables",
        "trainables.config",
        "trainables.families",
        "trainables.registry",
        "trainables.log",
        "trainables.flags",
    ),
    ("trainables.data",),
    ("trainables.game",),
    ("trainables.models",),
    ("trainables.evaluation",),
    (
        "trainables.stages",
        "trainables.trial",
        "trainables.catalog",
        "trainables.run",
        "trainables.calibrate",
        "trainables.anonymize",
    ),
)


def _layer(module: str, layers: tuple[tuple[str, ...], ...]) -> int | None:
    for i, units in enumerate(layers):
        if any(module == u or ("." in u and module.startswith(u + ".")) for u in units):
            return i
    return None


def test_trainables_layers_point_down():
    graph = {m: d for m, d in import_graph().items() if m.startswith("trainables")}
    unplaced = sorted(m for m in graph if _layer(m, TRAINABLES_LAYERS) is None)
    assert unplaced == [], f"place these modules in TRAINABLES_LAYERS: {unplaced}"
    upward = [
        f"{m} (layer {_layer(m, TRAINABLES_LAYERS)}) imports {d} (layer {_layer(d, TRAINABLES_LAYERS)})"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if d.startswith("trainables")
        and _layer(d, TRAINABLES_LAYERS) > _layer(m, TRAINABLES_LAYERS)  # type: ignore[operator]
    ]
    assert upward == []
