"""The host memory a job may use, as the kernel enforces it: its memory cgroup and its rlimits.

Read by the supervisor when the payload step dies, so that an out-of-memory failure names the limit
it met (the batch system's memory cgroup, or an address-space/data rlimit) and tells the OOM
killer's SIGKILL apart from any other SIGKILL by the cgroup's own kill counter.
"""
from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from wrapper.platform.cgroups import CGROUP_ROOT, memberships, read_text

# cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory cgroup this process is in, and what its files say now."""

    directory: Path
    version: int                  # 1 or 2
    limit: Optional[int]          # bytes; None: no limit
    peak: Optional[int]           # bytes used at most so far; None where the kernel does not say
    oom_kills: Optional[int]      # processes the OOM killer ended in it; None where not counted


def _number(text: Optional[str]) -> Optional[int]:
    if text is None or text.strip() in ("", "max"):
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return None if value >= _V1_UNLIMITED else value


def _key(text: Optional[str], key: str) -> Optional[int]:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _number(value)
    return None


def memory_cgroup(root: Path = CGROUP_ROOT, proc_cgroup: Optional[str] = None) -> Optional[MemoryCgroup]:
    """This process's memory cgroup (v2 unified or v1 `memory` controller), None where it has none
    the kernel lets us read. `proc_cgroup` is the text of /proc/self/cgroup."""
    for cgroup in memberships(proc_cgroup):
        if cgroup.unified:
            for top in (root, root / "unified"):
                directory = top / cgroup.path.lstrip("/")
                if (directory / "memory.max").is_file():
                    return MemoryCgroup(directory, 2, _number(read_text(directory / "memory.max")),
                                        _number(read_text(directory / "memory.peak")),
                                        _key(read_text(directory / "memory.events"), "oom_kill"))
        elif "memory" in cgroup.controllers:
            directory = root / "memory" / cgroup.path.lstrip("/")
            if (directory / "memory.limit_in_bytes").is_file():
                return MemoryCgroup(directory, 1, _number(read_text(directory / "memory.limit_in_bytes")),
                                    _number(read_text(directory / "memory.max_usage_in_bytes")),
                                    _key(read_text(directory / "memory.oom_control"), "oom_kill"))
    return None


def oom_kills() -> Optional[int]:
    """How many processes the kernel's OOM killer has ended in this process's memory cgroup; None
    where the kernel does not say."""
    cgroup = memory_cgroup()
    return cgroup.oom_kills if cgroup else None


def _size(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB" if value >= 1 << 30 else f"{value / (1 << 20):.0f} MiB"


def describe_limits() -> str:
    """The host-memory limits this process and its children run under, in words ("" if none): the
    memory cgroup's limit and peak, and any address-space or data-segment rlimit."""
    parts = []
    cgroup = memory_cgroup()
    if cgroup is not None and cgroup.limit is not None:
        peak = f", peak {_size(cgroup.peak)}" if cgroup.peak is not None else ""
        parts.append(f"the job's memory cgroup allows {_size(cgroup.limit)}{peak}")
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY:
            parts.append(f"{name} is {_size(soft)}")
    return "; ".join(parts)
