"""How one job is spread: its place in a multi-worker cluster, its GPUs, and what the payload and
the report are told about it (the cluster itself is read from the launcher by wrapper/cluster/workers.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from wrapper.cluster.workers import ClusterSpec, detect_cluster


def job_cluster(spec) -> ClusterSpec:
    """This copy's ClusterSpec from the launcher's environment and --multiWorker/--workerPort."""
    return detect_cluster(port=spec.worker_port, multi_worker=spec.multi_worker)


def worker_workdir(spec: ClusterSpec, workdir: Path) -> Path:
    """Where this worker writes outputs and reports: the job directory for the chief, a private
    temporary directory for the others (their copies are identical and the pilot must see one)."""
    if spec.is_chief:
        return Path(workdir)
    return Path(tempfile.mkdtemp(prefix=f"dune-worker{spec.rank}-"))


def idle_worker(spec, cluster: ClusterSpec) -> bool:
    """True for the non-chief copies of an inference or evaluation: those scale by PanDA jobs, not
    by workers, so only rank 0 works and the others end at once with exit 0."""
    return cluster.multi_worker and not cluster.is_chief and spec.mode != "train"


def local_gpus(spec, selection) -> int:
    """GPUs this process drives: those the chosen build runs on, at most --gpus."""
    count = len(selection.gpus)
    return count if spec.gpus is None else min(count, spec.gpus)


def payload_distribution(spec, cluster: ClusterSpec, gpus: int) -> dict:
    """The StepConfig fields (`gpus`, `cluster`, `collective_timeout_s`) for this job's payload."""
    return {"gpus": gpus, "cluster": (cluster.tf_config() or None) if spec.mode == "train" else None,
            "collective_timeout_s": spec.worker_timeout}


def distribution_report(spec, cluster: ClusterSpec, gpus: int, batch_size: int) -> dict:
    """The report's `distribution` section: where this copy sits, the strategy, the global batch."""
    from payload.api import plan_distribution

    fields = payload_distribution(spec, cluster, gpus)
    plan = plan_distribution(gpus, fields["cluster"], timeout_s=spec.worker_timeout)
    return {**plan.to_report(), "perReplicaBatch": batch_size, "globalBatch": plan.global_batch(batch_size),
            "cluster": cluster.to_report()}
