"""Where this process sits in a multi-worker job: the batch system's environment → a ClusterSpec.

One PanDA job may span several nodes when the site launches the trf once per worker (`srun`,
`jsrun`, `mpirun`). Each copy reads its rank and its peers from the launcher's environment and
hands the framework a TF_CONFIG (MultiWorkerMirroredStrategy). Rank 0 is the chief: it alone
writes outputs and reports; the others work in a private directory and exit 0.

Sources, in order: an explicit TF_CONFIG; a Slurm job step (`SLURM_STEP_*`, set by srun only, so a
trf started directly inside a batch allocation stays a single worker); jsrun (`JSM_NAMESPACE_*`
with the LSF host list); MPI ranks (`OMPI_COMM_WORLD_*`, `PMI_*`). Without one of them: one worker.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from wrapper.args.grammar import split_top_level
from wrapper.errors import ClusterError

DEFAULT_PORT = 12345
HOSTS_ENV = "DUNE_WORKER_HOSTS"     # peer hosts of plain MPI ranks spread over several hosts
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_REPEAT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


@dataclass(frozen=True)
class ClusterSpec:
    """This process's place among the job's workers.

    `cluster` is TF_CONFIG's `cluster` as ((task type, (host:port, ...)), ...); `task` is this
    process's (task type, index). `rank` counts workers across types with the chief first.
    """

    source: str = "single"               # single | slurm | lsf | mpi | tf_config
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    cluster: tuple = ()
    task: tuple = ("worker", 0)

    @property
    def multi_worker(self) -> bool:
        return self.size > 1

    @property
    def is_chief(self) -> bool:
        """The one worker that writes outputs and reports."""
        return self.rank == 0

    @property
    def workers(self) -> tuple:
        """host:port of every worker, in rank order."""
        return tuple(address for _, addresses in self.cluster for address in addresses)

    def tf_config(self) -> dict:
        """TF_CONFIG for MultiWorkerMirroredStrategy; empty for a single worker."""
        if not self.multi_worker:
            return {}
        return {"cluster": {kind: list(addresses) for kind, addresses in self.cluster},
                "task": {"type": self.task[0], "index": self.task[1]}}

    def to_report(self) -> dict:
        return {"source": self.source, "rank": self.rank, "size": self.size,
                "localRank": self.local_rank, "localSize": self.local_size,
                "chief": self.is_chief, "workers": list(self.workers)}


# ---------------------------------------------------------------------------------------------
# Host lists


def expand_nodelist(text: str) -> list[str]:
    """Slurm's compact host list → host names: `node[01-03,07],gpu-a[1-2]-ib` →
    node01 node02 node03 node07 gpu-a1-ib gpu-a2-ib. Zero padding is kept; several bracket groups
    in one name expand as a product, as Slurm's own hostlist does."""
    hosts: list[str] = []
    for item in _split_top_level(text.strip()):
        hosts.extend(_expand_name(item, text))
    return hosts


def _split_top_level(text: str) -> list[str]:
    try:
        items = split_top_level(text, strict=True)
    except ValueError as err:
        raise ClusterError(f"host list {text!r} has {err}") from None
    return [item.strip() for item in items if item.strip()]


def _expand_name(item: str, whole: str) -> list[str]:
    start = item.find("[")
    if start < 0:
        return [item]
    end = item.index("]", start)
    head, body, tail = item[:start], item[start + 1:end], item[end + 1:]
    numbers = []
    for part in body.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ClusterError(f"host list {whole!r}: {part!r} in [{body}] is not a number or a range")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low):
            raise ClusterError(f"host list {whole!r}: range {part!r} runs backwards")
        width = len(low) if low.startswith("0") else 0
        numbers.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    return [head + n + rest for n in numbers for rest in _expand_name(tail, whole)]


def expand_tasks_per_node(text: str) -> list[int]:
    """Slurm's tasks-per-node form → one count per node: `2(x3),1` → [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in text.split(","):
        match = _REPEAT.match(part.strip())
        if not match:
            raise ClusterError(f"tasks per node {text!r}: {part!r} is not N or N(xM)")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def _addresses(hosts_and_counts: list[tuple[str, int]], port: int) -> tuple:
    """host:port per rank, ranks packed node by node, local rank l on port `port + l`."""
    if port + max(n for _, n in hosts_and_counts) - 1 > 65535:
        raise ClusterError(f"worker port {port} plus the ranks per node runs past 65535; "
                           "choose a lower --workerPort")
    return tuple(f"{host}:{port + local}" for host, count in hosts_and_counts for local in range(count))


# ---------------------------------------------------------------------------------------------
# Readers, one per batch system


def _int(env: Mapping[str, str], name: str) -> Optional[int]:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ClusterError(f"{name}={value!r} is not an integer; the launcher's environment is "
                           "damaged") from None


def _check_rank(source: str, rank: int, size: int, names: str) -> None:
    if size < 1 or not 0 <= rank < size:
        raise ClusterError(f"{source}: rank {rank} of {size} workers is impossible ({names}); "
                           "the workers' environment is inconsistent")


def from_tf_config(text: str) -> ClusterSpec:
    """An explicit TF_CONFIG (JSON): only `chief` and `worker` tasks (multi-worker data parallel)."""
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ClusterError(f"TF_CONFIG is not a JSON object with 'cluster' and 'task' "
                           f"{{type, index}}: {err}") from None
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterError("TF_CONFIG's 'cluster' must map task types to lists of host:port")
    unsupported = set(cluster) - {"chief", "worker"}
    if unsupported:
        raise ClusterError(f"TF_CONFIG lists {', '.join(sorted(unsupported))} tasks; data-parallel "
                           "training takes only 'chief' and 'worker' tasks")
    ordered = tuple((k, tuple(str(a) for a in cluster[k])) for k in ("chief", "worker") if k in cluster)
    if len(dict(ordered).get("chief", ())) > 1:
        raise ClusterError("TF_CONFIG lists more than one chief")
    if kind not in cluster or not 0 <= index < len(cluster[kind]):
        raise ClusterError(f"TF_CONFIG's task {kind}:{index} is not in its cluster")
    for _, addresses in ordered:
        for address in addresses:
            if not re.fullmatch(r"[^\s:]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}", address):
                raise ClusterError(f"TF_CONFIG address {address!r} is not host:port")
    offset = len(dict(ordered).get("chief", ())) if kind == "worker" else 0
    size = sum(len(a) for _, a in ordered)
    return ClusterSpec("tf_config", offset + index, size, 0, 1, ordered, (kind, index))


def from_slurm(env: Mapping[str, str], port: int) -> Optional[ClusterSpec]:
    """A Slurm job step (srun): SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST,
    SLURM_STEP_TASKS_PER_NODE. Ranks are laid out node by node (srun's default block distribution)."""
    size = _int(env, "SLURM_STEP_NUM_TASKS")
    rank = _int(env, "SLURM_PROCID")
    if size is None or rank is None or not env.get("SLURM_STEP_NODELIST"):
        return None
    mpi_size = _int(env, "OMPI_COMM_WORLD_SIZE") or _int(env, "PMI_SIZE")
    if mpi_size is not None and mpi_size != size:
        return None   # mpirun inside an allocation: the step is its daemons', the ranks are MPI's
    _check_rank("Slurm", rank, size, "SLURM_PROCID, SLURM_STEP_NUM_TASKS")
    nodes = expand_nodelist(env["SLURM_STEP_NODELIST"])
    counts = expand_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE", "") or
                                   ",".join(["1"] * len(nodes)))
    if len(counts) == 1 and len(nodes) > 1:
        counts = counts * len(nodes)
    if len(counts) != len(nodes) or sum(counts) != size:
        raise ClusterError(f"Slurm: {len(nodes)} node(s) in SLURM_STEP_NODELIST with tasks per node "
                           f"{counts} do not make SLURM_STEP_NUM_TASKS={size}")
    if size == 1:
        return ClusterSpec("slurm")
    local_rank = _int(env, "SLURM_LOCALID")
    node = _node_of(rank, counts)
    if local_rank is None:
        local_rank = rank - sum(counts[:node])
    workers = _addresses(list(zip(nodes, counts)), port)
    return ClusterSpec("slurm", rank, size, local_rank, counts[node], (("worker", workers),),
                       ("worker", rank))


def _node_of(rank: int, counts: list[int]) -> int:
    seen = 0
    for node, count in enumerate(counts):
        seen += count
        if rank < seen:
            return node
    raise ClusterError(f"rank {rank} lies beyond the {seen} tasks of the step")


def lsf_hosts(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """Compute hosts of an LSF job with their slots, from LSB_MCPU_HOSTS ("host n host n ...") or
    LSB_HOSTS (a host per slot). On Summit-like machines the first entry is the launch node with
    one slot while compute nodes have many: that entry is dropped."""
    words = env.get("LSB_MCPU_HOSTS", "").split()
    if words:
        if len(words) % 2:
            raise ClusterError(f"LSB_MCPU_HOSTS={env['LSB_MCPU_HOSTS']!r} is not 'host slots' pairs")
        hosts = [(words[i], int(words[i + 1])) for i in range(0, len(words), 2)]
    else:
        hosts = []
        for name in env.get("LSB_HOSTS", "").split():
            if hosts and hosts[-1][0] == name:
                hosts[-1] = (name, hosts[-1][1] + 1)
            else:
                hosts.append((name, 1))
    if len(hosts) > 1 and hosts[0][1] == 1 and all(n > 1 for _, n in hosts[1:]):
        hosts = hosts[1:]
    return hosts


def from_jsrun(env: Mapping[str, str], port: int) -> Optional[ClusterSpec]:
    """LSF jsrun: JSM_NAMESPACE_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE (or the OMPI_COMM_WORLD_* that
    Spectrum MPI sets too) with the LSF host list; ranks fill hosts in order, LOCAL_SIZE per host."""
    if "JSM_NAMESPACE_RANK" not in env and not ("LSB_JOBID" in env and "OMPI_COMM_WORLD_RANK" in env):
        return None
    rank = _int(env, "JSM_NAMESPACE_RANK")
    rank = _int(env, "OMPI_COMM_WORLD_RANK") if rank is None else rank
    size = _int(env, "JSM_NAMESPACE_SIZE") or _int(env, "OMPI_COMM_WORLD_SIZE")
    local_size = _int(env, "JSM_NAMESPACE_LOCAL_SIZE") or _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE") or 1
    if size is None or rank is None:
        raise ClusterError("jsrun: JSM_NAMESPACE_RANK is set but JSM_NAMESPACE_SIZE is not")
    _check_rank("jsrun", rank, size, "JSM_NAMESPACE_RANK, JSM_NAMESPACE_SIZE")
    if size == 1:
        return ClusterSpec("lsf")
    if size % local_size:
        raise ClusterError(f"jsrun: {size} ranks do not fill hosts of {local_size} ranks each; "
                           "launch the same number of ranks per host (jsrun -r)")
    needed = size // local_size
    hosts = [h for h, _ in lsf_hosts(env)]
    if len(hosts) < needed:
        raise ClusterError(f"jsrun: {size} ranks at {local_size} per host need {needed} host(s), "
                           f"LSB_MCPU_HOSTS/LSB_HOSTS list {len(hosts)}")
    workers = _addresses([(h, local_size) for h in hosts[:needed]], port)
    return ClusterSpec("lsf", rank, size, rank % local_size, local_size, (("worker", workers),),
                       ("worker", rank))


def from_mpi(env: Mapping[str, str], port: int) -> Optional[ClusterSpec]:
    """Plain MPI ranks: Open MPI (OMPI_COMM_WORLD_*) or MPICH/Intel MPI (PMI_RANK/PMI_SIZE).
    MPI names no peer hosts: ranks on one host talk over loopback; ranks on several hosts take the
    hosts from DUNE_WORKER_HOSTS (a Slurm-style host list, one entry per host, in rank order) or,
    for mpirun inside a Slurm allocation, SLURM_JOB_NODELIST."""
    for rank_name, size_name, local_name, local_size_name in (
            ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
             "OMPI_COMM_WORLD_LOCAL_SIZE"),
            ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")):
        rank, size = _int(env, rank_name), _int(env, size_name)
        if rank is None or size is None:
            continue
        _check_rank("MPI", rank, size, f"{rank_name}, {size_name}")
        if size == 1:
            return ClusterSpec("mpi")
        host_list = env.get(HOSTS_ENV) or env.get("SLURM_JOB_NODELIST")
        local_size = _int(env, local_size_name) or (size if not host_list else None)
        if host_list and local_size != size:
            hosts = expand_nodelist(host_list)
            if local_size is None:
                local_size = size // len(hosts) if size % len(hosts) == 0 else 0
            if not local_size or len(hosts) * local_size != size:
                raise ClusterError(f"MPI: {size} ranks do not fit the {len(hosts)} host(s) of "
                                   f"{HOSTS_ENV} or SLURM_JOB_NODELIST at {local_size} rank(s) per host")
        elif local_size == size:
            hosts = ["127.0.0.1"]
        else:
            raise ClusterError(f"MPI ranks span several hosts but their names are unknown: set "
                               f"{HOSTS_ENV}=host[1-4] (one entry per host, in rank order) or "
                               "launch with srun/jsrun")
        workers = _addresses([(h, local_size) for h in hosts], port)
        return ClusterSpec("mpi", rank, size, rank % local_size, local_size, (("worker", workers),),
                           ("worker", rank))
    return None


def detect_cluster(env: Optional[Mapping[str, str]] = None, *, port: int = DEFAULT_PORT,
                   multi_worker: str = "auto") -> ClusterSpec:
    """This process's ClusterSpec from the environment (`os.environ` by default).

    `multi_worker="off"` ignores the launcher: every copy is a single, independent worker.
    Raises ClusterError (exit 69) when the environment is inconsistent.
    """
    env = os.environ if env is None else env
    if multi_worker == "off":
        return ClusterSpec()
    if env.get("TF_CONFIG", "").strip():
        return from_tf_config(env["TF_CONFIG"])
    for reader in (from_slurm, from_jsrun, from_mpi):
        spec = reader(env, port)
        if spec is not None:
            return spec
    return ClusterSpec()
