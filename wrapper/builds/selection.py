"""Build selection: the pure choice of one build of a manifest for a platform.

`select_build` takes the first build whose requirements the platform meets and says why each
earlier one was skipped; `--build` names one outright, `--device` and `--requireGPU` narrow where
it may run (see docs/design.md, 'GPU detection and builds'). The manifest itself is read and
validated by `wrapper.builds.manifest`; its names are re-exported here for callers of either.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from wrapper.errors import SetupError
from wrapper.builds.manifest import (
    BACKENDS, BF16_CPU_FEATURES, DEVICES, MODEL_NAME, PRECISIONS, SCHEMA_VERSION, Build, Manifest,
    Requirements, default_manifest, load_manifest, manifest_from_json, redact_uri, standard_builds,
)
from wrapper.platform.describe import format_platform
from wrapper.platform.detect import Platform, usable_gpus
from wrapper.platform.gpu_record import VENDOR_NAMES
from wrapper.platform.usability import base_target, unusable_reason

__all__ = [
    "BACKENDS", "BF16_CPU_FEATURES", "DEVICES", "MODEL_NAME", "PRECISIONS", "SCHEMA_VERSION", "Build",
    "Manifest", "Requirements", "Selection", "default_manifest", "load_manifest", "manifest_from_json",
    "redact_uri", "select_build", "standard_builds",
]


@dataclass(frozen=True)
class Selection:
    build: Build
    device: str                          # gpu | cpu
    gpus: tuple                          # the GPUs it runs on (empty on the CPU)
    skipped: tuple                       # ((build name, reason), …) in manifest order
    notes: tuple = ()

    def to_report(self) -> dict:
        """The job report's `build` section; the weights URI without credentials or query."""
        return {"name": self.build.name, "precision": self.build.precision,
                "batch_size": self.build.batch_size, "model_config": self.build.model_config,
                "weights_uri": redact_uri(self.build.weights_uri), "device": self.device,
                "gpus": [g.index for g in self.gpus],
                "skipped": [{"build": name, "reason": why} for name, why in self.skipped],
                "notes": list(self.notes)}


def _version_tuple(text: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def _cc_range_text(req: Requirements) -> str:
    if req.gpu_arch:
        return "/".join(req.gpu_arch)
    if req.min_cc and req.max_cc:
        return "cc %d.%d–%d.%d" % (req.min_cc + req.max_cc)
    if req.min_cc:
        return "cc ≥ %d.%d" % req.min_cc
    return "cc ≤ %d.%d" % req.max_cc


def _in_cc_range(gpu, req: Requirements) -> bool:
    """Whether the GPU's architecture is one the build asks for: NVIDIA's compute capability in
    [min_cc, max_cc], an AMD or Intel target in gpu_arch."""
    if req.gpu_arch:
        return gpu.gpu_arch is not None and base_target(gpu.gpu_arch) in req.gpu_arch
    cc = gpu.compute_capability
    if req.min_cc is None and req.max_cc is None:
        return True
    if cc is None:
        return False
    return (req.min_cc is None or tuple(cc) >= req.min_cc) and (req.max_cc is None or tuple(cc) <= req.max_cc)


def _describe_gpus(platform: Platform) -> str:
    if not platform.gpus:
        why = f" ({platform.problems[0]})" if platform.problems and platform.source == "none" else ""
        return f"no GPU visible{why}"
    reasons = dict(platform.unusable) or {
        g.key: unusable_reason(g, platform.framework, platform.cuda_driver_version)
        for g in platform.gpus}
    parts = []
    for gpu in platform.gpus:
        why = reasons.get(gpu.key)
        parts.append(f"{gpu.label} {gpu.name} ({gpu.arch_text})"
                     + (f" not usable: {why}" if why else ""))
    return "; ".join(parts)


def _models(gpus) -> str:
    """'AMD Instinct MI210' or '6 × Intel(R) Data Center GPU Max 1550': the GPU models, counted."""
    names = [g.name for g in gpus]
    return ", ".join(f"{names.count(n)} × {n}" if names.count(n) > 1 else n for n in dict.fromkeys(names))


def _framework_text(platform: Platform) -> str:
    fw = platform.framework
    if fw is None:
        return "framework not probed"
    if not (fw.cuda_build or fw.rocm_build or fw.xpu_build):
        return f"{fw.name} {fw.version} is not a CUDA build"
    return f"{fw.name} {fw.version} ({fw.stack_text}) carries {fw.arch_text}"


def select_build(platform: Platform, manifest: Manifest, *, build_name: Optional[str] = None,
                 device: str = "auto", require_gpu: bool = False) -> Selection:
    """Choose the build to run: the first in the manifest whose requirements this platform meets.

    `build_name` forces one build: its compute-capability range, CPU features and minimum framework
    then become notes, but it still needs a device it can run on. `device` (auto | gpu | cpu) and
    `require_gpu` restrict where it runs. Raises SetupError naming the GPUs, the framework's
    architectures and every build tried with its reason.
    """
    if device not in ("auto", "gpu", "cpu"):
        raise SetupError(f"device {device!r} is not one of auto, gpu, cpu")
    if device == "cpu" and require_gpu:
        raise SetupError("--device=cpu and --requireGPU contradict each other")
    candidates = manifest.builds
    if build_name is not None:
        forced = manifest.build(build_name)
        if forced is None:
            raise SetupError(f"--build={build_name}: no such build in {manifest.model} "
                             f"{manifest.model_version} (builds: {', '.join(b.name for b in manifest.builds)})")
        candidates = (forced,)
    gpus = usable_gpus(platform)
    gpu_only = require_gpu or device == "gpu"
    skipped = []
    for build in candidates:
        outcome = _try_build(build, platform, gpus, device, gpu_only, forced=build_name is not None)
        if isinstance(outcome, Selection):
            return Selection(outcome.build, outcome.device, outcome.gpus, tuple(skipped), outcome.notes)
        skipped.append((build.name, outcome))
    tried = "; ".join(f"{name}: {why}" for name, why in skipped)
    demand = " (--requireGPU)" if require_gpu else " (--device=gpu)" if device == "gpu" else ""
    raise SetupError(f"no usable build of {manifest.model} {manifest.model_version}{demand}: "
                     f"{_describe_gpus(platform)}; {_framework_text(platform)}; builds tried: {tried}",
                     extra=format_platform(platform))


def _try_build(build: Build, platform: Platform, gpus: tuple, device: str, gpu_only: bool,
               forced: bool):
    """A Selection (with notes) if `build` can run here, else the reason it cannot (one clause).

    CPU architecture, backend and a device to run on are hard requirements; compute-capability
    range, CPU features and minimum framework are preferences that `forced` (--build) overrides.
    """
    req = build.requires
    if req.cpu_arch and platform.cpu.arch not in req.cpu_arch:
        return f"needs CPU architecture {'/'.join(req.cpu_arch)}, this is {platform.cpu.arch}"
    backend = platform.framework.backend if platform.framework else platform.keras_backend
    if req.backend and backend not in req.backend:
        return f"needs Keras backend {'/'.join(req.backend)}, this job uses {backend}"
    preferences = []
    fw = platform.framework
    if req.min_framework and fw and _version_tuple(fw.version) < _version_tuple(req.min_framework):
        preferences.append(f"needs {fw.name} ≥ {req.min_framework}, found {fw.version}")
    places = {"gpu": ["gpu"], "cpu": ["cpu"], "any": ["gpu", "cpu"]}[req.device]
    if device == "cpu":
        places = [p for p in places if p == "cpu"]
    if gpu_only:
        places = [p for p in places if p == "gpu"]
    if not places:
        if req.device == "cpu":
            return "a CPU build, excluded by " + ("--device=gpu" if device == "gpu" else "--requireGPU")
        return "a GPU build, excluded by --device=cpu"
    reasons = []
    for place in places:
        misses = list(preferences)
        notes: list = []
        if place == "gpu":
            hard, fitting, gpu_misses, notes = _gpu_fit(req, platform, gpus)
            if hard:
                reasons.append(hard)
                continue
            misses += gpu_misses
        else:
            fitting = ()
            if req.cpu_features and not set(req.cpu_features) & platform.cpu.features:
                misses.append(f"needs a CPU with {' or '.join(req.cpu_features)}")
        if misses and not forced:
            reasons.append("; ".join(misses))
            continue
        notes += [f"forced by --build although it {m}" for m in misses]
        return Selection(build, place, fitting, (), tuple(notes))
    return "; ".join(dict.fromkeys(reasons))


def _gpu_fit(req: Requirements, platform: Platform, gpus: tuple) -> tuple:
    """Where on the usable `gpus` a build may run: (hard reason or None, the GPUs it fits, its
    misses (preferences --build overrides), notes). Another vendor's GPUs are a hard miss."""
    if not gpus:
        return ("no usable GPU" if platform.gpus else "no GPU"), (), [], []
    ours = tuple(g for g in gpus if not req.vendor or g.vendor in req.vendor)
    if not ours:
        return (f"needs an {'/'.join(VENDOR_NAMES[v] for v in req.vendor)} GPU "
                f"(here: {_models(gpus)})"), (), [], []
    misses, notes = [], []
    fitting = tuple(g for g in ours if _in_cc_range(g, req))
    if not fitting:
        have = ", ".join(f"{g.label} has {g.arch_text}" for g in ours)
        misses.append(f"needs {_cc_range_text(req)} ({have})")
        fitting = ours
    elif len(fitting) < len(ours):
        notes.append("runs on " + ", ".join(g.label for g in fitting)
                     + f" only: the others are outside {_cc_range_text(req)}")
    if req.min_gpu_memory_mb:
        roomy = tuple(g for g in fitting if g.memory_mib is None or g.memory_mib >= req.min_gpu_memory_mb)
        if not roomy:
            misses.append(f"needs {req.min_gpu_memory_mb} MiB of GPU memory ("
                          + ", ".join(f"{g.label} has {g.memory_mib}" for g in fitting) + ")")
        else:
            fitting = roomy
    return None, fitting, misses, notes
