"""NVIDIA GPU microarchitecture names, the one table every reporter to PanDA uses.

PanDA's GPU brokerage compares a task's requested microarchitecture with the `architecture` of the
pilots' GPU records (`worker_node_gpus`) as exact strings, so the names are those pilot 3.11.5.1
reports (pilot/util/workernode.py, `detect_architecture`): Kepler, Pascal, Volta, Turing, Ampere,
"Ada Lovelace", Hopper, "Grace Hopper". The pilot matches product names and calls anything else
"Unknown" (an H200 among them); here the compute capability decides, so every GPU of a known
generation is named, and Maxwell and Blackwell, which the pilot's table lacks, get NVIDIA's names.
GH200 shares cc 9.0 with H100 and is told apart by its product name, as the pilot does.

Its readers: wrapper.platform.gpus names each GPU in the trf's report, where the DUNE pilot plugin
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
