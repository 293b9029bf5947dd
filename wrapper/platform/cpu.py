"""The CPU the job landed on: architecture, usable cores, model and the features builds care about."""
from __future__ import annotations

import os
import platform as _platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# Flags that decide a build or explain its speed; the report lists only these.
REPORTED_FEATURES = frozenset({
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
    "avx512bw", "avx512vl", "amx_bf16", "amx_tile", "amx_int8", "amx_fp16",
    "asimd", "asimdhp", "bf16", "i8mm", "sve", "sve2", "sme",          # aarch64 /proc/cpuinfo names
    "altivec", "vsx", "mma",                                            # ppc64le
})

# ARM cores by (implementer, part) as /proc/cpuinfo gives them, for a readable model name.
_ARM_PARTS = {
    ("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd49"): "Neoverse-N2", ("0x41", "0xd4f"): "Neoverse-V2",
}


@dataclass(frozen=True)
class CPUInfo:
    arch: str                     # x86_64 | ppc64le | aarch64 | …
    cores: int                    # CPUs this process may run on (affinity / cgroup cpuset)
    model: str
    features: frozenset

    def to_report(self) -> dict:
        return {"arch": self.arch, "cores": self.cores, "model": self.model,
                "features": sorted(self.features & REPORTED_FEATURES)}


def read_cpu(cpuinfo: Optional[str] = None, *, machine: Optional[str] = None,
             cores: Optional[int] = None) -> CPUInfo:
    """Read this machine's CPU (or parse the given /proc/cpuinfo text as if on `machine`)."""
    machine = machine or _platform.machine()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    fields = _first_block(cpuinfo)
    flags = fields.get("flags") or fields.get("features") or ""
    features = frozenset(flags.split())
    if machine == "ppc64le" and "altivec" in fields.get("cpu", ""):
        features |= {"altivec"}
    return CPUInfo(arch=machine, cores=cores, model=_model(fields, machine), features=features)


def _first_block(cpuinfo: str) -> dict:
    """Key/value pairs of /proc/cpuinfo, first value of each key (the first CPU's), keys lowercased."""
    fields: dict = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() not in fields:
            fields[key.strip().lower()] = value.strip()
    return fields


def _model(fields: dict, machine: str) -> str:
    if fields.get("model name"):
        return re.sub(r"\s+", " ", fields["model name"])
    if machine == "ppc64le" and fields.get("cpu"):
        return fields["cpu"].split(",")[0]
    implementer, part = fields.get("cpu implementer"), fields.get("cpu part")
    if implementer and part:
        return _ARM_PARTS.get((implementer.lower(), part.lower()), f"ARM {implementer}/{part}")
    return _platform.processor() or machine
