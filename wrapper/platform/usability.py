"""Whether the installed framework can run on each GPU: the code it carries for the GPU's
architecture (CUDA machine code or PTX, AMD gfx targets, Intel XPU targets) and, for NVIDIA, the
driver's CUDA version (see docs/design.md, 'GPU detection and builds').
"""
from __future__ import annotations

import re
from typing import Optional

from wrapper.platform.framework import FrameworkInfo, arch_cc
from wrapper.platform.gpu_record import GPU, VENDOR_NAMES


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
    if gpu.vendor != "nvidia":
        return _target_reason(gpu, framework)
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


# What each vendor's GPUs need from the framework: the build flag and targets of FrameworkInfo,
# and what a site installs to get such a build.
_STACKS = {"amd": ("rocm_build", "amd_targets", "a ROCm build",
                   "tensorflow-rocm, PyTorch's ROCm wheels or jax's ROCm plugin"),
           "intel": ("xpu_build", "xpu_targets", "an Intel XPU build",
                     "PyTorch's XPU wheels or intel-extension-for-tensorflow")}


def base_target(target: str) -> str:
    """'gfx90a:sramecc+:xnack-' → 'gfx90a' (HIP appends the target's features)."""
    return target.split(":")[0].lower()


def _target_reason(gpu: GPU, framework: Optional[FrameworkInfo]) -> Optional[str]:
    """Why an AMD or Intel GPU cannot be used by `framework`, or None."""
    if framework is None:
        return None
    build_flag, targets_field, stack, remedy = _STACKS[gpu.vendor]
    who = f"{framework.name} {framework.version}"
    if not getattr(framework, build_flag):
        return f"{who} is not {stack} ({framework.stack_text}; {remedy} can use it)"
    targets = getattr(framework, targets_field)
    if gpu.gpu_arch and targets and base_target(gpu.gpu_arch) not in {base_target(t) for t in targets}:
        return f"{who} has no code for {gpu.gpu_arch} (carries {', '.join(targets)})"
    if not targets and not any(g.vendor == gpu.vendor for g in framework.gpu_devices):
        return f"{who} lists no {VENDOR_NAMES[gpu.vendor]} GPU"
    return None
