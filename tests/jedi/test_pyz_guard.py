"""The pyz on an interpreter too old for the trf: both reports, exit 69, the version it needs.

Debian's apt (bookworm) offers no CPython older than the 3.9 the trf needs (only python3.11, and
pypy3 at 3.9), so the guard runs here in-process with an old version given to it; what makes it
run at all on an old interpreter, its grammar, is proved with `ast.parse(feature_version=(3, 6))`.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.tools import build_pyz

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    return build_pyz.build(tmp_path_factory.mktemp("pyz") / "dune-payload.pyz")


@pytest.fixture(scope="module")
def entry(pyz):
    """The pyz's own __main__.py, imported from the archive as a module."""
    with zipfile.ZipFile(pyz) as archive:
        source = archive.read("__main__.py").decode()
    module = type(sys)("pyz_entry")
    exec(compile(source, "__main__.py", "exec"), module.__dict__)
    module.source = source
    return module


@pytest.mark.parametrize("grammar", [(3, 4), (3, 6), (3, 8)])
def test_the_entry_parses_under_old_grammar(entry, grammar):
    ast.parse(entry.source, feature_version=grammar)


def test_the_trf_itself_would_not_parse_under_3_6(pyz):
    """Why the guard exists: the packages use grammar a 3.6 interpreter rejects."""
    with zipfile.ZipFile(pyz) as archive:
        failures = []
        for name in archive.namelist():
            if name.endswith(".py") and name != "__main__.py":
                try:
                    ast.parse(archive.read(name), feature_version=(3, 6))
                except SyntaxError:
                    failures.append(name)
    assert failures


def test_required_version_is_setup_py_python_requires(entry):
    wanted = re.search(r'python_requires=">=(\d+)\.(\d+)"', (ROOT / "setup.py").read_text())
    assert entry.REQUIRED == (int(wanted.group(1)), int(wanted.group(2)))


@pytest.mark.parametrize("version, old", [((3, 6, 15), True), ((3, 8, 18), True), ((2, 7, 18), True),
                                          ((3, 9, 0), False), ((3, 13, 1), False)])
def test_too_old(entry, version, old):
    assert entry.too_old(version) is old


def test_an_old_interpreter_gets_both_reports_and_exit_69(entry, tmp_path, capsys):
    code = entry.refuse((3, 6, 15, "final", 0), str(tmp_path), "/usr/bin/python3.6")
    assert code == 69
    error = json.loads((tmp_path / "payload_error_report.json").read_text())
    report = json.loads((tmp_path / "jobReport.json").read_text())
    assert error["error_code"] == 69 and "needs Python 3.9 or newer" in error["error_diag"]
    assert "Python 3.6.15" in error["error_diag"] and "/usr/bin/python3.6" in error["error_diag"]
    assert report["exitCode"] == 69 and report["exitAcronym"] == "TRF_EXEC_SETUP_FAIL"
    assert report["exitMsg"] == error["error_diag"]
    assert "needs Python 3.9 or newer" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def test_the_guard_reports_have_the_trf_report_shape(entry, pyz, tmp_path):
    """Same keys as the reports the trf itself writes for a failure (here: an argument error)."""
    real, old = tmp_path / "real", tmp_path / "old"
    real.mkdir(), old.mkdir()
    done = subprocess.run([sys.executable, str(pyz), "--mode=infer", "--bogus=1"], cwd=real,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 7, done.stderr
    entry.refuse((3, 6, 15), str(old), "python3")
    for name in ("jobReport.json", "payload_error_report.json"):
        written = json.loads((old / name).read_text())
        trf = json.loads((real / name).read_text())
        assert set(written) <= set(trf), name
        assert type(written.get("files")) is type(trf.get("files"))


def test_a_new_enough_interpreter_runs_the_trf(pyz, tmp_path):
    done = subprocess.run([sys.executable, str(pyz), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--containerImage" in done.stdout and "--nThreads" in done.stdout
