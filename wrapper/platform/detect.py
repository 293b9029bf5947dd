"""Where the job landed: GPUs (NVML → nvidia-smi → the framework's device list → none), the CPU,
and the framework build, plus which of those GPUs that build can actually run on (see
docs/design.md, 'GPU detection and builds').
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Optional

from wrapper.platform import framework as fw
from wrapper.platform.cpu import CPUInfo, read_cpu
from wrapper.platform.framework import FrameworkInfo, arch_cc, keras_backend
from wrapper.platform.gpus import GPU, GpuReading, apply_visible_devices, read_nvidia_smi, read_nvml


@dataclass(frozen=True)
class Platform:
    gpus: tuple                          # the GPUs CUDA will show, CUDA_VISIBLE_DEVICES applied
    driver_version: Optional[str]
    cuda_driver_version: Optional[str]   # newest CUDA the driver supports, "12.2"
    source: str                          # nvml | nvidia-smi | framework | none
    problems: tuple
    cpu: CPUInfo
    framework: Optional[FrameworkInfo]
    keras_backend: str = "tensorflow"
    visible_devices: Optional[str] = None
    detected_gpus: int = 0               # before CUDA_VISIBLE_DEVICES
    unusable: tuple = field(default=(), compare=False)   # ((gpu index, reason), …) for this framework

    def to_report(self) -> dict:
        """The job report's `platform` section (plain JSON types)."""
        reasons = dict(self.unusable)
        return {
            "source": self.source,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "cuda_visible_devices": self.visible_devices,
            "detected_gpus": self.detected_gpus,
            "gpus": [dict(g.to_report(), usable=g.index not in reasons,
                          unusable_reason=reasons.get(g.index)) for g in self.gpus],
            "cpu": self.cpu.to_report(),
            "keras_backend": self.keras_backend,
            "framework": self.framework.to_report() if self.framework else None,
            "problems": list(self.problems),
        }


def detect_platform(*, probe_framework: bool = True) -> Platform:
    """Detect GPUs, CPU and (if `probe_framework`) the framework build. Never raises: what fails is
    recorded in `problems`. Without `probe_framework` no framework is imported (dry runs)."""
    problems: list = []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    reading, failed = read_nvml()
    problems += failed
    if reading is None:
        reading, failed = read_nvidia_smi(need_uuids=bool(visible and re.search(r"GPU-|MIG-", visible)))
        problems += failed
    framework = None
    backend = keras_backend()
    if probe_framework:
        framework, failed = fw.probe_framework(backend)
        problems += failed
    gpus: tuple = ()
    detected = 0
    if reading is not None:
        problems += reading.problems
        detected = len(reading.gpus)
        gpus, failed = apply_visible_devices(reading.gpus, visible)
        problems += failed
    elif framework is not None and framework.gpu_devices:
        # The framework already applied CUDA_VISIBLE_DEVICES to what it lists.
        reading = GpuReading("framework", framework.gpu_devices, None, None)
        gpus = framework.gpu_devices
        detected = len(gpus)
    elif framework is not None and framework.cuda_build:
        problems.append(f"framework: {framework.name} is a CUDA build but lists no GPU")
    order_note = index_order_problem(reading.gpus if reading else (), visible,
                                     os.environ.get("CUDA_DEVICE_ORDER"))
    if order_note:
        problems.append(order_note)
    cuda_driver = reading.cuda_driver_version if reading else None
    driver_note = driver_problem(cuda_driver, framework)
    if driver_note:
        problems.append(driver_note)
    platform = Platform(gpus=tuple(gpus), driver_version=reading.driver_version if reading else None,
                        cuda_driver_version=cuda_driver,
                        source=reading.source if reading else "none", problems=tuple(problems),
                        cpu=read_cpu(), framework=framework, keras_backend=backend,
                        visible_devices=visible, detected_gpus=detected)
    return with_usability(platform)


def with_usability(platform: Platform) -> Platform:
    """The same platform with `unusable` filled in for its GPUs and framework."""
    reasons = tuple((g.index, r) for g in platform.gpus
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


def _version(text: Optional[str]) -> Optional[tuple]:
    numbers = re.findall(r"\d+", text or "")
    return (int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0) if numbers else None


def driver_problem(cuda_driver: Optional[str], framework: Optional[FrameworkInfo]) -> Optional[str]:
    """Say when the driver is older than the CUDA the framework was built with, or None."""
    if framework is None or not framework.cuda_build:
        return None
    driver, built = _version(cuda_driver), _version(framework.cuda_version)
    if driver is None or built is None or driver >= built:
        return None
    who = f"{framework.name} {framework.version} is built with CUDA {framework.cuda_version}"
    if driver[0] < built[0]:
        return (f"driver too old: it supports CUDA {cuda_driver} and {who}; "
                f"a driver for CUDA {built[0]}.x is needed")
    return (f"driver supports CUDA {cuda_driver}, older than the CUDA {framework.cuda_version} "
            f"{framework.name} is built with: its machine code runs, its PTX cannot be JIT-compiled")


def unusable_reason(gpu: GPU, framework: Optional[FrameworkInfo], cuda_driver: Optional[str]) -> Optional[str]:
    """Why `framework` cannot run on `gpu` (one clause), or None if it can."""
    if gpu.mig_mode and not gpu.mig_devices:
        return "MIG mode is on but no MIG device is configured, so CUDA cannot use it"
    if framework is None:
        return None
    who = f"{framework.name} {framework.version}"
    if not framework.cuda_build:
        return f"{who} is not a CUDA build"
    driver, built = _version(cuda_driver), _version(framework.cuda_version)
    jit = None
    if gpu.compute_capability is not None and (framework.sass or framework.ptx):
        cc = tuple(gpu.compute_capability)
        # Machine code runs on the same major architecture at the same or a higher minor
        # version; arch-specific code (sm_90a) only on exactly that one.
        native = any(v[0] == cc[0] and (v[1] <= cc[1] if not suffix else v == cc)
                     for v, suffix in map(arch_cc, framework.sass))
        jit = [] if native else [a for a in framework.ptx
                                 if (arch_cc(a)[0] <= cc if not arch_cc(a)[1] else arch_cc(a)[0] == cc)]
        if not native and not jit:
            return (f"{who} has no code for compute capability {gpu.cc_text} "
                    f"(carries {framework.arch_text})")
    elif gpu.compute_capability is None and not framework.gpu_devices:
        return f"compute capability unknown and {who} lists no GPU"
    if driver and built and driver[0] < built[0]:
        return f"the driver supports CUDA {cuda_driver}, {who} needs CUDA {built[0]}.x"
    if jit and driver and built and driver < built:
        return (f"{who} runs on cc {gpu.cc_text} only by JIT-compiling its {jit[-1]} PTX, which needs "
                f"a driver for CUDA ≥ {framework.cuda_version} (this one supports {cuda_driver})")
    return None


def format_platform(platform: Platform, selection=None) -> str:
    """Human-readable platform (and chosen build) for `dune-payload --showPlatform`."""
    reasons = dict(platform.unusable)
    cpu = platform.cpu
    features = " ".join(sorted(cpu.to_report()["features"])) or "none of note"
    lines = [f"Platform (GPUs from: {platform.source})",
             f"  CPU: {cpu.arch}, {cpu.cores} cores, {cpu.model}; features: {features}",
             f"  Driver: {platform.driver_version or 'none'}"
             f" (CUDA {platform.cuda_driver_version or 'unknown'})",
             "  CUDA_VISIBLE_DEVICES: " + ("unset" if platform.visible_devices is None
                                           else repr(platform.visible_devices))]
    for gpu in platform.gpus:
        memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib else "memory unknown"
        mig = ""
        if gpu.mig_mode:
            profiles = ", ".join(m.profile or m.uuid or "?" for m in gpu.mig_devices) or "none"
            mig = f", MIG on ({len(gpu.mig_devices)} devices: {profiles})"
        state = "usable" if gpu.index not in reasons else "NOT usable: " + reasons[gpu.index]
        lines.append(f"  GPU {gpu.index}: {gpu.name}, cc {gpu.cc_text}, {memory}{mig} -> {state}")
    if not platform.gpus:
        lines.append(f"  GPUs: none ({platform.detected_gpus} detected)")
    fw = platform.framework
    if fw is None:
        lines.append(f"  Framework: not probed (Keras backend {platform.keras_backend})")
    else:
        cuda = f"CUDA {fw.cuda_version}" if fw.cuda_build else "not a CUDA build"
        lines.append(f"  Framework: {fw.name} {fw.version} (Keras {fw.keras_version or '?'}), {cuda}, "
                     f"GPU code: {fw.arch_text}")
    if platform.problems:
        lines.append("  Problems:")
        lines += [f"    - {p}" for p in platform.problems]
    if selection is not None:
        build = selection.build
        where = (f"GPU {', '.join(str(g.index) for g in selection.gpus)}" if selection.device == "gpu"
                 else "CPU")
        lines.append(f"Build: {build.name} on {where}: {build.precision}, batch {build.batch_size}, "
                     f"config {build.model_config or 'of the model file'}")
        lines += [f"  skipped {name}: {why}" for name, why in selection.skipped]
        lines += [f"  note: {note}" for note in selection.notes]
    return "\n".join(lines)
