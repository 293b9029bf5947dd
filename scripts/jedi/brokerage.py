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

AMD and Intel (`vendor` amd, intel): the builds for that vendor (their `vendor`, or none named)
give the families of their code targets (gfx90a → "CDNA 2", `pvc` → "Xe-HPC",
wrapper.platform.gpu_architectures), the names the DUNE pilot plugin reports in `worker_node_gpus`
(pilot 3.11.5.1 reports no AMD or Intel GPU). panda-server's match_gpu_spec
(pandaserver/srvcore/hardware_matching.py) matches `vendor` and `model` as case-insensitive regular
expressions from the start of the record's value, but `microarchitecture` only as exact strings
among the records' `architecture`: one family is all a task can ask for, so a target narrower than
its family (gfx942 of CDNA 3) is a warning, and `model` (a pattern, e.g. "AMD Instinct MI300A")
narrows further.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from wrapper.platform import gpu_architectures
from wrapper.platform.gpu_record import VENDOR_NAMES
@dataclass(frozen=True)
class GpuRequirement:
    """What the task asks of a node's GPU; empty microarchitectures: any."""

    vendor: str = "nvidia"
    microarchitectures: tuple = ()
    vram_mb: Optional[int] = None
    model: Optional[str] = None          # a regular expression the record's model must match
    warnings: tuple = ()                 # what the broker cannot honour of the request


MATCHER = "panda-server's match_gpu_spec (pandaserver/srvcore/hardware_matching.py)"


def _family_table(vendor: str) -> tuple:
    """((family, (targets…)), …) of a vendor; NVIDIA's families have no targets."""
    if vendor == "amd":
        return gpu_architectures.AMD_FAMILIES
    if vendor == "intel":
        return gpu_architectures.INTEL_FAMILIES
    return tuple((name, ()) for name, _, _ in gpu_architectures.MICROARCHITECTURES)


def families(vendor: str, names: Sequence[str], unknown_ok: bool = False) -> Tuple[tuple, dict]:
    """The family names (as the pilot plugin reports them) that `names` ask for, each a family
    ('CDNA 2', 'cdna2', 'Hopper') or a code target ('gfx90a', 'gfx942:sramecc+', 'pvc'), in table
    order; and the code targets asked for, by family. Raises ValueError for a name the vendor's
    table lacks, or, with `unknown_ok` (a build's targets), names it "Unknown" as the trf does."""
    table = _family_table(vendor) + ((gpu_architectures.UNKNOWN, ()),) * unknown_ok
    squeeze = lambda text: re.sub(r"[\s_\-]", "", text).lower()
    found, targets = [], {}
    for name in names:
        base = name.split(":")[0].strip().lower()
        match = next((fam for fam, _ in table if squeeze(fam) == squeeze(name)), None)
        if match is None:
            match = next((fam for fam, tgts in table if base in tgts), None)
            if match is not None:
                targets.setdefault(match, set()).add(base)
        else:
            targets.setdefault(match, set()).update(dict(table)[match])
        if match is None and unknown_ok:
            match = gpu_architectures.UNKNOWN
        if match is None:
            known = ", ".join(f"{fam} ({' '.join(t)})" if t else fam for fam, t in table)
            raise ValueError(f"--gpu-arch {name!r} is no {VENDOR_NAMES.get(vendor, vendor)} "
                             f"microarchitecture or code target known here: {known}")
        found.append(match)
    order = [fam for fam, _ in table]
    return tuple(sorted(set(found), key=order.index)), {k: tuple(sorted(v)) for k, v in targets.items()}


def _narrower_than_family(vendor: str, targets: dict) -> list:
    """A warning for each family asked for through only some of its targets."""
    table = dict(_family_table(vendor))
    notes = []
    for fam, asked in targets.items():
        others = [t for t in table.get(fam, ()) if t not in asked]
        if asked and others:
            notes.append(f"{'/'.join(asked)} can only be asked for as its family {fam!r}, which also "
                         f"holds {', '.join(others)}: {MATCHER} compares microarchitecture with the "
                         "worker_node_gpus architecture as exact strings, and the DUNE pilot plugin "
                         "reports the family; narrow with --gpu-model, the trf still chooses on the node")
    return notes


def microarchitectures(min_cc: Optional[tuple], max_cc: Optional[tuple]) -> tuple:
    """The microarchitectures (the names pilot 3.11 reports, wrapper.platform.gpu_architectures) with a
    compute capability in [min_cc, max_cc] (inclusive)."""
    return gpu_architectures.in_range(min_cc, max_cc)


def gpu_requirement(builds: Sequence, extra_vram_mb: Optional[int] = None, vendor: str = "nvidia",
                    archs: Sequence[str] = (), model: Optional[str] = None) -> GpuRequirement:
    """The requirement under which at least one of `builds` (wrapper.builds.selection.Build) can
    run on a GPU of `vendor`, narrowed to `archs` (--gpu-arch: families or code targets) and a
    `model` pattern when given.

    Raises ValueError when none of them runs on such a GPU."""
    if vendor != "nvidia":
        return _other_vendor(builds, extra_vram_mb, vendor, archs, model)
    gpu_builds = [b for b in builds if b.requires.device in ("gpu", "any")
                  and vendor in (b.requires.vendor or (vendor,))]
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
    if archs:
        asked, _ = families(vendor, archs)
        names = [n for n in asked if n in names] if names else list(asked)
        if not names:
            raise ValueError(f"--gpu-arch {', '.join(archs)}: none of the builds runs there")
    return GpuRequirement(microarchitectures=tuple(names), vram_mb=_vram(gpu_builds, extra_vram_mb),
                          model=model)


def _vram(gpu_builds: Sequence, extra_vram_mb: Optional[int]) -> Optional[int]:
    needs = [b.requires.min_gpu_memory_mb for b in gpu_builds]
    vram = None if None in needs else min(needs)
    if extra_vram_mb:
        vram = max(vram or 0, extra_vram_mb)
    return vram


def _other_vendor(builds: Sequence, extra_vram_mb: Optional[int], vendor: str, archs: Sequence[str],
                  model: Optional[str]) -> GpuRequirement:
    """AMD or Intel: the families of the targets the vendor's builds name (a build naming none runs
    on any of the vendor's GPUs), narrowed to --gpu-arch."""
    label = VENDOR_NAMES.get(vendor, vendor)
    gpu_builds = [b for b in builds if b.requires.device in ("gpu", "any")
                  and vendor in (b.requires.vendor or (vendor,))
                  and b.requires.min_cc is None and b.requires.max_cc is None]
    if not gpu_builds:
        raise ValueError(f"none of the builds runs on an {label} GPU (a compute capability is "
                         f"NVIDIA's): ship one for {vendor} (requires.vendor, gpu_arch) or ask for "
                         "another --gpu")
    # a build for several vendors names all their targets: keep this vendor's
    other = {t for v in VENDOR_NAMES if v not in ("nvidia", vendor) for _, ts in _family_table(v) for t in ts}
    targets: list = []
    for build in gpu_builds:
        if not build.requires.gpu_arch:
            targets = []
            break
        targets += [t for t in build.requires.gpu_arch if t not in targets and t.split(":")[0] not in other]
    names, by_family = families(vendor, targets, unknown_ok=True) if targets else ((), {})
    if archs:
        asked, asked_targets = families(vendor, archs)
        if names:
            keep = [n for n in asked if n in names]
            by_family = {fam: tuple(t for t in asked_targets.get(fam, ()) if t in by_family.get(fam, ()))
                         or by_family[fam] for fam in keep}
        else:
            keep, by_family = list(asked), asked_targets
        if not keep:
            raise ValueError(f"--gpu-arch {', '.join(archs)}: none of the builds targets it "
                             f"(they target {', '.join(targets)})")
        names = tuple(keep)
    return GpuRequirement(vendor=vendor, microarchitectures=tuple(names),
                          vram_mb=_vram(gpu_builds, extra_vram_mb), model=model,
                          warnings=tuple(_narrower_than_family(vendor, by_family)))


def architecture(cpu_arch: str, gpu: Optional[GpuRequirement], base_platform: Optional[str] = None) -> str:
    """The task's `architecture`: the shorthand when it can say it all, else the JSON form."""
    if gpu is not None and (len(gpu.microarchitectures) > 1 or gpu.model):
        # a model pattern may hold the shorthand's separators (':' and '-'): the JSON form
        spec: dict = {"vendor": gpu.vendor}
        if gpu.model:
            spec["model"] = gpu.model
        if gpu.microarchitectures:
            spec["microarchitecture"] = list(gpu.microarchitectures)
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
