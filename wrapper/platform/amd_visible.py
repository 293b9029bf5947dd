"""What ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES, which HIP also
reads) leave of a node's AMD GPUs, as a HIP program sees them."""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from wrapper.platform.amd_gpus import rocr_uuid
from wrapper.platform.gpu_record import GPU


def _select(gpus: Sequence[GPU], value: str, variable: str, uuids: bool) -> tuple:
    """The GPUs a visibility list names, in its order: (GPUs, problems). As CUDA_VISIBLE_DEVICES
    (gpus.apply_visible_devices): empty shows none, and an entry naming nothing, or a repeat, ends
    the list (the runtimes ignore it and the rest)."""
    if not value.strip():
        return (), (f"{variable} is empty: the runtime shows no AMD GPU",)
    chosen: list = []
    for entry in (e.strip() for e in value.split(",")):
        if re.fullmatch(r"\d+", entry):
            gpu = gpus[int(entry)] if int(entry) < len(gpus) else None
        elif uuids and rocr_uuid(entry):
            gpu = next((g for g in gpus if rocr_uuid(g.uuid) == rocr_uuid(entry)), None)
        else:
            gpu = None
        if gpu is None or any(g.index == gpu.index for g in chosen):
            what = "names no AMD GPU here" if gpu is None else f"repeats AMD GPU {gpu.index}"
            return tuple(chosen), (f"{variable} entry {entry!r} {what}: the runtime ignores it "
                                   "and every entry after it",)
        chosen.append(gpu)
    return tuple(chosen), ()


def apply_amd_visible_devices(gpus: Sequence[GPU], env: Mapping[str, str]) -> tuple:
    """The AMD GPUs a HIP program sees under `env`, in its order: (GPUs, problems). Each keeps its
    AMD SMI `index`, so reports match amd-smi, though HIP numbers them 0..n-1.

    As ROCm's 'GPU isolation techniques' says
    (https://rocm.docs.amd.com/en/docs-6.1.2/conceptual/gpu-isolation.html):
    ROCR_VISIBLE_DEVICES (device indices or UUIDs, read by the ROCm runtime under every ROCm
    program) applies first; HIP_VISIBLE_DEVICES (indices) then picks among what it left, and
    CUDA_VISIBLE_DEVICES, 'provided for CUDA compatibility', has the same effect and is read only
    when HIP_VISIBLE_DEVICES is unset (HIP's environment table,
    https://rocm.docs.amd.com/projects/HIP/en/latest/reference/env_variables.html). ROCR's
    indices are taken to be amd-smi's order; GPU_DEVICE_ORDINAL (OpenCL) is not applied."""
    shown, problems = tuple(gpus), ()
    hip = next((v for v in ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES") if env.get(v) is not None), None)
    for variable in ("ROCR_VISIBLE_DEVICES", hip):
        if variable is not None and env.get(variable) is not None:
            shown, found = _select(shown, env[variable], variable, variable.startswith("ROCR"))
            problems += found
    return shown, problems
