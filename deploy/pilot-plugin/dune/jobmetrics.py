"""jobMetrics for DUNE jobs: what PanDA's GPU brokerage and monitor use, from the trf's report.

generic raises NotImplementedError here, so a generic job sends no jobMetrics at all. The format
is the server's: space-separated `name=value` words, cut at 500 characters; names follow the
pilot's own (nEvents, nEventsW, nGPU, GPU_name from pilot/control/job.py add_gpu_info) and
camelCase for ours.
"""
from pilot.util.jobmetrics import get_job_metrics_entry

from pilot.user.dune import jobreport

LIMIT = 500


def get_job_metrics(job, extra: dict = None) -> str:
    """The job metrics string for updateJob."""
    report = jobreport.load(job.workdir) or {}
    metrics = {"nEvents": job.nevents or None, "nEventsW": job.neventsw or None}
    metrics.update(report_metrics(report))
    metrics.update(extra or {})  # the pilot's own measurements (GPU from prmon, read rate) win
    words = [get_job_metrics_entry(name, _word(value)) for name, value in metrics.items()
             if value is not None]
    while len("".join(words)) > LIMIT:  # the server cuts at 500: drop whole words, last first
        words.pop()
    return "".join(words).strip()


def report_metrics(report: dict) -> dict:
    """{metric name: value} taken from the trf's report."""
    build = report.get("build") or {}
    distribution = report.get("distribution") or {}
    gpus = jobreport.gpus(report)
    seconds = jobreport.step_seconds(report)
    events = jobreport.processed_events(report)
    node_gpus = jobreport.gpu_summary(report) or {}
    metrics = {
        "nGPU": distribution.get("gpus", len(gpus)) if report else None,
        "GPU_name": gpus[0].get("name") if gpus else None,
        # the node's GPUs as its worker_node_gpus record says them (GPU_arch 'CDNA_2', GPU_target 'gfx90a')
        "GPU_vendor": node_gpus.get("vendor"),
        "GPU_arch": node_gpus.get("architecture"),
        "GPU_target": node_gpus.get("target"),
        "GPU_count": node_gpus.get("count"),
        "GPU_vram": node_gpus.get("vram"),
        "build": build.get("name"),
        "precision": build.get("precision"),
        "device": build.get("device"),
        "eventsPerSec": round(events / seconds["computeTime"], 3)
        if events and seconds.get("computeTime") else None,
        "maxRSS": jobreport.peak_rss_kib(report),
    }
    metrics.update({name: round(value, 1) for name, value in seconds.items()})
    return metrics


def _word(value) -> str:
    # One word each: the server splits on spaces and '='.
    return str(value).replace(" ", "_").replace("=", "_")
