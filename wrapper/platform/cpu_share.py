"""The job's CPU share: how many threads the framework may use on this slot.

The generic PanDA pilot exports no core count (no ATHENA_CORE_NUMBER for non-ATLAS users), and a
node's `os.cpu_count()` is the whole machine, not the slot. What the batch system gave the job shows
in the CPU affinity (cpusets, `taskset`) and in the cgroup CPU quota (cgroup v2 `cpu.max`, v1
`cpu.cfs_quota_us`/`cpu.cfs_period_us`); `--nThreads=N` overrides both.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from wrapper.platform.cgroups import CGROUP_ROOT, memberships, read_text

# v1 hierarchies the cpu controller is mounted under, by the names distributions give them
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True)
class CpuShare:
    """The threads the framework gets and where the number came from."""

    threads: int
    source: str                       # nThreads | cgroup | affinity
    affinity: int                     # CPUs this process may run on
    quota: Optional[float]            # CPUs the cgroup quota allows; None: no quota
    requested: Optional[int] = None   # --nThreads

    def to_report(self) -> dict:
        return {"threads": self.threads, "source": self.source, "affinityCPUs": self.affinity,
                "cgroupQuotaCPUs": self.quota, "nThreads": self.requested}


def parse_cpu_max(text: str) -> Optional[float]:
    """CPUs allowed by a cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD"); None when unlimited."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100000
    return int(fields[0]) / period if period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> Optional[float]:
    """CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; None when unlimited (-1)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def _limits_up(start: Path, top: Path, limit_at) -> Optional[float]:
    """The tightest limit from `start` up to the hierarchy's root `top` (a parent's quota binds its
    children too)."""
    best = None
    directory = start
    while True:
        found = limit_at(directory)
        if found is not None:
            best = found if best is None else min(best, found)
        if directory == top or top not in directory.parents:
            return best
        directory = directory.parent


def _own_dir(top: Path, path: str) -> Path:
    """The process's cgroup directory under a mount; in a cgroup namespace the mount root is it."""
    candidate = top / path.lstrip("/")
    return candidate if candidate.is_dir() else top


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Optional[str] = None) -> Optional[float]:
    """CPUs the cgroup quota gives this process (v2 and v1, the tightest of both); None: no quota.

    `proc_cgroup` is the text of /proc/self/cgroup ("ID:CONTROLLERS:PATH" lines)."""
    limits = []
    for cgroup in memberships(proc_cgroup):
        if cgroup.unified:
            for top in (root, root / "unified"):
                if (top / "cgroup.controllers").is_file():
                    limits.append(_limits_up(_own_dir(top, cgroup.path), top, lambda d: _v2_limit(d)))
        elif "cpu" in cgroup.controllers:
            for name in _V1_CPU_DIRS:
                top = root / name
                if (top / "cpu.cfs_quota_us").is_file():
                    limits.append(_limits_up(_own_dir(top, cgroup.path), top, lambda d: _v1_limit(d)))
                    break
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _v2_limit(directory: Path) -> Optional[float]:
    text = read_text(directory / "cpu.max")
    return parse_cpu_max(text) if text else None


def _v1_limit(directory: Path) -> Optional[float]:
    quota, period = read_text(directory / "cpu.cfs_quota_us"), read_text(directory / "cpu.cfs_period_us")
    return parse_cfs(quota, period) if quota and period else None


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask); the machine's count where there is none."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_share(requested: Optional[int] = None, *, affinity: Optional[int] = None,
              quota: Optional[float] = None, root: Path = CGROUP_ROOT,
              proc_cgroup: Optional[str] = None) -> CpuShare:
    """The job's share: `requested` (--nThreads) if given, else the affinity capped by the quota
    (a fractional quota rounds up: 1.5 CPUs keep two threads busy part of the time)."""
    affinity = affinity_cpus() if affinity is None else affinity
    if quota is None:
        quota = cgroup_quota(root, proc_cgroup)
    if requested:
        return CpuShare(requested, "nThreads", affinity, quota, requested)
    if quota is not None and math.ceil(quota) < affinity:
        return CpuShare(max(1, math.ceil(quota)), "cgroup", affinity, quota)
    return CpuShare(affinity, "affinity", affinity, quota)
