"""GPU microarchitecture names, the one table every reporter to PanDA uses.

PanDA's GPU brokerage compares a task's requested microarchitecture with the `architecture` of the
pilots' GPU records (`worker_node_gpus`) as exact strings, so the names are those pilot 3.11.5.1
reports (pilot/util/workernode.py, `detect_architecture`): Kepler, Pascal, Volta, Turing, Ampere,
"Ada Lovelace", Hopper, "Grace Hopper". The pilot matches product names and calls anything else
"Unknown" (an H200 among them); here the compute capability decides, so every GPU of a known
generation is named, and Maxwell and Blackwell, which the pilot's table lacks, get NVIDIA's names.
GH200 shares cc 9.0 with H100 and is told apart by its product name, as the pilot does.

AMD and Intel GPUs are named by family from their code target (`family`): AMD's LLVM targets
(https://llvm.org/docs/AMDGPUUsage.html, 'Processors') give CDNA for Instinct accelerators and RDNA
for Radeon; Intel's data-centre GPU Max ('pvc', Ponte Vecchio) is Xe-HPC. The pilot knows neither.

Its readers: wrapper.platform.gpu_record names each GPU in the trf's report, where the DUNE pilot plugin
(deploy/pilot-plugin, which runs inside the pilot and cannot import this package) takes the name
for `worker_node_gpus`; scripts/jedi/brokerage.py turns build ranges into the names a task asks for.
"""
from __future__ import annotations

import re
from typing import Optional

UNKNOWN = "Unknown"
GRACE_HOPPER = "Grace Hopper"

# (name, lowest cc, highest cc), in generation order.
MICROARCHITECTURES = (
    ("Kepler", (3, 0), (3, 7)),
    ("Maxwell", (5, 0), (5, 3)),
    ("Pascal", (6, 0), (6, 2)),
    ("Volta", (7, 0), (7, 2)),
    ("Turing", (7, 5), (7, 5)),
    ("Ampere", (8, 0), (8, 7)),
    ("Ada Lovelace", (8, 9), (8, 9)),
    ("Hopper", (9, 0), (9, 0)),
    (GRACE_HOPPER, (9, 0), (9, 0)),
    ("Blackwell", (10, 0), (12, 9)),
)


def name_of(compute_capability: Optional[tuple], product: str = "") -> Optional[str]:
    """The microarchitecture of a GPU from its compute capability (and, for Grace Hopper, its
    product name); None when the compute capability is unknown, "Unknown" when it is outside the
    table."""
    if compute_capability is None:
        return None
    if re.search(r"\bGH200\b", product or ""):
        return GRACE_HOPPER
    for name, first, last in MICROARCHITECTURES:
        if name != GRACE_HOPPER and first <= tuple(compute_capability) <= last:
            return name
    return UNKNOWN


def in_range(min_cc: Optional[tuple], max_cc: Optional[tuple]) -> tuple:
    """The microarchitectures with a compute capability in [min_cc, max_cc] (inclusive), in
    generation order."""
    low, high = min_cc or (0, 0), max_cc or (99, 99)
    return tuple(name for name, first, last in MICROARCHITECTURES if first <= high and last >= low)


# AMD LLVM targets of the Instinct and Radeon generations a DUNE job may meet.
AMD_FAMILIES = (
    ("CDNA", ("gfx908",)),                        # MI100
    ("CDNA 2", ("gfx90a",)),                      # MI210, MI250, MI250X
    ("CDNA 3", ("gfx940", "gfx941", "gfx942")),   # MI300A, MI300X, MI325X
    ("CDNA 4", ("gfx950",)),                      # MI350X, MI355X
    ("GCN 5", ("gfx900", "gfx906")),              # MI25, MI50, MI60, Radeon VII
    ("RDNA 2", ("gfx1030",)),
    ("RDNA 3", ("gfx1100", "gfx1101", "gfx1102")),
)
# Intel's code targets (the names its compilers take for ahead-of-time builds).
INTEL_FAMILIES = (("Xe-HPC", ("pvc",)), ("Xe-HPG", ("dg2", "acm-g10", "acm-g11", "acm-g12")))


def family(vendor: str, compute_capability: Optional[tuple], gpu_arch: Optional[str],
           product: str = "") -> Optional[str]:
    """The microarchitecture name of any vendor's GPU: NVIDIA's from its compute capability
    (`name_of`), AMD's and Intel's from their code target; None when that is unknown, "Unknown"
    when it is outside the tables."""
    if vendor == "nvidia":
        return name_of(compute_capability, product)
    if not gpu_arch:
        return None
    table = AMD_FAMILIES if vendor == "amd" else INTEL_FAMILIES
    base = gpu_arch.split(":")[0].lower()    # 'gfx90a:sramecc+:xnack-' as HIP names it
    return next((name for name, targets in table if base in targets), UNKNOWN)
