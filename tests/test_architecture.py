"""The layers hold: imports flow one way, and the server never reaches past the sandbox API.

Read from the source with ``ast`` (nothing is imported), so a cycle held together by
function-local imports counts as a cycle too. ``docs/architecture.md`` shows the layers
this checks; run it alone with ``.venv/bin/pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import functools
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "scorer", "sandbox")

# Imports that stay inside a function, each for a reason the top of the file cannot give.
LOCAL_IMPORTS_ALLOWED = {
    # Django's documented place for what needs every app loaded: emails and tasks register.
    ("server/accounts/apps.py", "server.accounts.emails"),
    ("server/ops/apps.py", "server.ops.signals"),
    ("server/outbox/apps.py", "server.outbox.tasks"),
    ("server/submissions/apps.py", "server.submissions.tasks"),
    ("server/submissions/apps.py", "server.submissions.emails"),
    # The web host has no GPU and must not pay for the import at start-up.
    ("server/ops/health.py", "sandbox.gpu"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts and "runner" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The first-party modules an import statement loads (``from a import b`` may be a
    module ``a.b`` or a name in ``a``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module:
        names = [
            f"{node.module}.{alias.name}"
            if f"{node.module}.{alias.name}" in modules
            else node.module
            for alias in node.names
        ]
    else:
        names = []
    return [name for name in names if name in modules]


def _imports(path: Path) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import in ``path`` with whether it sits inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {
                id(sub) for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
            }
    return [
        (node, id(node) in local)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports, anywhere in the file."""
    modules = _sources()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for node, _ in _imports(path) for t in _imported(node, modules)}
        graph[name] = targets - {name}
    return graph


def test_the_server_scorer_and_sandbox_imports_have_no_cycle() -> None:
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert "server.submissions.tasks" in order


def test_the_checker_finds_a_cycle_held_by_a_local_import(tmp_path: Path) -> None:
    # The check itself: two modules importing each other, one inside a function.
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    import a\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {
        n: {t for node, _ in _imports(p) for t in _imported(node, modules)}
        for n, p in modules.items()
    }
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_only_the_documented_local_imports_remain() -> None:
    modules = _sources()
    local = {
        (str(path.relative_to(ROOT)), target)
        for path in modules.values()
        if path.is_relative_to(ROOT / "server")
        for node, inside in _imports(path)
        if inside
        for target in _imported(node, modules)
    }
    assert local == LOCAL_IMPORTS_ALLOWED


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), set()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _third_party(path: Path) -> set[str]:
    names = set()
    for node, _ in _imports(path):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_server_never_imports_the_docker_sdk_nor_a_backend_module() -> None:
    # It asks the SandboxBackend interface (sandbox/base.py) and picks a backend by name
    # (sandbox/backends.py), whichever engine is behind it.
    modules = _sources()
    for name, path in modules.items():
        if name.startswith("server."):
            assert "docker" not in _third_party(path), name
            backends = {
                t for t in import_graph()[name] if t.endswith("_backend") or t == "sandbox.warm"
            }
            assert not backends, f"{name} imports {backends}"


@pytest.mark.parametrize(
    "module", ["sandbox.bwrap_backend", "sandbox.process_backend", "sandbox.hostside"]
)
def test_backends_without_docker_do_not_pull_it_in(module: str) -> None:
    modules = _sources()
    graph = import_graph()
    reached = {module, *_reaches(graph, module)}
    assert "sandbox.docker_backend" not in reached
    assert not [m for m in reached if "docker" in _third_party(modules[m])]
