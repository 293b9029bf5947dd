"""Things named once: the failure causes and the exit codes, against the documents that list them.

The README and docs/faults.md are read as a person reads them (their tables and lists), so a
cause or an exit code added to the code and not to the documents, or the other way round, fails.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from wrapper import exitcodes
from wrapper.causes import Cause
from wrapper.errors import InputFileError, OutputFileError

ROOT = Path(__file__).resolve().parents[2]
TICKED = re.compile(r"`([a-z][a-z-]*)`")


def faults_table_causes(text: str) -> list:
    """The first-column names of the errorCause table in docs/faults.md."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| errorCause |"))
    names = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        names += TICKED.findall(line.split("|")[1])
    return names


def readme_causes(text: str) -> list:
    """The causes the README's bullet 'Every failure names its cause' lists."""
    start = text.index("- Every failure names its cause")
    bullet = re.split(r"\n(?:- |\n)", text[start + 2:], maxsplit=1)[0]
    return [name for name in TICKED.findall(bullet) if name != "errorCause"]


def readme_exit_table(text: str) -> dict:
    """{code: acronym} of the README's exit-code table rows with a numeric code."""
    rows = re.findall(r"^\| (\d+) \| (\w+) \|", text, flags=re.M)
    return {int(code): acronym for code, acronym in rows}


def test_docs_faults_lists_exactly_the_causes():
    listed = faults_table_causes((ROOT / "docs" / "faults.md").read_text())
    assert len(listed) == len(set(listed)), f"listed twice: {sorted(n for n in listed if listed.count(n) > 1)}"
    assert sorted(listed) == sorted(c.value for c in Cause)


def test_readme_lists_exactly_the_causes():
    listed = readme_causes((ROOT / "README.md").read_text())
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(c.value for c in Cause)


def test_the_list_readers_see_a_missing_or_extra_name():
    faults = (ROOT / "docs" / "faults.md").read_text()
    assert "`not-found`" in faults
    fewer = faults_table_causes(faults.replace("| `not-found` |", "| not found |", 1))
    assert "not-found" not in fewer and len(fewer) == len(Cause) - 1
    readme = (ROOT / "README.md").read_text()
    more = readme_causes(readme.replace("`not-found`,", "`not-found`, `lost`,", 1))
    assert "lost" in more and len(more) == len(Cause) + 1


def test_readme_exit_code_table_matches_the_table_in_the_code():
    assert readme_exit_table((ROOT / "README.md").read_text()) == {
        code: entry.acronym for code, entry in exitcodes.BY_CODE.items()}


def test_the_exit_table_reader_sees_a_changed_row():
    readme = (ROOT / "README.md").read_text()
    changed = readme_exit_table(readme.replace("| 9 | TRF_INPUT_FILE_ERROR |", "| 10 | TRF_INPUT_FILE_ERROR |"))
    assert 9 not in changed and changed[10] == "TRF_INPUT_FILE_ERROR"


def test_causes_keep_the_report_strings():
    err = InputFileError("x", cause=Cause.CHECKSUM_MISMATCH)
    assert f"{err.cause}" == str(err.cause) == "checksum-mismatch"
    assert OutputFileError("y").cause is Cause.UNWRITABLE


@pytest.mark.parametrize("text", ["network-hiccup", "checksum-mismatch"])
def test_a_cause_given_as_a_string_is_a_bug(text):
    with pytest.raises(TypeError, match="not a Cause member"):
        InputFileError("x", cause=text)


def cause_literals(source: str) -> set:
    """String constants the code gives as a cause (it should give none: every cause is a member): `cause="..."` arguments, the third argument of
    input_error/output_error, `cause = "..."` assignments (also in `cause, detail = "...", ...`),
    and what the `classify*` functions return (a cause, or a tuple that starts with one)."""
    import ast

    found = set()
    tree = ast.parse(source)
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and "classify" in func.name:
            for ret in (n for n in ast.walk(func) if isinstance(n, ast.Return) and n.value is not None):
                first = ret.value.elts[0] if isinstance(ret.value, ast.Tuple) else ret.value
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            args = [kw.value for kw in node.keywords if kw.arg == "cause"]
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("input_error", "output_error") and len(node.args) >= 3:
                args.append(node.args[2])
            found |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
        elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.Tuple)):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for t, v in zip(names, values):
                    if getattr(t, "id", "") == "cause" and isinstance(v, ast.Constant) and isinstance(v.value, str):
                        found.add(v.value)
    return found


def cause_members(source: str) -> set:
    """The names `X` of every `Cause.X` the source writes."""
    import ast

    return {node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "Cause"}


def test_every_cause_the_code_names_is_a_member_never_a_string():
    literals, members = {}, set()
    for path in sorted([*(ROOT / "wrapper").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        source = path.read_text()
        for literal in cause_literals(source):
            literals.setdefault(literal, []).append(path.relative_to(ROOT).as_posix())
        members |= cause_members(source)
    assert literals == {}
    assert {"NOT_FOUND", "DISK_FULL", "SERVER_ERROR", "REFUSED", "HOST_OOM"} <= members
    assert members - set(Cause.__members__) == set()


def test_the_cause_scan_sees_each_form():
    source = ('raise InputFileError("m", cause="lost")\n'
              'raise input_error(uri, "s3", "gone", "detail")\n'
              'cause, detail = "vanished", "why"\n'
              'def classify(exc):\n    return "astray", "detail"\n')
    assert cause_literals(source) == {"lost", "gone", "vanished", "astray"}
    assert cause_members("raise X(cause=Cause.NOT_FOUND)\nCause.NOPE\n") == {"NOT_FOUND", "NOPE"}
