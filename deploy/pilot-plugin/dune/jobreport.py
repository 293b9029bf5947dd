"""The facts the DUNE trf's jobReport.json states, read once and checked, for the other modules.

Free of pilot imports, so that it reads like the report's schema (dune-gpu-payload's
docs/design.md, 'Job report'): a missing or unreadable report is `None`, never an exception.
"""
import json
import logging
import os
from typing import Callable, Dict, List, NamedTuple, Optional

logger = logging.getLogger(__name__)

REPORT = "jobReport.json"

# The report's executor steps whose wall times become job metrics, by metric name.
STEP_METRICS = {"stageInTime": "stage-in", "computeTime": "payload", "stageOutTime": "stage-out"}


class Output(NamedTuple):
    """One output file as the trf reported it."""

    lfn: str
    guid: str
    size: int
    adler32: str
    nentries: Optional[int]


def load(workdir: str) -> Optional[dict]:
    """The trf's report in `workdir`, or None (logged) when it is absent or not a JSON object."""
    path = os.path.join(workdir, REPORT)
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except FileNotFoundError:
        # normal while the trf runs: it writes its report once, at the end
        logger.debug(f"dune plugin: no {REPORT} in {workdir} (yet)")
        return None
    except (OSError, ValueError) as exc:
        logger.warning(f"dune plugin: cannot read {path}: {exc}")
        return None
    if not isinstance(report, dict):
        logger.warning(f"dune plugin: {path} holds no JSON object")
        return None
    return report


def outputs(report: dict) -> Dict[str, Output]:
    """{LFN: Output} for every output file the report lists."""
    found = {}
    for group in (report.get("files") or {}).get("output") or []:
        for sub in group.get("subFiles") or []:
            if sub.get("name"):
                found[sub["name"]] = Output(sub["name"], str(sub.get("file_guid") or ""),
                                            int(sub.get("file_size") or 0), str(sub.get("adler32") or ""),
                                            sub.get("nentries"))
    return found


def processed_events(report: dict) -> int:
    """Events the trf processed (read)."""
    return int(((report.get("resource") or {}).get("transform") or {}).get("processedEvents") or 0)


def step_seconds(report: dict) -> Dict[str, float]:
    """{metric name: wall seconds} of the stage-in, payload and stage-out steps that ran."""
    walls = {step.get("name"): step.get("wallTime") for step in report.get("executor") or []}
    return {metric: float(walls[step]) for metric, step in STEP_METRICS.items()
            if walls.get(step) is not None}


def peak_rss_kib(report: dict) -> Optional[int]:
    """The largest resident set of the trf or its children (the payload step), in KiB."""
    peak = ((report.get("resource") or {}).get("memory") or {}).get("Max") or {}
    values = [v for v in (peak.get("maxRSS"), peak.get("maxRSSChildren")) if isinstance(v, int)]
    return max(values) if values else None


def gpus(report: dict) -> List[dict]:
    """The GPUs the trf detected on the node (its platform section)."""
    return list((report.get("platform") or {}).get("gpus") or [])


# The server's names for each vendor and its GPU runtime (worker_node_gpus `vendor`, `framework`):
# NVIDIA and CUDA as pilot 3.11 writes them (pilot/util/workernode.py, get_gpu_info); AMD, Intel
# as their own tools name themselves. panda-server matches a task's vendor as a case-insensitive
# regular expression from the start (srvcore/hardware_matching.py, match_gpu_spec): "amd" finds "AMD".
VENDORS = {"nvidia": ("NVIDIA", "CUDA"), "amd": ("AMD", "ROCm"), "intel": ("Intel", "Level Zero")}
# worker_node_gpus column widths (panda-database schema): longer values would fail the insert.
TEXT_WIDTH, VERSION_WIDTH = 128, 20


def _cut(value, width: int) -> Optional[str]:
    return None if value is None else str(value)[:width]


def gpu_summary(report: dict) -> Optional[dict]:
    """The node's GPUs as one worker_node_gpus record holds them (without site and host): the model
    of the first GPU the trf detected and how many of that vendor and model there are (an MI250X's
    two GCDs are two, as HIP numbers them), its memory in MiB, its microarchitecture name (the
    trf's: 'Hopper', 'CDNA 2', 'Xe-HPC'), its code target (AMD, Intel: 'gfx90a', 'pvc'), and the
    driver and runtime versions of that vendor's reading (CUDA for NVIDIA, ROCm or Level Zero);
    None when the trf saw no GPU."""
    platform = report.get("platform") or {}
    found = gpus(report)
    if not found:
        return None
    first = found[0]
    vendor = str(first.get("vendor") or "nvidia").lower()   # reports before AMD/Intel were NVIDIA's
    vendor_name, framework = VENDORS.get(vendor, (vendor, None))
    readings = [r for r in platform.get("gpu_readings") or []
                if str(r.get("vendor") or "nvidia").lower() == vendor]
    reading = readings[0] if readings else {}
    if vendor == "nvidia":
        driver = reading.get("driver_version") or platform.get("driver_version")
        runtime = reading.get("cuda_driver_version") or platform.get("cuda_driver_version")
    else:
        driver, runtime = reading.get("driver_version"), reading.get("runtime_version")
    same = [g for g in found if str(g.get("vendor") or "nvidia").lower() == vendor
            and g.get("name") == first.get("name")]
    return {
        "vendor": vendor_name,
        "model": _cut(first.get("name"), TEXT_WIDTH),
        "count": len(same),
        "vram": first.get("memory_mib"),
        "architecture": _cut(first.get("architecture") or "Unknown", TEXT_WIDTH),
        "target": first.get("gpu_arch"),
        "framework": framework,
        "framework_version": _cut(runtime, VERSION_WIDTH),
        "driver_version": _cut(driver, VERSION_WIDTH),
    }


def mismatch(output: Output, path: str, checksum_of: Callable[[str], str]) -> Optional[str]:
    """Why the file at `path` is not the output the report describes, or None when it is.

    `checksum_of(path)` is the pilot's own adler32, so what is compared is what PanDA will get.
    """
    if not os.path.exists(path):
        return f"{output.lfn} is listed in {REPORT} but is not in the job directory"
    size = os.path.getsize(path)
    if size != output.size:
        return f"{output.lfn} is {size} bytes on disk but {REPORT} says {output.size}"
    checksum = checksum_of(path)
    if output.adler32 and checksum != output.adler32.lower():
        return f"{output.lfn} has adler32 {checksum} on disk but {REPORT} says {output.adler32}"
    return None


def rewrite(workdir: str, report: dict) -> str:
    """Replace the report in `workdir` by `report`, atomically (a temporary file, then a rename:
    no reader ever sees half of it); returns its text."""
    text = json.dumps(report)
    path = os.path.join(workdir, REPORT)
    temporary = f"{path}.dune-plugin.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):  # a half-written copy must not stay in the job directory
            os.remove(temporary)
        raise
    return text
