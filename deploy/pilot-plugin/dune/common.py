"""generic's `common`, with the outputs and event counts the DUNE trf reported.

generic gives every output a fresh GUID (3.10.3.82 and later) and passes jobReport.json through
as opaque metaData; here each output gets the GUID, size and adler32 the trf wrote in its
report, after checking them against the file, and the job's nEvents/nEventsW come from it; the
report also gets the node's and its GPUs' records, which PanDA's brokerage reads.
"""
import json
import logging
import os

from pilot.common.errorcodes import ErrorCodes
from pilot.info import infosys
from pilot.user.generic import common as generic
from pilot.util.filehandling import calculate_checksum
from pilot.util.workernode import get_node_name, get_workernode_map

from pilot.user.dune import jobreport

logger = logging.getLogger(__name__)
errors = ErrorCodes()


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
    """generic's metaData (the report as text), with the node's records for PanDA added to the
    trf's jobReport.json itself.

    The server records a worker node and its GPUs from a finished job's metaData (`worker_node`,
    `worker_node_gpus`: its Adder), keyed by the queue's site and the host. In Harvester mode the
    job's metaData is the copy of jobReport.json the pilot leaves for Harvester, made after this
    call, so the records go into the file; in direct mode the returned text carries them. A report
    that already holds them is left as it is.
    """
    metadata = generic.get_metadata(workdir)
    report = jobreport.load(workdir) if metadata else None
    if not report or "worker_node" in report or "worker_node_gpus" in report:
        return metadata
    node = worker_node()
    if node:
        report["worker_node"] = node
    if jobreport.gpus(report):
        report["worker_node_gpus"] = worker_node_gpus(report, node)
    if not node and "worker_node_gpus" not in report:
        return metadata
    try:
        return jobreport.rewrite(workdir, report)
    except OSError as exc:
        # The pilot calls this unguarded in its final update: a full or read-only disk must not
        # stop that update. Direct mode still sends the records; Harvester gets the trf's report.
        logger.warning(f"dune plugin: cannot add the worker-node records to {jobreport.REPORT}: {exc}")
        return json.dumps(report)


def worker_node() -> dict:
    """The pilot's own record of this node (pilot/util/workernode.py, the keys the server's
    update_worker_node takes) under the queue's site and name; {} when it cannot be made."""
    queuedata = infosys.queuedata
    try:
        return get_workernode_map(queuedata.site, queuedata.name, cache=False)
    except Exception as exc:  # the node's own files (cpuinfo, disks) answer oddly: no record, the job goes on
        logger.warning(f"dune plugin: no worker-node record: {exc}")
        return {}


def worker_node_gpus(report: dict, node: dict) -> dict:
    """The server's worker-node GPU record (site, host, vendor, model, count, VRAM, architecture,
    framework, versions: the keys of its Adder's update_worker_node_gpu) from the GPUs the trf
    detected, NVIDIA, AMD or Intel (pilot 3.11 reads nvidia-smi only); site and host those of the
    node's record, which the GPU summary brokerage reads is joined on."""
    summary = jobreport.gpu_summary(report)
    record = {"site": node.get("site") or infosys.queuedata.site,
              "host_name": node.get("host_name") or get_node_name()}
    record.update({key: summary[key] for key in ("vendor", "model", "count", "vram", "architecture",
                                                 "framework", "framework_version", "driver_version")})
    return record
