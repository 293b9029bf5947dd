"""The platform and the chosen build as a person reads them (`dune-payload --showPlatform`, and the
detail of a 'no usable build' error)."""
from __future__ import annotations

from wrapper.platform.detect import Platform
from wrapper.platform.gpu_architectures import family
from wrapper.platform.gpu_record import VENDOR_NAMES

_RUNTIME = {"amd": "ROCm", "intel": "Level Zero"}


def gpu_line(gpu, reason) -> str:
    """One GPU: its label, name, architecture, memory, partitions and whether the build can use it."""
    memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib else "memory unknown"
    if gpu.vendor == "nvidia":
        arch = f"cc {gpu.cc_text}"
    else:
        named = family(gpu.vendor, None, gpu.gpu_arch, gpu.name)
        arch = gpu.arch_text + (f" ({named})" if named else "")
    extra = ""
    if gpu.mig_mode:
        profiles = ", ".join(m.profile or m.uuid or "?" for m in gpu.mig_devices) or "none"
        extra = f", MIG on ({len(gpu.mig_devices)} devices: {profiles})"
    elif gpu.partition:
        extra = f", {gpu.partition}"
    state = "usable" if reason is None else "NOT usable: " + reason
    return f"  {gpu.label}: {gpu.name}, {arch}, {memory}{extra} -> {state}"


def _framework_line(platform: Platform) -> str:
    fw = platform.framework
    if fw is None:
        return f"  Framework: not probed (Keras backend {platform.keras_backend})"
    if fw.rocm_build or fw.xpu_build:
        stack = fw.stack_text
    else:
        stack = f"CUDA {fw.cuda_version}" if fw.cuda_build else "not a CUDA build"
    return (f"  Framework: {fw.name} {fw.version} (Keras {fw.keras_version or '?'}), {stack}, "
            f"GPU code: {fw.arch_text}")


def format_platform(platform: Platform, selection=None) -> str:
    """Human-readable platform (and chosen build) for `dune-payload --showPlatform`."""
    reasons = dict(platform.unusable)
    cpu = platform.cpu
    features = " ".join(sorted(cpu.to_report()["features"])) or "none of note"
    lines = [f"Platform (GPUs from: {platform.source})",
             f"  CPU: {cpu.arch}, {cpu.cores} cores, {cpu.model}; features: {features}",
             f"  Driver: {platform.driver_version or 'none'}"
             f" (CUDA {platform.cuda_driver_version or 'unknown'})"]
    for reading in platform.readings:
        if reading.vendor in _RUNTIME:
            lines.append(f"  {VENDOR_NAMES[reading.vendor]}: driver {reading.driver_version or 'unknown'}, "
                         f"{_RUNTIME[reading.vendor]} {reading.runtime_version or 'unknown'}"
                         f" (from {reading.source})")
    lines.append("  CUDA_VISIBLE_DEVICES: " + ("unset" if platform.visible_devices is None
                                               else repr(platform.visible_devices)))
    lines += [f"  {name}: {value!r}" for name, value in platform.visibility
              if name != "CUDA_VISIBLE_DEVICES"]
    lines += [gpu_line(gpu, reasons.get(gpu.key)) for gpu in platform.gpus]
    if not platform.gpus:
        lines.append(f"  GPUs: none ({platform.detected_gpus} detected)")
    lines.append(_framework_line(platform))
    if platform.problems:
        lines.append("  Problems:")
        lines += [f"    - {p}" for p in platform.problems]
    if selection is not None:
        build = selection.build
        where = ", ".join(g.label for g in selection.gpus) if selection.device == "gpu" else "CPU"
        lines.append(f"Build: {build.name} on {where}: {build.precision}, batch {build.batch_size}, "
                     f"config {build.model_config or 'of the model file'}")
        lines += [f"  skipped {name}: {why}" for name, why in selection.skipped]
        lines += [f"  note: {note}" for note in selection.notes]
    return "\n".join(lines)
