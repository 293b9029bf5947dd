"""The single-file trf: what it holds, that it behaves as the installed `dune-payload`, and that
a node lacking a package gets exit 69 naming it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from wrapper.platform import requirements as rc
BAD_ARGS = ["--mode=infer", "--inputEventsFile=a.h5", "--outputPredFile=pred.h5", "--nosuchOption=3"]
INFER = ["--mode=infer", "--inputEventsFile=a.h5,b.h5", "--modelFile=model.keras",
         "--outputPredFile=pred.h5"]


def _run(command, cwd, **kw):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the pyz must bring its own packages
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, **kw)


def _reports(directory: Path):
    job = json.loads((directory / "jobReport.json").read_text())
    error = directory / "payload_error_report.json"
    return job, (json.loads(error.read_text()) if error.exists() else None)


@pytest.fixture(scope="module")
def installed() -> str:
    path = Path(sys.executable).with_name("dune-payload")
    assert path.is_file(), "pip install -e . first: the console script is part of the package"
    return str(path)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """An interpreter with nothing installed: a fresh venv of the base Python, no system packages."""
    env_dir = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    return str(env_dir / "bin" / "python")


def test_pyz_is_a_zipapp_of_the_two_packages(pyz):
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(pyz, os.X_OK)
    names = zipfile.ZipFile(pyz).namelist()
    assert "__main__.py" in names and "wrapper/main.py" in names and "payload/api.py" in names
    assert "wrapper/platform/requirements.py" in names and "wrapper/staging/__init__.py" in names
    assert {n.split("/")[0] for n in names} == {"__main__.py", "wrapper", "payload"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "wrapper.main" in zipfile.ZipFile(pyz).read("__main__.py").decode()


def test_pyz_help_is_the_installed_help(pyz, installed, tmp_path):
    by_pyz = _run([str(pyz), "--help"], tmp_path)
    by_installed = _run([installed, "--help"], tmp_path)
    assert by_pyz.returncode == by_installed.returncode == 0
    assert by_pyz.stdout == by_installed.stdout and "--inputEventsFile" in by_pyz.stdout


def test_pyz_and_installed_give_the_same_reports_for_an_argument_error(pyz, installed, tmp_path):
    results = {}
    for name, command in (("pyz", [str(pyz)]), ("installed", [installed])):
        (tmp_path / name).mkdir()
        proc = _run(command + BAD_ARGS, tmp_path / name)
        job, error = _reports(tmp_path / name)
        job.pop("created")
        job.pop("resource")
        [step.pop(k) for step in job.get("executor", []) for k in ("started", "ended", "wallTime", "cpuTime")]
        results[name] = (proc.returncode, proc.stderr, job, error)
    assert results["pyz"] == results["installed"]
    code, stderr, _, error = results["pyz"]
    assert code == 7 and error["error_code"] == 7 and "--nosuchOption" in error["error_diag"]


def test_pyz_on_a_node_without_numpy_and_h5py_exits_69_naming_them(pyz, bare_python, tmp_path):
    proc = _run([bare_python, str(pyz), *INFER], tmp_path)
    assert proc.returncode == 69
    job, error = _reports(tmp_path)
    assert error["error_code"] == 69 == job["exitCode"]
    assert job["exitAcronym"] == "TRF_EXEC_SETUP_FAIL"
    assert error["error_diag"].startswith("missing Python packages: numpy, h5py, keras, ")
    assert "pip install numpy h5py keras" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pyz_argument_errors_need_no_third_party_package(pyz, bare_python, tmp_path):
    proc = _run([bare_python, str(pyz), *BAD_ARGS], tmp_path)
    assert proc.returncode == 7
    assert _reports(tmp_path)[1]["error_code"] == 7


@pytest.mark.parametrize("mode, uris, plots, expected", [
    ("infer", (), False, ["numpy", "h5py", "keras", "tensorflow"]),
    ("train", ("s3://bucket/a.h5", "b.h5"), True,
     ["numpy", "h5py", "keras", "tensorflow", "boto3", "matplotlib"]),
    (None, ("https://host.example.org/a.h5",), False, ["numpy", "h5py", "requests"]),
])
def test_requirements_follow_mode_sources_and_plots(monkeypatch, mode, uris, plots, expected):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert [r.module for r in rc.requirements(mode, uris=uris, plots=plots)] == expected


def test_requirements_follow_the_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert [r.module for r in rc.requirements("evaluate")][-1] == "jax"


def test_check_passes_here_without_importing_the_framework(tmp_path):
    code = ("import sys; from wrapper.platform.requirements import check_requirements; "
            "check_requirements('infer', uris=['s3://b/k', 'https://h.example.org/f']); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'boto3', 'requests') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(rc.__file__).parents[2],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_pyz_names_a_package_that_is_installed_but_broken(pyz, tmp_path):
    """h5py copied into an environment without numpy: present, but its import fails."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site_packages = next(env_dir.glob("lib/python3*/site-packages"))
    import h5py

    source = Path(h5py.__file__).parent
    for path in source.parent.glob("h5py*"):
        if path.is_dir():
            shutil.copytree(path, site_packages / path.name)
    (tmp_path / "job").mkdir()
    proc = _run([str(env_dir / "bin" / "python"), str(pyz), *INFER], tmp_path / "job")
    assert proc.returncode == 69
    job, _ = _reports(tmp_path / "job")
    message = job["exitMsg"] + " " + job["exitMsgExtra"]
    assert message.startswith("missing Python packages: numpy, keras, ")
    assert "h5py cannot be imported (ModuleNotFoundError" in message
