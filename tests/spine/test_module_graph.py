"""The shape of the code (docs/design.md, 'Rules' and 'The house'): payload/ never imports wrapper/,
wrapper/ reaches the payload only through `payload.api`, a room of wrapper/ imports only the shared
vocabulary and the rooms a job passes through before it, and no module imports a module that
imports it back, at the top or inside a function.

Read from the source with `ast`, so a lazy import inside a function counts as much as a top-level
one: a circle that only works because one side imports late is still a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("payload", "wrapper")
# wrapper/'s rooms in the order a job passes through them (docs/design.md, 'The house').
ROOMS = ("args", "cluster", "platform", "builds", "staging", "checkpoints", "step", "report")
# The top-level modules every room may use; they import only each other.
SHARED = ("causes", "console", "errors", "exitcodes", "jobfiles", "redact", "signals", "tokens")
# The modules that run a job from end to end (serve: the inference server a site runs): they may import any room.
DRIVERS = ("__main__", "flow", "main", "serve")
PAYLOAD_DOOR = {"payload", "payload.api"}


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


def place(module: str):
    """('shared' | 'driver' | 'room', rank) of a wrapper module; rank orders the rooms."""
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in SHARED:
        return "shared", -1
    if len(parts) == 2 and parts[1] in DRIVERS:
        return "driver", len(ROOMS)
    if len(parts) >= 2 and parts[1] in ROOMS:
        return "room", ROOMS.index(parts[1])
    return "unplaced", None


def direction_offences(graph: dict) -> dict:
    """{module: [imports against the layout's direction]} for wrapper's modules."""
    offences = {}
    for module, deps in graph.items():
        if module == "wrapper" or not module.startswith("wrapper."):
            continue
        kind, rank = place(module)
        bad = []
        for dep in sorted(deps):
            if dep.startswith("payload"):
                if dep not in PAYLOAD_DOOR:
                    bad.append(f"{dep} (the payload only through payload.api)")
                continue
            if dep == "wrapper":
                continue
            dep_kind, dep_rank = place(dep)
            if kind == "unplaced" or dep_kind == "unplaced":
                bad.append(f"{dep} (a module outside the layout)")
            elif kind == "shared" and dep_kind != "shared":
                bad.append(f"{dep} (the shared vocabulary imports only itself)")
            elif kind == "room" and dep_kind == "driver":
                bad.append(f"{dep} (a room never imports the driver)")
            elif kind == "room" and dep_kind == "room" and dep_rank > rank:
                bad.append(f"{dep} (a later room)")
        if bad:
            offences[module] = bad
    return offences


def test_wrapper_rooms_import_only_earlier_rooms_and_the_payload_door():
    assert direction_offences(import_graph()) == {}


def test_every_wrapper_module_has_a_place_in_the_layout():
    unplaced = [m for m in module_files() if m.startswith("wrapper.") and place(m)[0] == "unplaced"]
    assert unplaced == []


def test_the_direction_check_sees_a_backward_import_and_a_side_door():
    graph = {"wrapper.args.spec": {"wrapper.report.jobreport"},
             "wrapper.step.request": {"payload.training", "payload.api", "wrapper.args.spec"},
             "wrapper.errors": {"wrapper.staging.failures"},
             "wrapper.flow": {"wrapper.report.jobreport", "payload.api"}}
    assert direction_offences(graph) == {
        "wrapper.args.spec": ["wrapper.report.jobreport (a later room)"],
        "wrapper.step.request": ["payload.training (the payload only through payload.api)"],
        "wrapper.errors": ["wrapper.staging.failures (the shared vocabulary imports only itself)"]}


def test_no_module_imports_a_module_that_imports_it_back():
    assert circles(import_graph()) == []


def test_the_checks_see_a_circle_and_a_lazy_import():
    known = {"payload.api", "payload.training"}
    lazy = "def train():\n    from payload import training\n"
    assert imports_of(lazy, known) == {"payload.training"}
    graph = {"payload.api": {"payload.training"}, "payload.training": {"payload.config", "payload.api"},
             "payload.config": set()}
    assert circles(graph) == [["payload.api", "payload.training"]]
