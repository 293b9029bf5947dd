"""The house rules a reader can check by eye, checked by the tests (docs/design.md, 'The house'):
short functions, short modules, and a layout table in the README and in docs/design.md that names
every module there is and no other. (Every cause a `Cause` member: tests/spine/test_names_once.py.)
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("payload", "wrapper")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
ROOM_ROW = re.compile(r"^\| `((?:payload|wrapper)/[a-z_/]*)` \|(.*)\|\s*$", re.M)
BOLD = re.compile(r"\*\*([a-z][a-z0-9_]*)\*\*")


def sources() -> dict:
    """{path relative to the root: source} of every module of the two packages."""
    return {path.relative_to(ROOT).as_posix(): path.read_text()
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list:
    """(name, first line, lines) of every function or method longer than `limit` lines."""
    return [(node.name, node.lineno, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def rooms_named(text: str) -> dict:
    """{room folder: [module names in bold]} of a layout table's rows."""
    return {folder.rstrip("/"): BOLD.findall(what) for folder, what in ROOM_ROW.findall(text)}


def rooms_on_disk() -> dict:
    """{room folder: [its modules]} for every folder of the two packages that holds modules."""
    rooms = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.stem in ("__init__", "__main__"):
                continue
            rooms.setdefault(path.parent.relative_to(ROOT).as_posix(), []).append(path.stem)
    return rooms


def test_no_function_is_longer_than_the_limit():
    found = {path: long for path, text in sources().items() if (long := long_functions(text))}
    assert found == {}


def test_no_module_is_longer_than_the_limit():
    found = {path: n for path, text in sources().items() if (n := len(text.splitlines())) > MAX_MODULE_LINES}
    assert found == {}


def test_the_readme_layout_names_every_module_and_only_those():
    named = rooms_named((ROOT / "README.md").read_text())
    assert {room: sorted(mods) for room, mods in named.items()} == rooms_on_disk()


def test_the_design_layout_names_every_module_and_only_those():
    named = rooms_named((ROOT / "docs" / "design.md").read_text())
    assert {room: sorted(mods) for room, mods in named.items()} == rooms_on_disk()


def test_the_checks_see_what_they_are_for():
    long = "def f():\n" + "    x = 1\n" * 60
    assert long_functions(long) == [("f", 1, 61)]
    assert long_functions("def f():\n    return 1\n") == []
    table = "| `wrapper/args/` | **grammar** (words), **spec** |\n| `payload/` | **model** |\n"
    assert rooms_named(table) == {"wrapper/args": ["grammar", "spec"], "payload": ["model"]}
