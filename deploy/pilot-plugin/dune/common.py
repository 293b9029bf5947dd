"""generic's `common`, with the outputs and event counts the DUNE trf reported.

generic gives every output a fresh GUID (3.10.3.82 and later) and passes jobReport.json through
as opaque metaData; here each output gets the GUID, size and adler32 the trf wrote in its
report, after checking them against the file, and the job's nEvents/nEventsW come from it.
"""
import json
import logging
import os
import socket

from pilot.common.errorcodes import ErrorCodes
from pilot.user.generic import common as generic
from pilot.util.filehandling import calculate_checksum

from pilot.user.dune import jobreport

logger = logging.getLogger(__name__)
errors = ErrorCodes()

# Compute capability major → the microarchitecture names PanDA's GPU brokerage uses (the names of
# pilot/util/workernode.py's detect_architecture, which matches on product names and misses e.g. H200).
ARCHITECTURES = {3: "Kepler", 5: "Maxwell", 6: "Pascal", 7: "Volta", 8: "Ampere", 9: "Hopper",
                 10: "Blackwell", 12: "Blackwell"}


def __getattr__(name: str):
    """Everything this module does not define is generic's (PEP 562)."""
    return getattr(generic, name)


def update_job_data(job) -> None:
    """Take nEvents, nEventsW and each output's GUID, size and adler32 from the trf's report.

    An output whose file differs from the report fails the job (PUTADMISMATCH) with a diagnosis
    naming the file; outputs the report does not list keep generic's treatment (a fresh GUID).
    """
    report = jobreport.load(job.workdir)
    if report is not None:
        _apply_report(job, report)
    generic.update_job_data(job)


def _apply_report(job, report: dict) -> None:
    job.nevents = jobreport.processed_events(report)
    reported = jobreport.outputs(report)
    expected = {fspec.lfn for fspec in job.outdata}
    job.neventsw = sum(out.nentries or 0 for lfn, out in reported.items() if lfn in expected)
    problems = []
    for fspec in job.outdata:
        out = reported.get(fspec.lfn)
        if out is None:
            continue
        problem = jobreport.mismatch(out, os.path.join(job.workdir, fspec.lfn),
                                     lambda path: calculate_checksum(path, "adler32"))
        if problem:
            problems.append(problem)
            continue
        if out.guid:
            fspec.guid = out.guid
        fspec.filesize = out.size
        fspec.checksum = {**(fspec.checksum or {}), "adler32": out.adler32}
        logger.info(f"dune plugin: {fspec.lfn}: guid {out.guid}, {out.size} bytes, "
                    f"ad:{out.adler32}, {out.nentries} entries (from {jobreport.REPORT})")
    if problems:
        job.piloterrorcodes, job.piloterrordiags = errors.add_error_code(
            errors.PUTADMISMATCH, msg="output differs from the trf's report: " + "; ".join(problems))
    _take_exe_error(job, report)


def _take_exe_error(job, report: dict) -> None:
    # The pilot reads payload_error_report.json; a trf that could not write it (or an older one)
    # still says why it failed in jobReport.json.
    code = report.get("exitCode")
    if not code or job.exeerrorcode or os.path.exists(os.path.join(job.workdir, "payload_error_report.json")):
        return
    job.exeerrorcode = int(code)
    job.exeerrordiag = str(report.get("exitMsg") or "")[:500]
    logger.warning(f"dune plugin: exeErrorCode {job.exeerrorcode} from {jobreport.REPORT}: {job.exeerrordiag}")


def get_metadata(workdir: str) -> str:
    """generic's metaData (the report as text), with `worker_node_gpus` added from the trf's view.

    The PanDA server records a node's GPUs for brokerage from metaData's `worker_node_gpus`; the
    pilot overwrites it with its own GPU map where it made one.
    """
    metadata = generic.get_metadata(workdir)
    report = jobreport.load(workdir) if metadata else None
    if not report or "worker_node_gpus" in report or not jobreport.gpus(report):
        return metadata
    report["worker_node_gpus"] = worker_node_gpus(report)
    return json.dumps(report)


def worker_node_gpus(report: dict) -> dict:
    """The server's worker-node GPU record (site, host, model, count, VRAM, architecture, …)."""
    platform = report.get("platform") or {}
    gpus = jobreport.gpus(report)
    first = gpus[0]
    major = str(first.get("compute_capability") or "").split(".")[0]
    return {
        "site": os.environ.get("PILOT_SITENAME", ""),
        "host_name": socket.gethostname(),
        "vendor": "NVIDIA",
        "model": first.get("name"),
        "count": len(gpus),
        "vram": first.get("memory_mib"),
        "architecture": ARCHITECTURES.get(int(major), "Unknown") if major.isdigit() else "Unknown",
        "framework": "CUDA",
        "framework_version": platform.get("cuda_driver_version"),
        "driver_version": platform.get("driver_version"),
    }
