"""Names the job directory already uses for something else, which no output may take.

An output written under such a name is overwritten by (or overwrites) that other file: the pilot
would ship a job report as predictions, or read predictions as its payload's stdout. So these names
are refused before any work, as an argument error naming the clash.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional

from wrapper.errors import ArgumentError
from wrapper.jobfiles import CHECKPOINT_DIR, ERROR_REPORT, FILE_CATALOG, JOB_REPORT

# Files the trf itself writes in the job directory.
TRF_FILES = {
    JOB_REPORT: "the trf's job report",
    ERROR_REPORT: "the trf's error report",
    FILE_CATALOG: "the trf's and the pilot's file catalogue",
    CHECKPOINT_DIR: "the trf's local checkpoint directory",
}

# Files the PanDA pilot (3.11.5.1) writes or reads in the job's work directory. Where each comes
# from in the pilot's sources (pilot/util/default.cfg names most; the code joins them to job.workdir):
PILOT_FILES = {
    # default.cfg [Payload] jobreport/metadata/payloadstdout/payloadstderr/error_report, opened under
    # job.workdir by control/payload.py, control/job.py and user/*/diagnose.py
    "jobReport.json": "the pilot's job report (read from the job directory)",
    "metadata.xml": "the pilot's job metadata (read from the job directory)",
    "payload.stdout": "the pilot's capture of the payload's stdout",
    "payload.stderr": "the pilot's capture of the payload's stderr",
    "payload_error_report.json": "the payload error report the pilot reads",
    # control/payloads/generic.py: setup and co-process captures under self.__job.workdir
    "setup.stdout": "the pilot's capture of the job setup's stdout",
    "setup.stderr": "the pilot's capture of the job setup's stderr",
    "coprocess_stdout.txt": "the pilot's co-process stdout",
    "coprocess_stderr.txt": "the pilot's co-process stderr",
    # default.cfg [Container] container_script/release_setup (user/*/container.py writes them into
    # job.workdir) and pid_file; the stage-in/out status files of the middleware container
    "container_script.sh": "the pilot's container script",
    "my_release_setup.sh": "the pilot's release set-up script",
    "pid.txt": "the pilot's payload pid file",
    "stagein_status.json": "the pilot's stage-in status",
    "stagein_replicas.json": "the pilot's stage-in replica list",
    "stagein_stdout.txt": "the pilot's stage-in middleware stdout",
    "stagein_stderr.txt": "the pilot's stage-in middleware stderr",
    "stageout_status.json": "the pilot's stage-out status",
    "stageout_stdout.txt": "the pilot's stage-out middleware stdout",
    "stageout_stderr.txt": "the pilot's stage-out middleware stderr",
    # control/job.py remove_pilot_logs_from_list(): the pilot's own files in the job directory
    "pilotlog.txt": "the pilot's log",
    "stageinlog.txt": "the pilot's stage-in log",
    "stageoutlog.txt": "the pilot's stage-out log",
    "pilot_timing.json": "the pilot's timing file",
    "pilot_heartbeat.json": "the pilot's heartbeat file",
    "remotefileverification_dictionary.json": "the pilot's remote file verification",
    "remotefileslog.txt": "the pilot's remote file verification log",
    "base_trace_report.json": "the pilot's trace report",
    "eventLoopHeartBeat.txt": "the payload heartbeat the pilot reads",
    "panda_token": "the pilot's PanDA token",
    "panda_secrets.json": "the pilot's PanDA secrets (control/job.py)",
    # memory monitor (prmon) outputs: user/*/utilities.py get_memory_monitor_*_filename()
    "memory_monitor_output.txt": "the memory monitor's output",
    "memory_monitor_summary.json": "the memory monitor's summary",
    "memory_monitor_summary.json_snapshot": "the memory monitor's summary snapshot",
    # default.cfg [Pilot] pandajobdata (read from the pilot's and the job's directories), [Rucio]
    # rucio_trace_error_file and user/atlas/diagnose.py's tracer log
    "pandaJobData.out": "the pilot's job definition",
    "rucio_trace_error.txt": "the pilot's Rucio trace errors",
    "pandatracerlog.txt": "the pilot's tracer log",
    # util/proxy.py: the proxy's certificate and key, in the work directory
    "crt.pem": "the pilot's proxy certificate",
    "key.pem": "the pilot's proxy key",
    # util/monitoring.py: the archive of oversized files
    "oversized_files.zip": "the pilot's archive of oversized files",
}

# Prefixes and suffixes the pilot keeps for itself in the job directory (control/job.py:
# curl_updateJob_<id>.config; control/data.py and util/monitoring.py: the log tarball <name>.job.log.tgz).
PILOT_PREFIXES = {"curl_updateJob_": "the pilot's server-update configuration"}
PILOT_SUFFIXES = {".job.log.tgz": "the pilot's log tarball"}


def trf_file() -> Optional[str]:
    """The name of the file this trf runs from (its pyz, or its console script), if it is a file."""
    main = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return main.name if main is not None and main.is_file() else None


def reserved_names(inputs: Iterable[str], own_file: Optional[str]) -> dict[str, str]:
    """{name: what uses it} of every name an output may not take in this job."""
    taken = {**PILOT_FILES, **TRF_FILES}
    for uri in inputs:
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        if name:
            taken.setdefault(name, f"the input {uri}")
    if own_file:
        taken.setdefault(own_file, "the trf's own file")
    return taken


def check_output_names(lfns: Mapping[str, str], inputs: Iterable[str],
                       own_file: Optional[str] = None) -> None:
    """Raise ArgumentError (exit 7) if an output LFN is a name the job directory already uses."""
    taken = reserved_names(inputs, own_file)
    for arg_name, lfn in lfns.items():
        use = taken.get(lfn)
        use = use or next((u for p, u in PILOT_PREFIXES.items() if lfn.startswith(p)), None)
        use = use or next((u for s, u in PILOT_SUFFIXES.items() if lfn.endswith(s)), None)
        if use:
            raise ArgumentError(f"--{arg_name}={lfn} is a name the job directory uses for {use}; "
                                "choose another output name")
