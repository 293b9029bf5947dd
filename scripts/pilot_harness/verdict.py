"""The pilot's verdict on one job, gathered from the files it leaves for Harvester.

With `-z` in Harvester PUSH mode the pilot writes what it would send to the PanDA server into
`worker_attributes.json` (job state, pilot error, transExitCode, exeErrorCode/Diag, metaData) and
the outputs it declares for stage-out, with their GUIDs, into `event_status.dump.json`; the
`mv` copytool moves staged-out files from the job directory into the pilot home; the job directory
keeps the trf's own reports.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from scripts.pilot_harness import jobdef, layout, pilots

# worker_attributes.json fields that make the verdict, and their names in the summary.
FIELDS = {
    "jobStatus": "job_status", "pilotErrorCode": "pilot_error_code",
    "pilotErrorDiag": "pilot_error_diag", "transExitCode": "trans_exit_code",
    "exeErrorCode": "exe_error_code", "exeErrorDiag": "exe_error_diag",
}


def read_json(path: Path) -> Optional[dict]:
    """The JSON object in `path`, or None when it is absent or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def pilot_error_name(code: Optional[int], pilot: pilots.Pilot) -> Optional[str]:
    """The pilot's name for its error code (1305 -> PAYLOADEXECUTIONFAILURE), from its own code."""
    if not code:
        return None
    codes = pilots.error_codes(pilot)
    names = [name for name, value in vars(codes).items() if name.isupper() and value == code]
    return names[0] if names else None


def declared_outputs(paths: layout.RunPaths, panda_id: str) -> dict:
    """{LFN: {guid, fsize, chksum, type}} the pilot declared to Harvester for stage-out
    (event_status.dump.json): the GUIDs PanDA registers the files under."""
    declared = (read_json(paths.event_status) or {}).get(panda_id, [])
    return {Path(item["path"]).name: {k: item.get(k) for k in ("guid", "fsize", "chksum", "type")}
            for item in declared if item.get("path")}


def staged_out(paths: layout.RunPaths, job: dict, panda_id: str) -> dict:
    """{LFN: {size, adler32}} for each of outFiles (log included) that stage-out moved out of the
    job directory into the pilot home."""
    found = {}
    for lfn in jobdef.split(job.get("outFiles", "")):
        path = paths.home / lfn
        if path.is_file() and not (paths.job_dir(panda_id) / lfn).exists():
            found[lfn] = {"size": path.stat().st_size, "adler32": jobdef.adler32(path)}
    return found


def collect(paths: layout.RunPaths, panda_id: str, *, pilot_exit_code: int,
            pilot: pilots.Pilot) -> dict:
    """One summary of the run; docs/pilot.md describes its fields."""
    job = json.loads(paths.job_template.read_text())
    attributes = read_json(paths.worker_attributes) or {}
    job_dir = paths.job_dir(panda_id)
    summary = {name: attributes.get(key) for key, name in FIELDS.items()}
    summary.update(
        panda_id=panda_id,
        pilot_version=pilot.version,
        pilot_exit_code=pilot_exit_code,
        pilot_error_name=pilot_error_name(attributes.get("pilotErrorCode"), pilot),
        declared_outputs=declared_outputs(paths, panda_id),
        metadata=_parse(attributes.get("metaData")),
        staged_out=staged_out(paths, job, panda_id),
        expected_outputs=jobdef.output_lfns(job),
        job_report=read_json(job_dir / "jobReport.json"),
        payload_error_report=read_json(job_dir / "payload_error_report.json"),
        worker_attributes=attributes or None,
        run_dir=str(paths.root),
        job_dir=str(job_dir),
        pilot_log=str(paths.pilot_stdout),
        payload_stdout=str(job_dir / "payload.stdout"),
    )
    return summary


def _parse(metadata):
    """metaData is the trf's jobReport.json passed through as text: parsed when it is JSON."""
    if not isinstance(metadata, str):
        return metadata
    try:
        return json.loads(metadata)
    except ValueError:
        return metadata
