"""The one GPU record every vendor's reader fills (NVIDIA, AMD, Intel), and how readers run a
vendor's tool.

A node's GPUs are numbered per vendor, as each runtime numbers them (CUDA, HIP, Level Zero), so a
GPU is known by `key` (vendor, index), never by its index alone (see docs/design.md, 'GPU detection
and builds').
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Optional, Sequence

from wrapper.platform import gpu_architectures

VENDORS = ("nvidia", "amd", "intel")
VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
TOOL_TIMEOUT_S = 30


@dataclass(frozen=True)
class MIGDevice:
    """One MIG slice of a GPU; `uuid` is what CUDA_VISIBLE_DEVICES names it by."""

    index: int
    uuid: Optional[str]
    profile: Optional[str] = None        # e.g. "1g.10gb"
    memory_mib: Optional[int] = None

    def to_report(self) -> dict:
        return {"index": self.index, "uuid": self.uuid, "profile": self.profile,
                "memory_mib": self.memory_mib}


@dataclass(frozen=True)
class GPU:
    """One GPU as its runtime shows it. NVIDIA: `index` is NVML's (PCI order), `mig_devices` the
    slices CUDA will see. AMD: one GCD or partition per record (an MI250X card is two), `gpu_arch`
    its LLVM target ('gfx90a'). Intel: one device per record, `gpu_arch` the target its code is
    compiled for ('pvc'), `partition` its tiles."""

    index: int
    name: str
    uuid: Optional[str]
    compute_capability: Optional[tuple]  # NVIDIA only
    memory_mib: Optional[int]
    mig_mode: Optional[bool]
    mig_devices: tuple = ()
    pci_bus_id: Optional[str] = None
    cc_source: Optional[str] = None      # nvml | nvidia-smi | name-table | framework
    vendor: str = "nvidia"               # nvidia | amd | intel
    gpu_arch: Optional[str] = None       # AMD/Intel code target: gfx90a, gfx942, pvc
    arch_source: Optional[str] = None    # the source that named gpu_arch (or name-table)
    device_id: Optional[str] = None      # PCI device ID, '0x740c'
    partition: Optional[str] = None      # 'GCD 1 of 2', 'SPX/NPS1', '2 tiles'

    @property
    def key(self) -> tuple:
        return self.vendor, self.index

    @property
    def label(self) -> str:
        """'GPU 0' for NVIDIA (as every earlier report said), 'AMD GPU 0', 'Intel GPU 0'."""
        return f"GPU {self.index}" if self.vendor == "nvidia" else f"{VENDOR_NAMES[self.vendor]} GPU {self.index}"

    @property
    def cc_text(self) -> str:
        return "unknown" if self.compute_capability is None else "%d.%d" % self.compute_capability

    @property
    def arch_text(self) -> str:
        """What code must exist for it: 'cc 8.0' for NVIDIA, the target ('gfx90a') otherwise."""
        if self.vendor == "nvidia":
            return f"cc {self.cc_text}"
        return self.gpu_arch or "architecture unknown"

    def to_report(self) -> dict:
        data = {"index": self.index, "vendor": self.vendor, "name": self.name, "uuid": self.uuid,
                "architecture": gpu_architectures.family(self.vendor, self.compute_capability,
                                                         self.gpu_arch, self.name),
                "memory_mib": self.memory_mib, "pci_bus_id": self.pci_bus_id}
        if self.vendor == "nvidia":
            data.update(compute_capability=self.cc_text, cc_source=self.cc_source,
                        mig_mode=self.mig_mode, mig_devices=[m.to_report() for m in self.mig_devices])
        else:
            data.update(gpu_arch=self.gpu_arch, arch_source=self.arch_source,
                        device_id=self.device_id, partition=self.partition)
        return data


@dataclass(frozen=True)
class GpuReading:
    """What one source said: GPUs, driver and runtime versions, and what went wrong.
    `cuda_driver_version` is NVIDIA's (the newest CUDA the driver supports); `runtime_version`
    the ROCm or Level Zero version of an AMD or Intel reading."""

    source: str
    gpus: tuple
    driver_version: Optional[str]
    cuda_driver_version: Optional[str]
    problems: tuple = field(default_factory=tuple)
    vendor: str = "nvidia"
    runtime_version: Optional[str] = None

    def to_report(self) -> dict:
        return {"vendor": self.vendor, "source": self.source, "driver_version": self.driver_version,
                "cuda_driver_version": self.cuda_driver_version,
                "runtime_version": self.runtime_version, "gpus": len(self.gpus)}


def run_tool(argv: Sequence[str]) -> tuple:
    """Run a vendor tool; its (exit code, stdout + stderr). nvidia-smi prints errors on stdout,
    amd-smi and xpu-smi on either, so both are read; -1 when it cannot run or does not answer."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return -1, f"no answer in {TOOL_TIMEOUT_S} s"
    except OSError as err:
        return -1, str(err)
    return done.returncode, done.stdout + done.stderr


def first_line(text: str) -> str:
    """The first non-blank line of a tool's output (for a problem line), at most 200 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else "(no output)"
