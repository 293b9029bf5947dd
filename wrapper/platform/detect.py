"""Where the job landed: GPUs of every vendor (NVIDIA: NVML → nvidia-smi; AMD: amdsmi → amd-smi →
rocm-smi; Intel: xpu-smi; then the framework's device list; else none), each vendor's visible-
devices variables applied, the CPU and the framework build, plus which of those GPUs that build can
actually run on (see docs/design.md, 'GPU detection and builds').
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional

from wrapper.platform import framework as fw
from wrapper.platform.amd_gpus import read_amd
from wrapper.platform.amd_visible import apply_amd_visible_devices
from wrapper.platform.cpu import CPUInfo, read_cpu
from wrapper.platform.framework import FrameworkInfo, keras_backend
from wrapper.platform.gpu_record import GpuReading
from wrapper.platform.gpus import apply_visible_devices, read_nvidia_smi, read_nvml
from wrapper.platform.intel_gpus import apply_ze_affinity_mask, read_intel
from wrapper.platform.usability import driver_problem, unusable_reason

# The variables each runtime narrows its device list by, in the order the report lists them.
VISIBILITY_VARIABLES = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                        "ZE_AFFINITY_MASK", "ZE_FLAT_DEVICE_HIERARCHY")


@dataclass(frozen=True)
class Platform:
    gpus: tuple                          # the GPUs the runtimes will show, visible-devices applied
    driver_version: Optional[str]        # NVIDIA's driver (AMD's and Intel's are in `readings`)
    cuda_driver_version: Optional[str]   # newest CUDA the driver supports, "12.2"
    source: str                          # nvml | nvidia-smi | amd-smi | … joined by '+' | framework | none
    problems: tuple
    cpu: CPUInfo
    framework: Optional[FrameworkInfo]
    keras_backend: str = "tensorflow"
    visible_devices: Optional[str] = None  # CUDA_VISIBLE_DEVICES
    detected_gpus: int = 0               # before the visible-devices variables
    unusable: tuple = field(default=(), compare=False)   # (((vendor, index), reason), …)
    readings: tuple = ()                 # one GpuReading per vendor that answered
    visibility: tuple = ()               # ((variable, value), …) of those set

    def reading(self, vendor: str) -> Optional[GpuReading]:
        """What the source of `vendor`'s GPUs said, or None."""
        return next((r for r in self.readings if r.vendor == vendor), None)

    def to_report(self) -> dict:
        """The job report's `platform` section (plain JSON types)."""
        reasons = dict(self.unusable)
        return {
            "source": self.source,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "cuda_visible_devices": self.visible_devices,
            "visible_devices": dict(self.visibility),
            "detected_gpus": self.detected_gpus,
            "gpus": [dict(g.to_report(), usable=g.key not in reasons,
                          unusable_reason=reasons.get(g.key)) for g in self.gpus],
            "gpu_readings": [r.to_report() for r in self.readings],
            "cpu": self.cpu.to_report(),
            "keras_backend": self.keras_backend,
            "framework": self.framework.to_report() if self.framework else None,
            "problems": list(self.problems),
        }


def read_gpus(env: Mapping[str, str]) -> tuple:
    """Every vendor's GPUs: (readings, problems). A vendor whose tools are all absent says nothing;
    NVIDIA's absence is said unless another vendor's GPUs answered, as most jobs expect NVIDIA."""
    problems: list = []
    visible = env.get("CUDA_VISIBLE_DEVICES")
    nvidia, failed = read_nvml()
    problems += failed
    if nvidia is None:
        nvidia, failed = read_nvidia_smi(need_uuids=bool(visible and re.search(r"GPU-|MIG-", visible)))
        problems += failed
    amd, amd_failed = read_amd()
    intel, intel_failed = read_intel()
    if nvidia is None and (amd or intel):
        problems = []   # an AMD or Intel node: that it has no NVIDIA driver is no problem
    problems += amd_failed + intel_failed
    return tuple(r for r in (nvidia, amd, intel) if r is not None), tuple(problems)


def visible_gpus(reading: GpuReading, env: Mapping[str, str], others: bool) -> tuple:
    """The GPUs of one reading that its runtime will show under `env`: (GPUs, problems).
    HIP also honours CUDA_VISIBLE_DEVICES, but only where no NVIDIA GPU claims it (`others`)."""
    if reading.vendor == "amd":
        amd_env = {k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES" or not others}
        return apply_amd_visible_devices(reading.gpus, amd_env)
    if reading.vendor == "intel":
        return apply_ze_affinity_mask(reading.gpus, env.get("ZE_AFFINITY_MASK"),
                                      hierarchy=env.get("ZE_FLAT_DEVICE_HIERARCHY"))
    return apply_visible_devices(reading.gpus, env.get("CUDA_VISIBLE_DEVICES"))


def detect_platform(*, probe_framework: bool = True) -> Platform:
    """Detect GPUs, CPU and (if `probe_framework`) the framework build. Never raises: what fails is
    recorded in `problems`. Without `probe_framework` no framework is imported (dry runs)."""
    env = dict(os.environ)
    readings, failed = read_gpus(env)
    problems = list(failed)
    framework = None
    backend = keras_backend()
    if probe_framework:
        framework, failed = fw.probe_framework(backend)
        problems += failed
    gpus: list = []
    has_nvidia = any(r.vendor == "nvidia" for r in readings)
    for reading in readings:
        problems += reading.problems
        chosen, failed = visible_gpus(reading, env, others=has_nvidia)
        gpus += chosen
        problems += failed
    detected = sum(len(r.gpus) for r in readings)
    if not readings and framework is not None and framework.gpu_devices:
        # The framework already applied the visible-devices variables to what it lists.
        vendor = framework.gpu_devices[0].vendor
        readings = (GpuReading("framework", framework.gpu_devices, None, None, vendor=vendor),)
        gpus, detected = list(framework.gpu_devices), len(framework.gpu_devices)
    elif not readings and framework is not None and framework.cuda_build:
        problems.append(f"framework: {framework.name} is a CUDA build but lists no GPU")
    nvidia = next((r for r in readings if r.vendor == "nvidia"), None)
    order_note = index_order_problem(nvidia.gpus if nvidia else (), env.get("CUDA_VISIBLE_DEVICES"),
                                     env.get("CUDA_DEVICE_ORDER"))
    if order_note:
        problems.append(order_note)
    cuda_driver = nvidia.cuda_driver_version if nvidia else None
    driver_note = driver_problem(cuda_driver, framework)
    if driver_note:
        problems.append(driver_note)
    platform = Platform(gpus=tuple(gpus), driver_version=nvidia.driver_version if nvidia else None,
                        cuda_driver_version=cuda_driver,
                        source="+".join(r.source for r in readings) or "none",
                        problems=tuple(problems), cpu=read_cpu(), framework=framework,
                        keras_backend=backend, visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
                        detected_gpus=detected, readings=tuple(readings),
                        visibility=tuple((v, env[v]) for v in VISIBILITY_VARIABLES if v in env))
    return with_usability(platform)


def with_usability(platform: Platform) -> Platform:
    """The same platform with `unusable` filled in for its GPUs and framework."""
    reasons = tuple((g.key, r) for g in platform.gpus
                    for r in [unusable_reason(g, platform.framework, platform.cuda_driver_version)] if r)
    return replace(platform, unusable=reasons)


def index_order_problem(gpus, visible: Optional[str], order: Optional[str]) -> Optional[str]:
    """Warn when CUDA_VISIBLE_DEVICES indices may name other GPUs than NVML's: CUDA numbers GPUs
    fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML in PCI order; only mixed models differ."""
    if not visible or order == "PCI_BUS_ID" or len({g.name for g in gpus}) < 2:
        return None
    if not any(e.strip().isdigit() for e in visible.split(",")):
        return None
    return ("CUDA_VISIBLE_DEVICES uses indices on a node with different GPU models and "
            "CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may number them differently from this report")


def usable_gpus(platform: Platform) -> tuple:
    """The GPUs this framework build can run on: machine code for the GPU's architecture, or PTX
    at or below its compute capability that the driver can JIT. Without framework facts (dry run)
    every GPU CUDA can use counts."""
    return tuple(g for g in platform.gpus
                 if unusable_reason(g, platform.framework, platform.cuda_driver_version) is None)
