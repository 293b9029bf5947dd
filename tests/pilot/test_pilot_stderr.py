"""Pilot 3.11 fails a job that exited 0 when the payload's stderr holds one of its container-runtime
messages (pilot/common/errorcodes.py, ErrorCodes.resolve_transform_error). Nothing the trf or the
framework prints may match them: checked with the pilot's own code and pattern list, read from the
unpacked 3.11.5.1, on what real jobs wrote."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.pilot_harness import pilots

PILOT3_ONLY = pytest.mark.parametrize("pilot_version", [pilots.PILOT3_VERSION],
                                      ids=[f"pilot-{pilots.PILOT3_VERSION}"])
ROOT = Path(__file__).resolve().parents[2]
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ dune-payload "


def _verdict_of_exit_0(pilot, stderr: str) -> tuple:
    """(pilot error code, message) pilot 3.11 gives a payload that exited 0 with this stderr."""
    return pilots.error_codes(pilot)().resolve_transform_error(0, stderr)


@PILOT3_ONLY
def test_the_pattern_list_is_read_from_the_pilot_and_catches_a_runtime_message(pilot):
    source = pilot.errorcodes.read_text()
    assert '"Failed to create user namespace": self.SINGULARITYFAILEDUSERNAMESPACE' in source
    code, message = _verdict_of_exit_0(pilot, "FATAL: Failed to create user namespace: x\n")
    assert code == pilots.error_codes(pilot).SINGULARITYFAILEDUSERNAMESPACE
    assert message == "Failed to create user namespace"


@PILOT3_ONLY
@pytest.mark.pilot_job("success", "installed", "trf_in_harvester_workdir", "missing_output",
                       "bad_argument", "missing_input", "sigterm")
def test_no_job_stderr_matches_the_pilots_container_runtime_patterns(verdicts, pilot):
    """Finished jobs and failed ones (whose one-line error is the only stderr we write): none
    would be failed by the patterns even had it exited 0."""
    for name, verdict in verdicts.items():
        stderr = (Path(verdict["job_dir"]) / "payload.stderr").read_text(errors="replace")
        assert _verdict_of_exit_0(pilot, stderr) == (0, ""), f"{name}: {stderr[-500:]}"
    assert verdicts["success"]["job_status"] == verdicts["installed"]["job_status"] == "finished"
    ok = (Path(verdicts["success"]["job_dir"]) / "payload.stderr").read_text()
    assert ok == "", f"a normal job wrote on stderr: {ok[-500:]}"


def test_library_logging_and_warnings_go_to_stdout_with_timestamps(tmp_path):
    code = ("import logging, warnings; from wrapper.report.stdout_logging import configure; configure(); "
            "logging.getLogger('wrapper.staging.stage').info('staged a.h5'); "
            "logging.getLogger('wrapper.staging.stage').warning('adler32 not verified'); "
            "warnings.warn('framework noise', UserWarning)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines
    assert [line.split(" ")[2] for line in lines] == ["INFO", "WARNING", "WARNING"]
    assert all(re.match(STAMP, line) for line in lines), lines
    assert "wrapper.staging.stage: staged a.h5" in lines[0] and "framework noise" in lines[2]
