"""NVIDIA GPUs as NVML and nvidia-smi report them, and what CUDA_VISIBLE_DEVICES leaves of them.

Readers never raise: an unloadable library, a driver that does not answer or a tool that is missing
becomes a line in `problems`, so detection can fall through to the next source (see
docs/design.md, 'GPU detection and builds').
"""
from __future__ import annotations

import csv
import re
import shutil
from dataclasses import replace
from typing import Callable, Optional, Sequence

from wrapper.platform.gpu_record import GPU, MIGDevice, GpuReading, first_line, run_tool

# The query the nvidia-smi fallback asks. compute_cap (drivers ≥ 510) and mig.mode.current
# (drivers ≥ 450) are dropped when an older nvidia-smi rejects them; the others are very old.
SMI_FIELDS = ("index", "name", "pci.bus_id", "memory.total", "driver_version", "compute_cap",
              "mig.mode.current")
SMI_OPTIONAL_FIELDS = frozenset({"compute_cap", "mig.mode.current"})
_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')
_CUDA_VERSION = re.compile(r"CUDA (?:UMD )?Version\s*:\s*(\d+\.\d+)")
_L_GPU = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9A-Za-z-]+)\)")
_L_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[0-9A-Za-z/-]+)\)")
_NOT_AVAILABLE = re.compile(r"^\[?(N/A|Not Supported|Unknown Error|ERR!|Insufficient Permissions)\]?$",
                            re.IGNORECASE)

# Compute capability by product name, for nvidia-smi older than the compute_cap field and for
# anything else that reports a name only. Source: https://developer.nvidia.com/cuda-gpus.
# First match wins, so the more specific patterns come first.
CC_BY_NAME: tuple[tuple[str, tuple[int, int]], ...] = (
    (r"\bK80\b", (3, 7)),
    (r"\bK(20X?m?|20c|40[cmst]?)\b|TITAN (Black|Z)\b|GTX TITAN\b|GTX 780", (3, 5)),
    (r"\bK(10|520)\b|GTX 6[5-9]0|GTX 7[67]0", (3, 0)),
    (r"\bM(4|6|40|60)\b|GTX 9[5-8]0|TITAN X\b(?!p)", (5, 2)),
    (r"\bM10\b|GTX 750", (5, 0)),
    (r"\bP100\b|GP100", (6, 0)),
    (r"\bP(4|6|40)\b|GTX 10[5-8]0|TITAN Xp|Quadro P\d+", (6, 1)),
    (r"\bV100S?\b|TITAN V\b|GV100", (7, 0)),
    (r"\bT4\b|\bT(400|600|1000)\b|RTX 20[6-8]0|TITAN RTX|Quadro RTX|GTX 16[56]0", (7, 5)),
    (r"\bA(100|800|30)\b", (8, 0)),
    (r"\bA(10G?|16|2|40)\b|RTX A\d{4}|RTX 30[5-9]0", (8, 6)),
    (r"\bL(4|20|40S?)\b|RTX 40[5-9]0|RTX \d{4} Ada", (8, 9)),
    (r"\b(GH|H)(100|200|800)\b", (9, 0)),
    (r"\b(GB|B)(100|200|300)\b", (10, 0)),
    (r"RTX 50[5-9]0|RTX PRO \d{4} Blackwell", (12, 0)),
)


def cc_from_name(name: str) -> Optional[tuple]:
    """Compute capability of a GPU product name from NVIDIA's table, or None if it is not there."""
    for pattern, cc in CC_BY_NAME:
        if re.search(pattern, name, re.IGNORECASE):
            return cc
    return None


def parse_cc(text: str) -> Optional[tuple]:
    """'8.0' → (8, 0); None for anything else."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_version_text(nvml_value: int) -> str:
    """NVML's integer CUDA driver version (12020) as 'major.minor' ('12.2')."""
    return "%d.%d" % (nvml_value // 1000, (nvml_value % 1000) // 10)


def _with_name_table(gpu: GPU) -> GPU:
    if gpu.compute_capability is not None:
        return gpu
    cc = cc_from_name(gpu.name)
    return replace(gpu, compute_capability=cc, cc_source="name-table" if cc else None)


# --- NVML --------------------------------------------------------------------------------------

def read_nvml() -> tuple:
    """Ask NVML (nvidia-ml-py). Returns (GpuReading or None when NVML is unusable, problems)."""
    try:
        import pynvml
    except ImportError:
        return None, ("NVML: nvidia-ml-py (module pynvml) is not installed",)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return None, (f"NVML: {err}",)
    problems: list = []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda = _optional(pynvml, problems, "CUDA driver version",
                         lambda: cuda_version_text(pynvml.nvmlSystemGetCudaDriverVersion()))
        gpus = tuple(_nvml_gpu(pynvml, i, problems) for i in range(pynvml.nvmlDeviceGetCount()))
    except pynvml.NVMLError as err:
        return None, tuple(problems) + (f"NVML: {err}",)
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    return GpuReading("nvml", gpus, driver, cuda, tuple(problems)), ()


def _optional(pynvml, problems: list, what: str, call: Callable):
    """Call an NVML getter that old drivers or some boards lack: None then, a problem if unexpected."""
    try:
        return call()
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
        return None
    except pynvml.NVMLError as err:
        problems.append(f"NVML: {what}: {err}")
        return None


def _nvml_gpu(pynvml, index: int, problems: list) -> GPU:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    cc = _optional(pynvml, problems, f"GPU {index} compute capability",
                   lambda: tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle)))
    memory = _optional(pynvml, problems, f"GPU {index} memory",
                       lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20)
    modes = _optional(pynvml, problems, f"GPU {index} MIG mode",
                      lambda: pynvml.nvmlDeviceGetMigMode(handle))
    mig_mode = None if modes is None else modes[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    bus = _optional(pynvml, problems, f"GPU {index} PCI bus id",
                    lambda: pynvml.nvmlDeviceGetPciInfo(handle).busId)
    gpu = GPU(index=index, name=pynvml.nvmlDeviceGetName(handle),
              uuid=pynvml.nvmlDeviceGetUUID(handle), compute_capability=cc, memory_mib=memory,
              mig_mode=mig_mode, pci_bus_id=bus, cc_source="nvml" if cc else None,
              mig_devices=_nvml_mig_devices(pynvml, handle, problems) if mig_mode else ())
    return _with_name_table(gpu)


def _nvml_mig_devices(pynvml, handle, problems: list) -> tuple:
    devices = []
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError_NotFound:
            continue
        name = pynvml.nvmlDeviceGetName(mig)
        profile = re.search(r"MIG (\S+)", name)
        memory = _optional(pynvml, problems, "MIG device memory",
                           lambda: pynvml.nvmlDeviceGetMemoryInfo(mig).total // 2**20)
        devices.append(MIGDevice(index=len(devices), uuid=pynvml.nvmlDeviceGetUUID(mig),
                                 profile=profile.group(1) if profile else None, memory_mib=memory))
    return tuple(devices)


# --- nvidia-smi --------------------------------------------------------------------------------

def read_nvidia_smi(*, need_uuids: bool = False) -> tuple:
    """Ask the nvidia-smi on PATH. Returns (GpuReading or None when it gives no GPU list, problems).

    `need_uuids` also runs `nvidia-smi -L` (for UUIDs in CUDA_VISIBLE_DEVICES); it runs anyway when
    a GPU is in MIG mode, since only -L names the MIG devices.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, ("nvidia-smi: not found on PATH",)
    problems: list = []
    fields = list(SMI_FIELDS)
    while True:
        rc, out = run_tool([exe, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
        invalid = _INVALID_FIELD.search(out)
        if rc != 0 and invalid and invalid.group(1) in SMI_OPTIONAL_FIELDS and invalid.group(1) in fields:
            fields.remove(invalid.group(1))
            continue
        break
    if rc != 0:
        return None, (f"nvidia-smi: exit {rc}: {first_line(out)}",)
    gpus, driver = parse_smi_query(out, fields)
    if not gpus:
        return None, ("nvidia-smi: lists no GPU",)
    rc, header = run_tool([exe])
    cuda = parse_smi_cuda_version(header) if rc == 0 else None
    if cuda is None:
        problems.append(f"nvidia-smi: no CUDA version in its summary (exit {rc}): {first_line(header)}")
    if need_uuids or any(g.mig_mode for g in gpus):
        rc, listing = run_tool([exe, "-L"])
        if rc == 0:
            gpus = merge_smi_listing(gpus, listing)
        else:
            problems.append(f"nvidia-smi -L: exit {rc}: {first_line(listing)}")
    return GpuReading("nvidia-smi", gpus, driver, cuda, tuple(problems)), ()


def _value(text: str) -> Optional[str]:
    text = text.strip()
    return None if not text or _NOT_AVAILABLE.match(text) else text


def parse_smi_query(text: str, fields: Sequence[str]) -> tuple:
    """Parse `--query-gpu=<fields> --format=csv,noheader,nounits` output: (GPUs, driver version)."""
    gpus, driver = [], None
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(row) != len(fields):
            continue
        values = dict(zip(fields, (_value(v) for v in row)))
        if values.get("index") is None or values.get("name") is None:
            continue
        driver = driver or values.get("driver_version")
        cc = parse_cc(values.get("compute_cap") or "")
        memory = values.get("memory.total")
        mig = values.get("mig.mode.current")
        gpus.append(_with_name_table(GPU(
            index=int(values["index"]), name=values["name"], uuid=None, compute_capability=cc,
            memory_mib=int(float(memory)) if memory else None,
            mig_mode=None if mig is None else mig.lower() == "enabled",
            pci_bus_id=values.get("pci.bus_id"), cc_source="nvidia-smi" if cc else None)))
    return tuple(gpus), driver


def parse_smi_cuda_version(text: str) -> Optional[str]:
    """The CUDA version the driver supports, from the banner of plain `nvidia-smi` (or `-q`)."""
    match = _CUDA_VERSION.search(text or "")
    return match.group(1) if match else None


def merge_smi_listing(gpus: Sequence[GPU], listing: str) -> tuple:
    """Add UUIDs and MIG devices from `nvidia-smi -L` to GPUs read from the query."""
    uuids: dict = {}
    migs: dict = {}
    current = None
    for line in listing.splitlines():
        gpu_line = _L_GPU.match(line)
        if gpu_line:
            current = int(gpu_line.group(1))
            uuids[current] = gpu_line.group(3)
            migs[current] = []
            continue
        mig_line = _L_MIG.match(line)
        if mig_line and current is not None:
            migs[current].append(MIGDevice(index=int(mig_line.group(2)), uuid=mig_line.group(3),
                                           profile=mig_line.group(1)))
    return tuple(replace(g, uuid=uuids.get(g.index, g.uuid),
                         mig_devices=tuple(migs.get(g.index, ())) if g.mig_mode else g.mig_devices)
                 for g in gpus)


# --- CUDA_VISIBLE_DEVICES ----------------------------------------------------------------------

def apply_visible_devices(gpus: Sequence[GPU], value: Optional[str]) -> tuple:
    """The GPUs CUDA will show under CUDA_VISIBLE_DEVICES=`value`, in its order: (GPUs, problems).

    As CUDA does: unset means all; empty means none; entries are indices, GPU UUIDs (or a unique
    prefix) or MIG UUIDs; the list ends at the first entry that names no device.
    """
    if value is None:
        return tuple(gpus), ()
    chosen: list = []
    problems: list = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            problems.append("CUDA_VISIBLE_DEVICES is empty: CUDA shows no GPU" if not value.strip()
                            else "CUDA_VISIBLE_DEVICES has an empty entry: CUDA ignores it and the rest")
            break
        gpu = _visible_entry(gpus, entry)
        if gpu is None:
            problems.append(f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU here: "
                            "CUDA ignores it and every entry after it")
            break
        if any(g.index == gpu.index for g in chosen):
            problems.append(f"CUDA_VISIBLE_DEVICES names GPU {gpu.index} twice")
            break
        chosen.append(gpu)
    return tuple(chosen), tuple(problems)


def _visible_entry(gpus: Sequence[GPU], entry: str) -> Optional[GPU]:
    if re.fullmatch(r"\d+", entry):
        return next((g for g in gpus if g.index == int(entry)), None)
    if entry.startswith("MIG-GPU-"):            # CUDA 11.0 form MIG-GPU-<uuid>/<gi>/<ci>
        parent = entry[len("MIG-"):].split("/")[0]
        return next((g for g in gpus if g.uuid == parent), None)
    if entry.startswith("MIG-"):
        for gpu in gpus:
            for mig in gpu.mig_devices:
                if mig.uuid and mig.uuid.startswith(entry):
                    return replace(gpu, mig_devices=(mig,))
        return None
    matches = [g for g in gpus if g.uuid and g.uuid.startswith(entry if entry.startswith("GPU-")
                                                                 else "GPU-" + entry)]
    return matches[0] if len(matches) == 1 else None
