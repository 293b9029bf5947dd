"""The cgroups this process is in, as /proc/self/cgroup lists them: what the CPU quota
(wrapper.platform.cpu_share) and the memory limit (wrapper.platform.memory_limits) both start from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Membership:
    """One "ID:CONTROLLERS:PATH" line: a hierarchy, its controllers, this process's path in it."""

    hierarchy: str
    controllers: tuple[str, ...]
    path: str

    @property
    def unified(self) -> bool:
        """The cgroup v2 hierarchy (ID 0, no controllers named)."""
        return self.hierarchy == "0" and not self.controllers


def read_text(path: Path) -> Optional[str]:
    """The text of a cgroup (or proc) file; None where it is missing or the kernel refuses it."""
    try:
        return path.read_text()
    except OSError:
        return None


def memberships(proc_cgroup: Optional[str] = None) -> list[Membership]:
    """The lines of `proc_cgroup` (the text of /proc/self/cgroup; read when not given)."""
    if proc_cgroup is None:
        proc_cgroup = read_text(Path("/proc/self/cgroup")) or ""
    found = []
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        found.append(Membership(hierarchy, tuple(c for c in controllers.split(",") if c), path))
    return found
