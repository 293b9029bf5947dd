"""The shape of the code (docs/design.md, 'Rules'): payload/ never imports wrapper/, and no module
imports a module that imports it back, at the top or inside a function.

Read from the source with `ast`, so a lazy import inside a function counts as much as a top-level
one: a circle that only works because one side imports late is still a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("payload", "wrapper")


def module_files() -> dict:
    """{dotted module name: path} of every module of the two packages."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(source: str, known) -> set:
    """The known modules `source` imports anywhere (`from a import b` counts `a.b` when it is one)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in out if name in known}


def import_graph() -> dict:
    files = module_files()
    # A package and its own submodules import each other by construction (the package's __init__
    # re-exports them, Python runs it before any of them): those edges are not circles.
    return {name: {d for d in imports_of(path.read_text(), files)
                   if not d.startswith(name + ".") and not name.startswith(d + ".")}
            for name, path in files.items()}


def circles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_payload_never_imports_wrapper():
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d.startswith("wrapper"))
                 for m, deps in graph.items() if m.startswith("payload")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_no_module_imports_a_module_that_imports_it_back():
    assert circles(import_graph()) == []


def test_the_checks_see_a_circle_and_a_lazy_import():
    known = {"payload.api", "payload.training"}
    lazy = "def train():\n    from payload import training\n"
    assert imports_of(lazy, known) == {"payload.training"}
    graph = {"payload.api": {"payload.training"}, "payload.training": {"payload.config", "payload.api"},
             "payload.config": set()}
    assert circles(graph) == [["payload.api", "payload.training"]]
