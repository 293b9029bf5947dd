"""Successful jobs through the CLI: outputs honour the umask and match what the report says."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.outputs_on_disk import assert_outputs_on_disk

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    from payload.simulate import simulate_events

    return simulate_events(4, 21, path=tmp_path_factory.mktemp("spine-events") / "events.h5")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_honour_the_umask_and_match_the_report(tmp_path, run_cli, read_reports, events,
                                                       umask, mode):
    train, infer = tmp_path / "train", tmp_path / "infer"
    train.mkdir()
    infer.mkdir()
    result = run_cli(["--mode=train", f"--inputEventsFile={events}", "--modelConfig=tiny",
                      "--epochs=1", "--batchSize=2", "--validationSplit=0",
                      "--outputModelFile=model.keras", "--outputMetricsFile=metrics.json"],
                     train, umask=umask, timeout=600)
    assert result.rc == 0, result.stderr[-3000:]
    report, error = read_reports(train)
    assert error is None
    assert sorted(assert_outputs_on_disk(train, report)) == ["metrics.json", "model.keras"]

    result = run_cli(["--mode=infer", f"--inputEventsFile={events}", "--modelConfig=tiny",
                      f"--modelFile={train / 'model.keras'}", "--outputPredFile=pred.h5"],
                     infer, umask=umask, timeout=600)
    assert result.rc == 0, result.stderr[-3000:]
    report, _ = read_reports(infer)
    assert assert_outputs_on_disk(infer, report) == ["pred.h5"]

    for path in (train / "model.keras", train / "metrics.json", infer / "pred.h5",
                 train / "jobReport.json", infer / "jobReport.json"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, f"{path.name}: {oct(path.stat().st_mode)}"


def test_a_job_through_the_pyz_runs_its_payload_child_from_the_pyz(tmp_path, events):
    import os
    import re
    import subprocess
    import sys

    from scripts.tools import build_pyz

    pyz = build_pyz.build(tmp_path / "dune-payload.pyz")
    job = tmp_path / "job"
    job.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    model = tmp_path / "model"
    model.mkdir()
    train = subprocess.run([sys.executable, str(pyz), "--mode=train", f"--inputEventsFile={events}",
                            "--modelConfig=tiny", "--epochs=1", "--batchSize=2", "--validationSplit=0",
                            "--outputModelFile=model.keras"], cwd=model, env=env, capture_output=True,
                           text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    done = subprocess.run([sys.executable, str(pyz), "--mode=infer", f"--inputEventsFile={events}",
                           "--modelConfig=tiny", f"--modelFile={model / 'model.keras'}",
                           "--outputPredFile=pred.h5"], cwd=job, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for result in (train, done):
        origin = re.search(r"payload step: process \d+, code from (\S+)", result.stdout)
        assert origin and origin.group(1) == str(pyz), result.stdout
    report = json.loads((job / "jobReport.json").read_text())
    assert assert_outputs_on_disk(job, report) == ["pred.h5"]
