"""Imports flow one way (docs/architecture.md; STYLE.md; issue 14), read from the code with `ast`:

- the ground floor (eventtrack/) imports no other package of the project and nothing HTTP; ingest_api/ and
  orchestration/ import only the ground floor; the CLI (eventtrack_cli/) is on top and nothing imports it;
- no import cycle between modules; the hot path (capture, sessions, flags) reaches nothing of admin,
  dashboard, privacy or experiments;
- no module uses another module's `_private` name.

A helper two modules need moves down into a shared module under a public name. Read from the code with
`ast`: `from m import _x`, and `m._x` where `m` was imported as a project module. Importing a private
module (`from pkg import _utils`, Starlette's way of sharing helpers) is allowed: its names are public to
its package.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("eventtrack", "ingest_api", "orchestration", "eventtrack_cli")

# Which top-level packages each one may import: one way, from the top floor down.
FLOORS = {
    "eventtrack": set(),
    "ingest_api": {"eventtrack"},
    "orchestration": {"eventtrack"},
    "eventtrack_cli": {"eventtrack", "ingest_api", "orchestration"},
}

# Known private uses left for the next slices of issue 14: (importing module, imported module, name) -> why
# it stays for now. The first slice moved the last ones (admin/routes.py's parameter helpers, routes/flags.py's
# snapshot, routes/capture.py's reject/write) into shared modules, so none is left; keep it that way.
ALLOWED: dict[tuple[str, str, str], str] = {}


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def private_uses(module: str, source: str, *, is_package: bool, modules: set[str]) -> list[tuple[str, str]]:
    """The (other project module, private name) pairs `module` takes, in the order they appear."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    bound: dict[str, str] = {}  # local name -> the project module (or package) it is
    found: list[tuple[str, str]] = []
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom, ast.Attribute))),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            if base.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:  # a module, not a name inside one
                    bound[alias.asname or alias.name] = submodule
                elif _is_private(alias.name) and base != module:
                    found.append((base, alias.name))
        elif _is_private(node.attr):
            parts = _dotted(node.value)
            if parts and parts[0] in bound:
                target = ".".join([bound[parts[0]], *parts[1:]])
                if target in modules and target != module:
                    found.append((target, node.attr))
    return found


def test_no_module_uses_another_modules_private_names():
    modules = project_modules()
    found = {
        (module, target, name)
        for module, path in modules.items()
        for target, name in private_uses(
            module, path.read_text(), is_package=path.name == "__init__.py", modules=set(modules)
        )
    }
    new = sorted(found - set(ALLOWED))
    assert not new, "give these helpers a public name in a shared module:\n" + "\n".join(
        f"{m} uses {t}.{n}" for m, t, n in new
    )
    gone = sorted(set(ALLOWED) - found)
    assert not gone, f"no longer used, so remove them from ALLOWED: {gone}"


MODULES = {
    "ingest_api.routes.capture",
    "ingest_api.routes.body",
    "ingest_api.admin",
    "ingest_api.admin._shared",
    "ingest_api.sink",
}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ingest_api.routes.capture import _write, batch", [("ingest_api.routes.capture", "_write")]),
        ("from .capture import _reject as reject", [("ingest_api.routes.capture", "_reject")]),
        ("from ..sink import _Pending", [("ingest_api.sink", "_Pending")]),
        (
            "from ingest_api.routes import capture\ncapture._status_for('x')",
            [("ingest_api.routes.capture", "_status_for")],
        ),
        ("import ingest_api.sink\ningest_api.sink._queue", [("ingest_api.sink", "_queue")]),
        ("import ingest_api.sink as s\ns._queue.put(1)", [("ingest_api.sink", "_queue")]),
        ("from ingest_api.admin import _shared", []),  # a private module: shared within its package
        ("from ingest_api.routes.capture import __doc__, batch", []),
        ("from ingest_api.routes.body import _own", []),  # the module itself
        ("import os\nos._exit(1)\nfrom collections import _chain", []),  # not the project's
        ("sink = object()\nsink._queue", []),  # a local name, not the module
    ],
)
def test_private_uses_are_found_in_every_spelling(source, expected):
    assert private_uses("ingest_api.routes.body", source, is_package=False, modules=MODULES) == expected


def imports_of(module: str, source: str, *, is_package: bool, modules: set[str]) -> set[str]:
    """Every module `module` imports by name: project modules as their dotted names, others as their top package."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            found.add(name if name in modules else name.split(".")[0])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {
        module: imports_of(module, path.read_text(), is_package=path.name == "__init__.py", modules=set(modules))
        for module, path in modules.items()
    }


def reached_from(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module and outside package `start` imports, directly or through project modules."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_every_package_imports_only_the_floors_below_it():
    assert set(FLOORS) == {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in FLOORS
        and target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in FLOORS[module.split(".")[0]]
    )
    assert not bad, "imports must flow down (docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = import_graph()
    cycles = sorted(module for module in graph if module in reached_from(graph, module))
    assert not cycles, f"these modules import themselves through others: {cycles}"


def test_nothing_imports_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    cli_package = {target.split(".")[0] for target in scripts.values()}
    assert cli_package == {"eventtrack_cli"}
    modules = project_modules()
    sources = {m: p for m, p in modules.items() if not m.startswith("eventtrack_cli")}
    sources |= {f"bench.{p.stem}": p for p in sorted((ROOT / "bench").glob("*.py"))}
    bad = sorted(
        module
        for module, path in sources.items()
        if any(
            t.split(".")[0] == "eventtrack_cli"
            for t in imports_of(module, path.read_text(), is_package=path.name == "__init__.py", modules=set(modules))
        )
    )
    assert not bad, f"these modules import the CLI: {bad}"


# The hot path: every module a capture, session or flag request runs through.
HOT_PATH = (
    "ingest_api.routes.capture",
    "ingest_api.routes.sessions",
    "ingest_api.routes.flags",
    "ingest_api.posthog.capture",
    "ingest_api.posthog.flag_routes",
    "ingest_api.ofrep.routes",
    "ingest_api.middleware",
)
NOT_ON_THE_HOT_PATH = ("ingest_api.admin", "ingest_api.dashboard", "ingest_api.privacy", "ingest_api.experiments")


def test_the_hot_path_reaches_nothing_of_admin_dashboard_privacy_or_experiments():
    graph = import_graph()
    bad = {
        start: sorted(t for t in reached_from(graph, start) if t.startswith(NOT_ON_THE_HOT_PATH)) for start in HOT_PATH
    }
    assert all(start in graph for start in HOT_PATH)
    assert not any(bad.values()), f"move what both need down: {bad}"


def test_the_ground_floor_reaches_no_http_code():
    graph = import_graph()
    bad = sorted(m for m in graph if m.split(".")[0] == "eventtrack" and "starlette" in reached_from(graph, m))
    assert not bad, f"these ground-floor modules reach starlette: {bad}"


def test_the_dagster_code_location_reaches_no_http_code():
    """orchestration/ and ingest_api/ stand side by side on the ground floor (settings, database, ...): nothing
    orchestration imports, directly or through other project modules, imports starlette."""
    graph = import_graph()
    bad = [m for m in graph if m.split(".")[0] == "orchestration" and "starlette" in reached_from(graph, m)]
    assert not bad, f"these orchestration modules reach a module importing starlette: {sorted(set(bad))}"


def test_the_readme_and_the_architecture_doc_name_every_package():
    readme = (ROOT / "README.md").read_text()
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    missing = [p for p in FLOORS if f"- **{p}/**" not in readme or f"{p}/" not in architecture]
    assert not missing, f"list these packages in README.md's package list and docs/architecture.md: {missing}"
