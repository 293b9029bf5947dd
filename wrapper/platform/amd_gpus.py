"""AMD GPUs (Instinct MI250X, MI300A and kin) as the AMD SMI library, `amd-smi` and `rocm-smi`
report them (what ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES leave of them: amd_visible).

Readers never raise: a library that fails, a driver that is not loaded or a tool printing something
unreadable becomes a line in `problems`, as in the NVIDIA reader (wrapper/platform/gpus.py). A node
with none of the three sources gets no AMD reading and no AMD problem, so NVIDIA and CPU-only nodes
carry no AMD noise.

One record per device the runtime shows: an MI250X card is two GCDs, two records; an MI300 in a
compute partition (CPX, TPX…) is one record per partition, as amd-smi lists them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from wrapper.platform.gpu_record import GPU, GpuReading, first_line, run_tool

AMD_SMI, ROCM_SMI, LIBRARY = "amd-smi", "rocm-smi", "amdsmi"
# The argument lists asked, the forms whose output is published (fixtures README, 'AMD'):
# `amd-smi static --json` (all static sections), `amd-smi version` ('... | ROCm version: 6.3.3');
# rocm-smi (older ROCm, or no amd-smi) for its product and VRAM tables separately.
AMD_SMI_STATIC = ("static", "--json")
AMD_SMI_VERSION = ("version",)
ROCM_SMI_PRODUCT = ("--showproductname", "--json")
ROCM_SMI_VRAM = ("--showmeminfo", "vram", "--json")

# LLVM target by PCI device ID, for a source that names no target (rocm-smi before 6.0).
# Sources: the amdgpu kernel driver's PCI ID list (drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c),
# LLVM's processor table (https://llvm.org/docs/AMDGPUUsage.html#processors) and the captures
# in tests/platform/fixtures (0x7408 MI250X, 0x740f MI210, 0x74a2 MI308X).
ARCH_BY_DEVICE_ID: dict[int, str] = {
    0x66A0: "gfx906", 0x66A1: "gfx906", 0x738C: "gfx908", 0x738E: "gfx908",  # MI50/60, MI100
    0x7408: "gfx90a", 0x740C: "gfx90a", 0x740F: "gfx90a",       # MI250X, MI250, MI210
    0x74A0: "gfx942", 0x74A1: "gfx942", 0x74A2: "gfx942",       # MI300A, MI300X, MI308X
    0x74A5: "gfx942", 0x74A9: "gfx942", 0x74B5: "gfx942",       # MI325X, MI300X HF, MI300X VF
    0x75A0: "gfx950", 0x75A3: "gfx950",                         # MI350X, MI355X
}
# Device IDs of packages holding two GCDs, each its own GPU to ROCm (MI250X, MI250):
# https://instinct.docs.amd.com/projects/system-acceptance/en/latest/gpus/mi250.html
TWO_GCD_DEVICE_IDS = frozenset({0x7408, 0x740C})
_NOT_AVAILABLE = {"", "n/a", "na", "none", "unknown", "not supported"}


def _text(value: Any) -> Optional[str]:
    """A tool's value as text; None for its ways of saying 'unknown'."""
    text = None if value is None or isinstance(value, (dict, list)) else str(value).strip()
    return None if text is None or text.lower() in _NOT_AVAILABLE else text


def normalize_gfx(value: Any) -> Optional[str]:
    """An LLVM target from any AMD tool: 'gfx90a:sramecc+:xnack-' and
    'amdgcn-amd-amdhsa--gfx90a:sramecc+:xnack-' → 'gfx90a'; None if it is none.

    rocm-smi 6.0 prints the stepping of gfx9 parts in decimal, 'gfx9010' for gfx90a
    (https://github.com/ROCm/rocm_smi_lib/issues/159, an MI250X); no gfx9 target has four digits,
    so that form is read back as major 9, minor, hex stepping."""
    text = (_text(value) or "").lower().split(":")[0].replace("amdgcn-amd-amdhsa--", "")
    decimal = re.fullmatch(r"gfx9(\d)(1[0-5])", text)
    if decimal:
        return "gfx9%s%x" % (decimal.group(1), int(decimal.group(2)))
    return text if re.fullmatch(r"gfx[0-9a-f]{3,4}", text) else None


def normalize_device_id(value: Any) -> Optional[str]:
    """'0x740C', '740c', 29708 → '0x740c'; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "0x%04x" % value
    text = _text(value)
    if text and re.fullmatch(r"(0x)?[0-9a-fA-F]{1,4}", text):
        return "0x%04x" % int(text, 16)
    return None


def rocr_uuid(uuid: Optional[str]) -> Optional[str]:
    """The 'GPU-<16 hex>' form ROCR_VISIBLE_DEVICES and rocminfo use, from either form a tool
    prints. amd-smi's UUID embeds the same 64-bit unique ID: its first byte, then 'ff', the device
    ID, '-0000-1000-80', then the other seven bytes (one MI210 shown by amd-smi list as
    67ff740f-0000-1000-80c6-3ac3c3c637f9 and by rocm-smi as Unique ID 0x67c63ac3c3c637f9,
    https://github.com/ROCm/ROCm/issues/5480)."""
    text = (uuid or "").strip().lower()
    if re.fullmatch(r"gpu-[0-9a-f]{16}", text):
        return "GPU-" + text[4:]
    if re.fullmatch(r"0x[0-9a-f]{16}", text):
        return "GPU-" + text[2:]
    hexes = text.replace("-", "")
    if re.fullmatch(r"[0-9a-f]{32}", hexes):
        return "GPU-" + hexes[:2] + hexes[-14:]
    return None


def arch_for(gfx: Optional[str], device_id: Optional[str], source: str) -> tuple:
    """(gpu_arch, arch_source): the source's own target, else the device-ID table's, else none."""
    known = gfx or (ARCH_BY_DEVICE_ID.get(int(device_id, 16)) if device_id else None)
    return (known, source if gfx else "device-id-table") if known else (None, None)


def label_gcds(gpus: Sequence[GPU]) -> tuple[GPU, ...]:
    """Name the GCD of every two-GCD package (MI250X): 'GCD 1 of 2' / 'GCD 2 of 2' where both dies
    of a package are listed, as consecutive indices of one device ID (their enumeration order on
    Frontier and LUMI nodes); 'GCD of 2' where which die it is cannot be told (a job shown one GCD)."""
    out, i = list(gpus), 0
    while i < len(out):
        gpu, mate = out[i], out[i + 1] if i + 1 < len(out) else None
        if not (gpu.device_id and int(gpu.device_id, 16) in TWO_GCD_DEVICE_IDS and gpu.partition is None):
            i += 1
        elif mate and (mate.device_id, mate.index, mate.partition) == (gpu.device_id, gpu.index + 1, None):
            out[i], out[i + 1] = replace(gpu, partition="GCD 1 of 2"), replace(mate, partition="GCD 2 of 2")
            i += 2
        else:
            out[i], i = replace(gpu, partition="GCD of 2"), i + 1
    return tuple(out)


def _gpu(index: int, name: Optional[str], device_id: Optional[str], gfx: Optional[str],
         source: str, **fields: Any) -> GPU:
    arch, arch_source = arch_for(gfx, device_id, source)
    return GPU(index=index, name=name or "AMD GPU", uuid=fields.get("uuid"), compute_capability=None,
               memory_mib=fields.get("memory_mib"), mig_mode=None, pci_bus_id=fields.get("pci_bus_id"),
               vendor="amd", gpu_arch=arch, arch_source=arch_source, device_id=device_id,
               partition=fields.get("partition"))


def _partition(compute: Any, memory: Any) -> Optional[str]:
    """'SPX/NPS1' from an MI300's compute and memory partition; None where neither is known."""
    parts = [p for p in (_text(compute), _text(memory)) if p]
    return "/".join(parts) if parts else None


def _json_in(text: str) -> Any:
    """The first JSON document in a tool's output (stdout comes before stderr's warnings, e.g.
    rocm-smi's low-power WARNING); None if there is none."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text or ""):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
    return None


def _mib(value: Any) -> Optional[int]:
    """Memory in MiB from amd-smi's forms: {'value': 65520, 'unit': 'MB'}, '65520 MB', 65520. Its
    'MB' are MiB (65520 for a 64 GB MI210)."""
    unit = str(value.get("unit") or "MB") if isinstance(value, dict) else "MB"
    value = value.get("value") if isinstance(value, dict) else value
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B)?\s*", str(value)) if value is not None else None
    unit = (match and match.group(2)) or unit
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(unit[0].upper())
    return int(float(match.group(1)) * scale) if match and scale else None


# --- amd-smi -----------------------------------------------------------------------------------

def parse_amd_smi_static(text: str) -> tuple:
    """Parse `amd-smi static --json` (a list of GPUs in ROCm 6, {'gpu_data': [...]} in ROCm 7):
    (GPUs in amd-smi order, driver version, problems)."""
    data = _json_in(text)
    entries = data.get("gpu_data") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return (), None, (f"{AMD_SMI} static: no JSON GPU list: {first_line(text)}",)
    gpus, drivers = [], []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("gpu"), int):
            continue
        asic = entry.get("asic") or {}
        driver = entry.get("driver") or {}
        partition = entry.get("partition") or {}
        version = _text(driver.get("version", driver.get("driver_version")))
        if version:
            drivers.append(version)
        serial = _text(asic.get("asic_serial"))
        gpus.append(_gpu(entry["gpu"], _text(asic.get("market_name")),
                         normalize_device_id(asic.get("device_id")),
                         normalize_gfx(asic.get("target_graphics_version")), AMD_SMI,
                         uuid=rocr_uuid(serial), pci_bus_id=_text((entry.get("bus") or {}).get("bdf")),
                         memory_mib=_mib((entry.get("vram") or {}).get("size")),
                         partition=_partition(partition.get("compute_partition"),
                                              partition.get("memory_partition"))))
    return label_gcds(gpus), drivers[0] if drivers else None, ()


def parse_amd_smi_version(text: str) -> Optional[str]:
    """The ROCm version in `amd-smi version` ('... | ROCm version: 6.3.3 | ...'); None if absent
    or 'N/A' (amd-smi says N/A when it cannot tell, e.g. without a driver)."""
    match = re.search(r"ROCm version:\s*([^\s|]+)", text or "")
    return _text(match.group(1)) if match else None


def _listing(exe: str, tool: str, argv: Sequence[str], parse: Callable) -> tuple:
    """Run a tool's GPU listing and parse it: ((GPUs, driver, its output), ()) or (None, problems)."""
    rc, out = run_tool([exe, *argv])
    label = f"{tool} {' '.join(argv)}"
    if rc != 0:
        return None, (f"{label}: exit {rc}: {first_line(out)}",)
    gpus, driver, problems = parse(out)
    if not gpus:
        return None, problems or (f"{label}: lists no GPU: {first_line(out)}",)
    return (gpus, driver, out), ()


def read_amd_smi(exe: str) -> tuple:
    """Ask the amd-smi at `exe`: (GpuReading or None when it lists no GPU, problems)."""
    listed, problems = _listing(exe, AMD_SMI, AMD_SMI_STATIC, parse_amd_smi_static)
    if listed is None:
        return None, problems
    gpus, driver, _ = listed
    rc, text = run_tool([exe, *AMD_SMI_VERSION])
    rocm = parse_amd_smi_version(text) if rc == 0 else None
    extra = () if rocm else (f"{AMD_SMI} version: no ROCm version (exit {rc}): {first_line(text)}",)
    return GpuReading(AMD_SMI, gpus, driver, None, extra, vendor="amd",
                      runtime_version=rocm or rocm_version_file()), ()


# --- rocm-smi ----------------------------------------------------------------------------------

def parse_rocm_smi(product_text: str, vram_text: str = "") -> tuple:
    """Parse `rocm-smi --showproductname --json` and, if given, `rocm-smi --showmeminfo vram
    --json` of the same node: (GPUs in rocm-smi order, driver version, problems)."""
    product, vram = _json_in(product_text), _json_in(vram_text) if vram_text else {}
    if not isinstance(product, dict):
        return (), None, (f"{ROCM_SMI} {' '.join(ROCM_SMI_PRODUCT)}: no JSON: {first_line(product_text)}",)
    vram, gpus = vram if isinstance(vram, dict) else {}, []
    for card, fields in product.items():
        number = re.fullmatch(r"card(\d+)", card)
        if not number or not isinstance(fields, dict):
            continue
        get = {k.lower(): v for k, v in fields.items()}.get
        # 'Card Model' is the PCI device ID from rocm-smi 6.0 on (printed beside 'Subsystem ID');
        # before, it was the subsystem ID or a pci.ids name, so it only counts in that company.
        model = get("card model") if get("subsystem id") is not None else None
        total = _text((vram.get(card) or {}).get("VRAM Total Memory (B)"))
        gpus.append(_gpu(int(number.group(1)), _text(get("card series")) or _text(get("device name")),
                         normalize_device_id(get("device id")) or normalize_device_id(model),
                         normalize_gfx(get("gfx version")), ROCM_SMI,
                         uuid=rocr_uuid(_text(get("unique id"))), pci_bus_id=_text(get("pci bus")),
                         memory_mib=int(total) // 2**20 if total and total.isdigit() else None))
    system = product.get("system") if isinstance(product.get("system"), dict) else {}
    return label_gcds(sorted(gpus, key=lambda g: g.index)), _text(system.get("Driver version")), ()


def read_rocm_smi(exe: str) -> tuple:
    """Ask the rocm-smi at `exe`: (GpuReading or None when it lists no GPU, problems). rocm-smi
    exits 0 when the driver is not loaded (rocm_smi.py, initializeRsmi), so its output decides."""
    listed, problems = _listing(exe, ROCM_SMI, ROCM_SMI_PRODUCT, parse_rocm_smi)
    if listed is None:
        return None, problems
    gpus, driver, out = listed
    rc, vram = run_tool([exe, *ROCM_SMI_VRAM])
    extra: tuple = ()
    if rc == 0 and isinstance(_json_in(vram), dict):
        gpus, driver, _ = parse_rocm_smi(out, vram)
    else:
        extra = (f"{ROCM_SMI} {' '.join(ROCM_SMI_VRAM)}: no memory sizes (exit {rc}): {first_line(vram)}",)
    return GpuReading(ROCM_SMI, gpus, driver, None, extra, vendor="amd",
                      runtime_version=rocm_version_file()), ()


# --- the amdsmi library ------------------------------------------------------------------------

def _import_amdsmi() -> tuple:
    """(module or None, problems): not installed is silent (most nodes); a broken install is not."""
    try:
        import amdsmi  # noqa: PLC0415 - imported lazily: it loads libamd_smi.so from ROCm
    except ImportError:
        return None, ()
    except Exception as err:  # the binding raises whatever its loader does (OSError, KeyError…)
        return None, (f"{LIBRARY}: import failed: {err}",)
    return amdsmi, ()


def _optional(problems: list, what: str, call: Callable[[], Any]) -> Any:
    """Call an amdsmi getter that an older library or some GPUs lack: None then; a problem line
    for any other failure. amdsmi raises its own exception classes, whose base is not importable
    without the library, hence the broad catch."""
    try:
        return call()
    except AttributeError:
        return None
    except Exception as err:  # noqa: BLE001 - see docstring
        if "NOT_SUPPORTED" not in str(err).upper().replace(" ", "_"):
            problems.append(f"{LIBRARY}: {what}: {err}")
        return None


def _library_gpu(amdsmi: Any, index: int, handle: Any, problems: list) -> tuple:
    """(GPU, driver version) of one processor handle."""
    def get(name: str, what: str) -> Any:
        return _optional(problems, f"GPU {index} {what}", lambda: getattr(amdsmi, name)(handle))

    asic = get("amdsmi_get_gpu_asic_info", "ASIC info") or {}
    vram = get("amdsmi_get_gpu_vram_info", "VRAM info") or {}
    driver = get("amdsmi_get_gpu_driver_info", "driver info") or {}
    size = vram.get("vram_size", vram.get("vram_size_mb"))   # MB; older releases say vram_size_mb
    gpu = _gpu(index, _text(asic.get("market_name")), normalize_device_id(asic.get("device_id")),
               normalize_gfx(asic.get("target_graphics_version")), LIBRARY,
               uuid=_text(get("amdsmi_get_gpu_device_uuid", "UUID"))
               or rocr_uuid(_text(asic.get("asic_serial"))),
               pci_bus_id=_text(get("amdsmi_get_gpu_device_bdf", "PCI bus id")),
               memory_mib=int(size) if isinstance(size, int) and size > 0 else None,
               partition=_partition(get("amdsmi_get_gpu_compute_partition", "compute partition"),
                                    get("amdsmi_get_gpu_memory_partition", "memory partition")))
    return gpu, _text(driver.get("driver_version"))


def read_amdsmi(amdsmi: Any) -> tuple:
    """Ask the AMD SMI library (PyPI `amdsmi`): (GpuReading or None when unusable, problems)."""
    try:
        amdsmi.amdsmi_init()
    except Exception as err:  # noqa: BLE001 - amdsmi's exception classes, see _optional
        return None, (f"{LIBRARY}: amdsmi_init: {err}",)
    problems: list = []
    try:
        handles = amdsmi.amdsmi_get_processor_handles()
        read = [_library_gpu(amdsmi, i, h, problems) for i, h in enumerate(handles)]
        rocm = _optional(problems, "ROCm version", lambda: amdsmi.amdsmi_get_rocm_version())
    except Exception as err:  # noqa: BLE001
        return None, tuple(problems) + (f"{LIBRARY}: {err}",)
    finally:
        _optional([], "shut down", lambda: amdsmi.amdsmi_shut_down())
    if not read:
        return None, tuple(problems) + (f"{LIBRARY}: lists no GPU",)
    rocm = rocm[-1] if isinstance(rocm, (tuple, list)) else rocm   # some releases: (found, version)
    drivers = [d for _, d in read if d]
    return GpuReading(LIBRARY, label_gcds([g for g, _ in read]), drivers[0] if drivers else None,
                      None, tuple(problems), vendor="amd",
                      runtime_version=_text(rocm) or rocm_version_file()), ()


# --- all sources -------------------------------------------------------------------------------

def rocm_version_file(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The ROCm version in $ROCM_PATH/.info/version (default /opt/rocm), e.g. '6.3.1-48'; None."""
    root = (env if env is not None else os.environ).get("ROCM_PATH") or "/opt/rocm"
    try:
        return _text(Path(root, ".info", "version").read_text(encoding="utf-8").splitlines()[0])
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def read_amd() -> tuple[Optional[GpuReading], tuple[str, ...]]:
    """The node's AMD GPUs from the first source that lists them: the amdsmi library, then
    amd-smi, then rocm-smi. Returns (GpuReading or None, problems of the sources tried before);
    (None, ()) when none of them exists on the node."""
    amdsmi, import_problems = _import_amdsmi()
    problems = list(import_problems)
    sources: list = [lambda: read_amdsmi(amdsmi)] if amdsmi is not None else []
    for tool, reader in ((AMD_SMI, read_amd_smi), (ROCM_SMI, read_rocm_smi)):
        exe = shutil.which(tool)
        if exe is not None:
            sources.append(lambda reader=reader, exe=exe: reader(exe))
    for source in sources:
        reading, source_problems = source()
        if reading is not None:
            return replace(reading, problems=tuple(problems) + reading.problems), ()
        problems.extend(source_problems)
    return None, tuple(problems)
