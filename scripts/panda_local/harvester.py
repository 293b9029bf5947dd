"""Harvester's part for one PUSH worker: a job from the server, the real pilot, the updates back.

Harvester (PanDAWMS/harvester) is not installable from PyPI, so this module does, for one job at a
time, what Harvester 0.7.5's code does for a PUSH queue with the shared-file messenger (each step
names the Harvester code it follows):

1. `pilot/acquire_jobs` with the queue's name and the job's prodSourceLabel
   (harvestercommunicator/panda_communicator.py `get_jobs`); the job goes to the pilot as
   `pandaJobData.out`, `{PandaID: job}` (shared_file_messenger.py `feed_jobs`).
2. The real pilot runs it in PUSH mode (`pilot_harness.run`); while it runs, each new state it
   writes to `worker_attributes.json` is sent as a heartbeat (harvesterbody/propagator.py).
3. At the end: the pilot's attributes, with `metaData` replaced by the `jobReport.json` copy the
   pilot left for Harvester (shared_file_messenger.py `get_work_attributes`), and the output report
   built from `event_status.dump.json` (`get_files_to_stage_out`, core_utils.py
   `get_output_file_report`): first as `transferring`, then, the files being on the site's
   storage already (the `mv` copytool), as the final state with `job_sub_status` "staged"
   (panda_communicator.py `update_jobs`, job_spec.py `get_job_attributes_for_panda`).

One difference, on purpose: the pilot writes `startTime`/`endTime` as float epoch seconds and
Harvester passes them on as they are, which panda-server 1.0.4's `update_job` refuses for every
job ("Type error: 'start_time' must be of type str, got float"); here they are sent in the
server's "%Y-%m-%d %H:%M:%S" (UTC).
"""
from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from scripts.panda_local.client import ApiClient
from scripts.panda_local.errors import StackError
from scripts.pilot_harness import layout
from scripts.pilot_harness.run import PilotJob, run_job

HARVESTER_ID = "dune-local-harvester"
NODE = "wn01.dune-test.local"
FINAL = ("finished", "failed")

# worker_attributes.json key -> update_job parameter (job_spec.py `panda_attributes`).
RENAMES = {
    "token": "token", "transExitCode": "trans_exit_code", "pilotErrorCode": "pilot_error_code",
    "pilotErrorDiag": "pilot_error_diag", "node": "node", "cpuConsumptionTime": "cpu_consumption_time",
    "cpuConsumptionUnit": "cpu_consumption_unit", "schedulerID": "scheduler_id", "pilotID": "pilot_id",
    "siteName": "site_name", "pilotLog": "pilot_log", "cpuConversionFactor": "cpu_conversion_factor",
    "exeErrorCode": "exe_error_code", "exeErrorDiag": "exe_error_diag", "pilotTiming": "pilot_timing",
    "startTime": "start_time", "endTime": "end_time", "nEvents": "n_events", "nInputFiles": "n_input_files",
    "batchID": "batch_id", "attemptNr": "attempt_nr", "jobMetrics": "job_metrics", "stdout": "stdout",
    "coreCount": "core_count", "maxRSS": "max_rss", "maxVMEM": "max_vmem", "maxSWAP": "max_swap",
    "maxPSS": "max_pss", "avgRSS": "avg_rss", "avgVMEM": "avg_vmem", "avgSWAP": "avg_swap",
    "avgPSS": "avg_pss", "totRCHAR": "tot_rchar", "totWCHAR": "tot_wchar", "totRBYTES": "tot_rbytes",
    "totWBYTES": "tot_wbytes", "rateRCHAR": "rate_rchar", "rateWCHAR": "rate_wchar",
    "rateRBYTES": "rate_rbytes", "rateWBYTES": "rate_wbytes",
}
TIMES = ("start_time", "end_time")


@dataclass(frozen=True)
class WorkerResult:
    """One worker's life: the job the server gave, the pilot's verdict, what was sent back."""

    job: dict
    verdict: dict
    updates: list = field(default_factory=list)      # (job_status, request, server response)


def acquire(client: ApiClient, queue: str, prod_source_label: str) -> Optional[dict]:
    """One job for the PanDA queue `queue`, or None when the server has none."""
    try:
        data = client.call("pilot/acquire_jobs", {
            "site_name": queue, "prod_source_label": prod_source_label, "node": NODE,
            "computing_element": queue, "n_jobs": 1, "scheduler_id": f"harvester-{HARVESTER_ID}"})
    except StackError as err:
        if "No jobs in PanDA" in str(err):
            return None
        raise
    jobs = (data or {}).get("jobs") or []
    return jobs[0] if jobs else None


def job_update(job: Mapping, attributes: Mapping, *, status: str, metadata: Optional[str] = None,
               output_report: Optional[dict] = None) -> dict:
    """The update_job parameters for the pilot's `attributes` (worker_attributes.json)."""
    update = {RENAMES[key]: value for key, value in attributes.items() if key in RENAMES and value is not None}
    for key in TIMES:
        if isinstance(update.get(key), (int, float)):
            update[key] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(update[key]))
    update.update(job_id=int(job["PandaID"]), job_status=status, site_name=str(job.get("computingSite")
                  or attributes.get("siteName") or ""), attempt_nr=int(job.get("attemptNr") or 0))
    if status in FINAL:
        update["job_sub_status"] = "staged"
        if metadata is not None:
            update["meta_data"] = metadata
        if output_report is not None:
            update["job_output_report"] = json.dumps(output_report)
    return update


def output_report(event_status: Optional[Mapping], panda_id: str) -> dict:
    """{LFN: {guid, fsize, adler32}} of the files the pilot declared for stage-out."""
    report = {}
    for item in (event_status or {}).get(str(panda_id), []):
        if item.get("path"):
            report[Path(item["path"]).name] = {"guid": item.get("guid"), "fsize": item.get("fsize"),
                                               "adler32": item.get("chksum")}
    return report


def metadata_for_panda(paths: layout.RunPaths, attributes: Mapping) -> Optional[str]:
    """The job's metaData as Harvester sends it: the jobReport.json copy when the pilot left one
    (re-serialised, as Harvester loads and dumps it), else the pilot's own metaData text."""
    copy = paths.harvester / "jobReport.json"
    if copy.is_file():
        try:
            return json.dumps(json.loads(copy.read_text()))
        except ValueError:
            pass
    text = attributes.get("metaData")
    return text if isinstance(text, str) and text else None


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_worker(client: ApiClient, job: dict, request: PilotJob, run_dir: Path, *,
               poll_s: float = 2.0) -> WorkerResult:
    """Run `job` (as acquire gave it) through the pilot of `request` and report it to the server."""
    paths = layout.RunPaths(Path(run_dir).resolve())
    result = WorkerResult(job=job, verdict={})
    with ThreadPoolExecutor(1, thread_name_prefix=f"pilot-{job['PandaID']}") as pool:
        pilot = pool.submit(run_job, dataclasses.replace(request, job=job), run_dir)
        sent_state = None
        while not pilot.done():
            time.sleep(poll_s)
            attributes = _read(paths.worker_attributes) or {}
            state = attributes.get("jobStatus")
            if state in ("starting", "running") and state != sent_state:
                _send(client, result, job_update(job, attributes, status=state))
                sent_state = state
        verdict = pilot.result()
    attributes = _read(paths.worker_attributes) or {}
    final = attributes.get("jobStatus") if attributes.get("jobStatus") in FINAL else "failed"
    report = output_report(_read(paths.event_status), job["PandaID"])
    _send(client, result, job_update(job, attributes, status="transferring"))
    _send(client, result, job_update(job, attributes, status=final,
                                     metadata=metadata_for_panda(paths, attributes), output_report=report))
    return dataclasses.replace(result, verdict=verdict)


def _send(client: ApiClient, result: WorkerResult, update: dict) -> None:
    data = client.call("pilot/update_jobs_bulk", {"job_list": [update], "harvester_id": HARVESTER_ID})
    response = data[0] if isinstance(data, list) and data else data
    result.updates.append((update["job_status"], update, response))
    if isinstance(response, dict) and response.get("success") is False:
        raise StackError(f"update_job {update['job_id']} {update['job_status']} refused: {response.get('message')}")
