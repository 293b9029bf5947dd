"""A task's GPU requirement for PanDA's brokerage, derived from the model builds it ships.

PanDA brokers a task's jobs on the GPUs its `architecture` asks for: the vendor, and (panda-client
2.2.0 `--architecture`, panda-server's JediTaskSpec.get_host_gpu_spec) `microarchitecture`, `vram`
(MiB, operator-prefixed), CUDA `version`, `driver_version` and a `model` pattern, matched against
what the pilots report of their worker nodes. Two forms: the shorthand `@base#cpu&gpu[:key=value]…`
takes one microarchitecture; the JSON form (`base_platform`, `cpu_specs`, `gpu_spec`) a list.

A task should land only where one of its builds can run: the microarchitectures that the GPU builds'
compute-capability ranges cover, and at least the smallest GPU memory any of them needs. A build
with no compute-capability bound runs on any GPU, so the task then asks for the vendor alone.
The requirement is a superset where a range covers part of a generation (cc >= 8.6 takes Ampere):
the trf still chooses (or refuses, exit 69) on the node.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

from wrapper.platform import gpu_architectures
@dataclass(frozen=True)
class GpuRequirement:
    """What the task asks of a node's GPU; empty microarchitectures: any."""

    vendor: str = "nvidia"
    microarchitectures: tuple = ()
    vram_mb: Optional[int] = None


def microarchitectures(min_cc: Optional[tuple], max_cc: Optional[tuple]) -> tuple:
    """The microarchitectures (the names pilot 3.11 reports, wrapper.platform.gpu_architectures) with a
    compute capability in [min_cc, max_cc] (inclusive)."""
    return gpu_architectures.in_range(min_cc, max_cc)


def gpu_requirement(builds: Sequence, extra_vram_mb: Optional[int] = None) -> GpuRequirement:
    """The requirement under which at least one of `builds` (wrapper.builds.selection.Build) can run on the GPU.

    Raises ValueError when none of them runs on a GPU."""
    gpu_builds = [b for b in builds if b.requires.device in ("gpu", "any")]
    if not gpu_builds:
        raise ValueError("none of the builds runs on a GPU: ask for CPU queues (--gpu none)")
    names: list = []
    for build in gpu_builds:
        req = build.requires
        if req.min_cc is None and req.max_cc is None:
            names = []
            break
        names += [n for n in microarchitectures(req.min_cc, req.max_cc) if n not in names]
    else:
        names = [n for n, _, _ in gpu_architectures.MICROARCHITECTURES if n in names]  # generation order
    needs = [b.requires.min_gpu_memory_mb for b in gpu_builds]
    vram = None if None in needs else min(needs)
    if extra_vram_mb:
        vram = max(vram or 0, extra_vram_mb)
    return GpuRequirement(microarchitectures=tuple(names), vram_mb=vram)


def architecture(cpu_arch: str, gpu: Optional[GpuRequirement], base_platform: Optional[str] = None) -> str:
    """The task's `architecture`: the shorthand when it can say it all, else the JSON form."""
    if gpu is not None and len(gpu.microarchitectures) > 1:
        spec: dict = {"vendor": gpu.vendor, "microarchitecture": list(gpu.microarchitectures)}
        if gpu.vram_mb:
            spec["vram"] = f">={gpu.vram_mb}"
        data: dict = {"cpu_specs": [{"arch": cpu_arch}], "gpu_spec": spec}
        if base_platform:
            data = {"base_platform": base_platform, **data}
        return json.dumps(data, separators=(",", ":"))
    text = (f"@{base_platform}" if base_platform else "") + f"#{cpu_arch}"
    if gpu is not None:
        text += f"&{gpu.vendor}"
        if gpu.vram_mb:
            text += f":vram>={gpu.vram_mb}"
        if gpu.microarchitectures:
            text += f":uarch={gpu.microarchitectures[0]}"
    return text
