"""Intel data-centre GPUs (Data Center GPU Max, 'Ponte Vecchio') as xpu-smi reports them, and what
Level Zero's ZE_AFFINITY_MASK leaves of them.

Readers never raise: a tool that fails or prints something unreadable becomes a line in `problems`,
as in the NVIDIA reader (wrapper/platform/gpus.py). A node without xpu-smi gets no Intel reading
and no Intel problem at all, so NVIDIA and AMD nodes carry no Intel noise.

xpu-smi is asked in its table form (`xpu-smi discovery`, `xpu-smi discovery -d N`,
`xpu-smi --version`), because that is the form whose output on Max 1550 nodes is published (ALCF's
Aurora guide); the parsers also read the `-j` JSON form, whose keys are the same in xpu-smi 1.x and
2.x (intel/xpumanager, cli/src/comlet_discovery.cpp and ial/cmn/cmd_discovery.cpp).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from typing import Optional, Sequence

from wrapper.platform.gpu_record import GPU, GpuReading, first_line, run_tool

TOOL = "xpu-smi"

# Ahead-of-time code target by PCI device ID. Source: Intel's compute runtime, which lists every
# device ID it drives with its hardware config (PvcHwConfig = Xe-HPC, target "pvc"):
# https://github.com/intel/compute-runtime/blob/master/shared/source/dll/devices/devices_base.inl
# 0x0BD0 (unnamed), 0x0BD5/0x0BD6 Max 1550, 0x0BD7/0x0BD8 Max 1350, 0x0BD9..0x0BDB Max 1100,
# 0x0B69 Max 1450, 0x0B6E Max 1100C.
ARCH_BY_DEVICE_ID: dict[int, str] = {
    **{device: "pvc" for device in (0x0BD0, 0x0BD5, 0x0BD6, 0x0BD7, 0x0BD8, 0x0BD9, 0x0BDA,
                                    0x0BDB, 0x0B69, 0x0B6E)},
}
# By product name, for an xpu-smi that prints no PCI device ID (1.2 on Aurora does not in its
# summary). Every "Data Center GPU Max" is Ponte Vecchio (same source as above).
ARCH_BY_NAME: tuple[tuple[str, str], ...] = ((r"Data Center GPU Max\b", "pvc"),)

# Table labels (xpu-smi 1.x and 2.x) and JSON keys, mapped to one field name each. "SOC UUID" is
# the label since xpu-smi 1.2, "UUID" before.
_FIELDS = {
    "device name": "name", "device_name": "name",
    "soc uuid": "uuid", "uuid": "uuid",
    "pci bdf address": "pci_bus_id", "pci_bdf_address": "pci_bus_id",
    "pci device id": "device_id", "pci_device_id": "device_id",
    "driver version": "driver_version", "driver_version": "driver_version",
    "memory physical size": "memory", "memory_physical_size_byte": "memory_bytes",
    "number of tiles": "tiles", "number_of_tiles": "tiles",
    "device state": "state", "device_state": "state",
}
# One cell line of the table, bordered (1.x: "| 0 | Device Name: ...") or not (2.x: "0   Device
# Name: ..."), once the pipes are blanked: an optional device ID, then "Label: value".
_CELL = re.compile(r"^\s*(?:(\d+)\s+)?([A-Za-z][^:]*?)\s*:\s*(.*?)\s*$")
_LEVEL_ZERO = re.compile(r"Level Zero Version\s*:\s*(\S+)", re.IGNORECASE)
_MIB = re.compile(r"([\d.]+)\s*MiB", re.IGNORECASE)
# Intel's driver default on Data Center GPU Max is FLAT, each tile its own device ("The FLAT mode
# is the default mode if ZE_FLAT_DEVICE_HIERARCHY is not set"):
# https://intel.com/content/www/us/en/docs/oneapi/optimization-guide-gpu/2024-1/exposing-device-hierarchy.html
HIERARCHIES = ("FLAT", "COMPOSITE", "COMBINED")
DEFAULT_HIERARCHY = "FLAT"


# --- parsers -----------------------------------------------------------------------------------

def parse_xpu_smi_table(text: str) -> list[dict]:
    """The devices of an xpu-smi table (`discovery`, `discovery -d N`) as {field: value} dicts,
    in the order printed; labels this module does not use are dropped."""
    devices: list[dict] = []
    for raw in (text or "").splitlines():
        line = raw.replace("|", " ")
        if not line.strip() or set(line.strip()) <= set("+-= "):
            continue
        cell = _CELL.match(line)
        if not cell:
            continue                    # header ("Device ID  Device Information") or wrapped value
        number, label, value = cell.groups()
        if number is not None:
            devices.append({"index": int(number)})
        field = _FIELDS.get(label.strip().lower())
        if field and devices:
            devices[-1].setdefault(field, value)
    return devices


def _parse_json(text: str) -> tuple[Optional[list[dict]], tuple[str, ...]]:
    """Devices of `-j` output as the table parser gives them; (None, problems) if unreadable."""
    try:
        data = json.loads(text)
    except ValueError as err:
        return None, (f"{TOOL}: output is not valid JSON ({err}): {first_line(text)}",)
    if not isinstance(data, dict):
        return None, (f"{TOOL}: unexpected JSON: {first_line(text)}",)
    if "error" in data:                 # how xpu-smi's JSON reports a failure
        return None, (f"{TOOL}: {data['error']}",)
    # `discovery -j` wraps devices in "device_list" (a string or null when there are none);
    # `discovery -d N -j` is one device's object.
    entries = data.get("device_list", [data]) if "device_list" in data else [data]
    if not isinstance(entries, list):
        return [], ()
    devices = []
    for entry in entries:
        if isinstance(entry, dict) and "device_id" in entry:
            device = {"index": int(entry["device_id"])}
            for key, value in entry.items():
                field = _FIELDS.get(key)
                if field:
                    device.setdefault(field, str(value))
            devices.append(device)
    return devices, ()


def _devices_of(text: str) -> tuple[Optional[list[dict]], tuple[str, ...]]:
    stripped = (text or "").lstrip()
    return _parse_json(stripped) if stripped.startswith("{") else (parse_xpu_smi_table(text), ())


def normalize_device_id(value: Optional[str]) -> Optional[str]:
    """'0xbd5', '0x0BD5', '0bd5' → '0x0bd5'; None for anything that is not a hex ID."""
    match = re.fullmatch(r"\s*(?:0x)?([0-9A-Fa-f]{1,4})\s*", value or "")
    return "0x%04x" % int(match.group(1), 16) if match else None


def arch_of(device_id: Optional[str], name: str) -> tuple[Optional[str], Optional[str]]:
    """(code target, what named it): from the PCI device ID table, else the product name."""
    normalized = normalize_device_id(device_id)
    if normalized and int(normalized, 16) in ARCH_BY_DEVICE_ID:
        return ARCH_BY_DEVICE_ID[int(normalized, 16)], "pci-device-id"
    for pattern, arch in ARCH_BY_NAME:
        if re.search(pattern, name or "", re.IGNORECASE):
            return arch, "name-table"
    return None, None


def _memory_mib(device: dict) -> Optional[int]:
    if device.get("memory_bytes", "").isdigit():
        return int(device["memory_bytes"]) // 2**20
    match = _MIB.search(device.get("memory", ""))
    return int(float(match.group(1))) if match else None


def _tiles(device: dict) -> Optional[int]:
    value = device.get("tiles", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _gpu(device: dict) -> GPU:
    """A GPU record from one device's fields (summary, detail or both merged)."""
    name = device.get("name") or "Intel GPU"
    device_id = normalize_device_id(device.get("device_id"))
    arch, arch_source = arch_of(device_id, name)
    tiles = _tiles(device)
    return GPU(index=device["index"], name=name, uuid=device.get("uuid"), compute_capability=None,
               memory_mib=_memory_mib(device), mig_mode=None, pci_bus_id=device.get("pci_bus_id"),
               vendor="intel", gpu_arch=arch, arch_source=arch_source, device_id=device_id,
               partition=None if tiles is None else f"{tiles} tile{'s' if tiles > 1 else ''}")


def parse_xpu_smi_discovery(text: str) -> tuple[tuple[GPU, ...], tuple[str, ...]]:
    """GPUs of `xpu-smi discovery` (table or `-j`): (GPUs in xpu-smi order, problems)."""
    devices, problems = _devices_of(text)
    if devices is None:
        return (), problems
    return tuple(_gpu(d) for d in devices), problems


def parse_xpu_smi_device(text: str) -> tuple[dict, tuple[str, ...]]:
    """The fields of `xpu-smi discovery -d N` (table or `-j`) for that one device: (fields,
    problems); fields are empty when the output names no device."""
    devices, problems = _devices_of(text)
    if not devices:
        return {}, problems or (f"{TOOL}: no device in its answer: {first_line(text)}",)
    return devices[0], problems


def parse_xpu_smi_version(text: str) -> Optional[str]:
    """The Level Zero version in `xpu-smi --version` ('Level Zero Version: 1.20.2'), or None."""
    match = _LEVEL_ZERO.search(text or "")
    return match.group(1) if match else None


def merge_device_detail(gpu: GPU, detail: dict) -> GPU:
    """The GPU with what its detail adds (device ID, memory, tiles); the summary's name, UUID and
    bus are kept where both have them, since the summary is what numbered the devices."""
    base = {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid, "pci_bus_id": gpu.pci_bus_id}
    merged = {**detail, **{k: v for k, v in base.items() if v is not None}}
    if gpu.device_id and "device_id" not in merged:
        merged["device_id"] = gpu.device_id
    return _gpu(merged)


# --- xpu-smi -----------------------------------------------------------------------------------

def read_intel() -> tuple[Optional[GpuReading], tuple[str, ...]]:
    """Ask the xpu-smi on PATH. Returns (GpuReading or None, problems); (None, ()) when there is no
    xpu-smi, so nodes without Intel software report nothing about Intel."""
    exe = shutil.which(TOOL)
    if exe is None:
        return None, ()
    rc, out = run_tool([exe, "discovery"])
    if rc != 0:
        return None, (f"{TOOL} discovery: exit {rc}: {first_line(out)}",)
    gpus, problems = parse_xpu_smi_discovery(out)
    if not gpus:
        return None, problems + (f"{TOOL} discovery: lists no GPU: {first_line(out)}",)
    problems_list = list(problems)
    detailed, drivers = [], []
    for gpu in gpus:
        rc, text = run_tool([exe, "discovery", "-d", str(gpu.index)])
        detail, detail_problems = parse_xpu_smi_device(text) if rc == 0 else ({}, ())
        if rc != 0:
            problems_list.append(f"{TOOL} discovery -d {gpu.index}: exit {rc}: {first_line(text)}")
        problems_list.extend(detail_problems)
        if detail.get("driver_version"):
            drivers.append(detail["driver_version"])
        detailed.append(merge_device_detail(gpu, detail) if detail else gpu)
    if len(set(drivers)) > 1:
        problems_list.append(f"{TOOL}: devices report different drivers: "
                             f"{', '.join(sorted(set(drivers)))}")
    rc, version = run_tool([exe, "--version"])
    level_zero = parse_xpu_smi_version(version) if rc == 0 else None
    if level_zero is None:
        problems_list.append(f"{TOOL} --version: no Level Zero version (exit {rc}): "
                             f"{first_line(version)}")
    return GpuReading(TOOL, tuple(detailed), drivers[0] if drivers else None, None,
                      tuple(problems_list), vendor="intel", runtime_version=level_zero), ()


# --- ZE_AFFINITY_MASK --------------------------------------------------------------------------

def _hierarchy(value: Optional[str]) -> tuple[str, tuple[str, ...]]:
    if value is None or not value.strip():
        return DEFAULT_HIERARCHY, ()
    if value.strip().upper() in HIERARCHIES:
        return value.strip().upper(), ()
    return DEFAULT_HIERARCHY, (f"ZE_FLAT_DEVICE_HIERARCHY={value!r} is none of "
                               f"{', '.join(HIERARCHIES)}: read as the driver default "
                               f"{DEFAULT_HIERARCHY}",)


def _tile_units(gpus: Sequence[GPU]) -> list[tuple[int, int]]:
    """(xpu-smi device id, tile) for every tile, in device order: what FLAT numbers 0, 1, 2…
    (a GPU whose tile count is unknown counts as one tile)."""
    return [(g.index, t) for g in gpus for t in range(_tile_count(g))]


def _tile_count(gpu: GPU) -> int:
    match = re.match(r"(\d+) tiles?$", gpu.partition or "")
    return int(match.group(1)) if match else 1


def _with_tiles(gpu: GPU, tiles: set) -> GPU:
    """The GPU limited to `tiles` (all of them: unchanged); each tile has its own memory, so a part
    of the card has that part of its memory (Intel's FLAT mode guide, 'Memory in FLAT Mode')."""
    count = _tile_count(gpu)
    if len(tiles) >= count:
        return gpu
    names = ", ".join(str(t) for t in sorted(tiles))
    memory = None if gpu.memory_mib is None else gpu.memory_mib * len(tiles) // count
    return replace(gpu, memory_mib=memory,
                   partition=f"tile{'s' if len(tiles) > 1 else ''} {names} of {count}")


def _mask_entry(entry: str, gpus: Sequence[GPU], hierarchy: str) -> Optional[tuple[int, set]]:
    """(xpu-smi device id, its tiles) one mask entry names, or None. Level Zero's ordinal k is
    the k-th device it lists; xpu-smi lists in the same (PCI) order."""
    flat = re.fullmatch(r"\d+", entry)
    sub = re.fullmatch(r"(\d+)\.(\d+)", entry)
    if hierarchy != "COMPOSITE":        # FLAT and COMBINED: every tile is a device
        units = _tile_units(gpus)
        if flat and int(entry) < len(units):
            device, tile = units[int(entry)]
            return device, {tile}
        return None
    if flat and int(entry) < len(gpus):
        gpu = gpus[int(entry)]
        return gpu.index, set(range(_tile_count(gpu)))
    card, tile = (int(sub.group(1)), int(sub.group(2))) if sub else (len(gpus), 0)
    if card < len(gpus) and tile < _tile_count(gpus[card]):
        return gpus[card].index, {tile}
    return None


def _mask_entries(value: str, gpus: Sequence[GPU], hierarchy: str) -> tuple[dict, list]:
    """{xpu-smi device id: tiles} the mask names, and a problem line per entry naming nothing."""
    chosen: dict = {}
    problems: list = []
    what = "device or tile" if hierarchy == "COMPOSITE" else "tile"
    for entry in (e.strip() for e in value.split(",")):
        named = _mask_entry(entry, gpus, hierarchy)
        if named is None:
            problems.append(f"ZE_AFFINITY_MASK entry {entry!r} names no {what} here under "
                            f"ZE_FLAT_DEVICE_HIERARCHY={hierarchy}: Level Zero shows nothing for it")
            continue
        chosen.setdefault(named[0], set()).update(named[1])
    return chosen, problems


def apply_ze_affinity_mask(gpus: Sequence[GPU], value: Optional[str], *,
                           hierarchy: Optional[str] = None) -> tuple[tuple[GPU, ...], tuple[str, ...]]:
    """The GPUs Level Zero shows under ZE_AFFINITY_MASK=`value`: (GPUs, problems).

    As the Level Zero spec says ('Affinity Mask' in
    https://oneapi-src.github.io/level-zero-spec/level-zero/latest/core/PROG.html, source
    scripts/core/PROG.rst of https://github.com/oneapi-src/level-zero-spec): unset means all devices
    and tiles; otherwise a comma-separated list of ordinals read under ZE_FLAT_DEVICE_HIERARCHY
    (`hierarchy`, default FLAT): under COMPOSITE "N" is device N and "N.M" tile M of it; under FLAT
    and COMBINED every tile is a device, numbered across the cards, and "N.M" is not valid. The
    result keeps xpu-smi's order and device ids ("not affected by the order of devices in the
    affinity mask"); a GPU cut to some of its tiles names them in `partition`. The spec does not
    say what an entry naming nothing does; the driver shows nothing for it, so it is dropped with
    a problem line.
    """
    mode, problems = _hierarchy(hierarchy)
    if value is None or not value.strip():
        return tuple(gpus), problems
    chosen, entry_problems = _mask_entries(value, gpus, mode)
    kept = tuple(_with_tiles(g, chosen[g.index]) for g in gpus if g.index in chosen)
    if not kept:
        entry_problems.append("ZE_AFFINITY_MASK names no Intel GPU here: Level Zero shows none")
    return kept, problems + tuple(entry_problems)
