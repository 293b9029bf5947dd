"""The build manifest: the versioned JSON list of one model's builds, read and validated.

A manifest lists the builds of one model in order of preference (see docs/design.md, 'File
formats'); `wrapper.builds.selection` chooses one of them for a platform.

Manifest, schema_version 2 (version 1, without `vendor` and `gpu_arch`, is still read: its GPU
builds are NVIDIA's, as every GPU was when it was written):
    {"schema_version": 2, "model": "...", "model_version": "...",
     "builds": [{"name": "gpu-bf16", "weights_uri": "s3://bucket/model.keras" | null,
                 "precision": "float32" | "mixed_float16" | "mixed_bfloat16",
                 "batch_size": 8, "model_config": "paper", "description": "...",
                 (model_config optional: without it, the network saved in the weights file)
                 "requires": {"device": "gpu" | "cpu" | "any",
                              "vendor": ["nvidia" | "amd" | "intel"],  (GPU builds; any when absent)
                              "min_cc": "8.0", "max_cc": "8.9",      (inclusive; NVIDIA only)
                              "gpu_arch": ["gfx90a", "gfx942"],     (AMD/Intel code targets)
                              "cpu_arch": ["x86_64"], "backend": ["tensorflow", "jax"],
                              "min_framework": "2.16", "cpu_features": ["avx512_bf16", "amx_bf16"],
                              "min_gpu_memory_mb": 16000}}]}       (GPU memory in MiB, as nvidia-smi)
`cpu_features` is any-of; every other list is any-of too (the platform's value must be in it).
`weights_uri` is passed on verbatim: any source the staging layer resolves, or null for none.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from wrapper.causes import Cause
from wrapper.errors import InputFileError, SetupError
from wrapper.platform.gpu_record import VENDORS

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DEVICES = ("gpu", "cpu", "any")
BACKENDS = ("tensorflow", "jax", "torch")
BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")
AMD_BF16_TARGETS = ("gfx90a", "gfx942", "gfx950")
MODEL_NAME = "dune-protodune-fcdensenet"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BUILD_KEYS = {"name", "weights_uri", "precision", "batch_size", "model_config", "requires", "description"}
_REQUIRES_KEYS = {"device", "min_cc", "max_cc", "cpu_arch", "backend", "min_framework", "cpu_features",
                  "min_gpu_memory_mb", "vendor", "gpu_arch"}
_V2_KEYS = {"vendor", "gpu_arch"}


@dataclass(frozen=True)
class Requirements:
    min_cc: Optional[tuple] = None
    max_cc: Optional[tuple] = None       # inclusive: (7, 9) means any 7.x
    device: str = "any"                  # gpu | cpu | any
    cpu_arch: Optional[tuple] = None
    backend: Optional[tuple] = None
    min_framework: Optional[str] = None
    cpu_features: Optional[tuple] = None  # any one of them
    min_gpu_memory_mb: Optional[int] = None
    vendor: Optional[tuple] = None        # GPU vendors it runs on; None: any
    gpu_arch: Optional[tuple] = None      # AMD/Intel code targets, any one of them

    def to_json(self) -> dict:
        data: dict = {"device": self.device}
        for key in ("min_cc", "max_cc"):
            if getattr(self, key) is not None:
                data[key] = "%d.%d" % getattr(self, key)
        for key in ("vendor", "gpu_arch", "cpu_arch", "backend", "cpu_features"):
            if getattr(self, key) is not None:
                data[key] = list(getattr(self, key))
        if self.min_framework is not None:
            data["min_framework"] = self.min_framework
        if self.min_gpu_memory_mb is not None:
            data["min_gpu_memory_mb"] = self.min_gpu_memory_mb
        return data


@dataclass(frozen=True)
class Build:
    name: str
    weights_uri: Optional[str]
    precision: str
    batch_size: int
    model_config: Optional[str]          # None: the network saved in the weights file
    requires: Requirements = Requirements()
    description: str = ""

    def to_json(self) -> dict:
        data = {"name": self.name, "weights_uri": self.weights_uri, "precision": self.precision,
                "batch_size": self.batch_size, "model_config": self.model_config,
                "requires": self.requires.to_json()}
        if self.description:
            data["description"] = self.description
        return data


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    model: str
    model_version: str
    builds: tuple

    def build(self, name: str) -> Optional[Build]:
        return next((b for b in self.builds if b.name == name), None)

    def to_json(self) -> dict:
        return {"schema_version": self.schema_version, "model": self.model,
                "model_version": self.model_version, "builds": [b.to_json() for b in self.builds]}


def redact_uri(uri: Optional[str]) -> Optional[str]:
    """A URI fit for logs: no user:password@, no ?query (presigned URLs carry keys there)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file (already staged to a local path).

    Raises InputFileError (exit 9) when the file cannot be read, SetupError (exit 69) when it is
    not a manifest this wrapper understands.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"build manifest {path} does not exist", cause=Cause.NOT_FOUND,
                             source=str(path)) from None
    except PermissionError:
        raise InputFileError(f"build manifest {path} is not readable (permission denied)",
                             cause=Cause.PERMISSION, source=str(path)) from None
    except UnicodeDecodeError:
        raise SetupError(f"build manifest {path} is not UTF-8 text") from None
    except OSError as err:
        raise InputFileError(f"build manifest {path} cannot be read: {err.strerror or err}",
                             cause=Cause.UNREADABLE, source=str(path)) from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise SetupError(f"build manifest {path} is not valid JSON: {err}") from None
    return manifest_from_json(data, origin=str(path))


def manifest_from_json(data: Any, *, origin: str = "build manifest") -> Manifest:
    """Validate a parsed manifest; SetupError naming the first thing wrong."""
    def bad(what: str) -> SetupError:
        return SetupError(f"{origin}: {what}")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise bad(f"schema_version {version!r} is not supported (this wrapper reads "
                  f"{' and '.join(map(str, READABLE_VERSIONS))})")
    unknown = set(data) - {"schema_version", "model", "model_version", "builds", "description"}
    if unknown:
        raise bad(f"unknown top-level keys {sorted(unknown)}")
    model, model_version = data.get("model"), data.get("model_version")
    if not isinstance(model, str) or not model:
        raise bad("'model' must be a non-empty string")
    if not isinstance(model_version, (str, int)) or isinstance(model_version, bool) or model_version == "":
        raise bad("'model_version' must be a non-empty string")
    builds = data.get("builds")
    if not isinstance(builds, list) or not builds:
        raise bad("'builds' must be a non-empty list")
    parsed = tuple(_build(b, i, bad, version) for i, b in enumerate(builds))
    names = [b.name for b in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad(f"build names must be unique: {', '.join(duplicates)} repeated")
    return Manifest(SCHEMA_VERSION, model, str(model_version), parsed)


def _build(data: Any, position: int, bad, version: int) -> Build:
    where = f"builds[{position}]"
    if not isinstance(data, dict):
        raise bad(f"{where} is not an object")
    unknown = set(data) - _BUILD_KEYS
    if unknown:
        raise bad(f"{where}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad(f"{where}: 'name' must match {_NAME.pattern}")
    where = f"build {name!r}"
    if data.get("precision") not in PRECISIONS:
        raise bad(f"{where}: precision {data.get('precision')!r} is not one of {', '.join(PRECISIONS)}")
    batch = data.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise bad(f"{where}: batch_size must be a positive integer, got {batch!r}")
    config = data.get("model_config")
    if config is not None and (not isinstance(config, str) or not config):
        raise bad(f"{where}: 'model_config' must be a non-empty string, or absent for the network "
                  "saved in the weights file")
    uri = data.get("weights_uri")
    if uri is not None and (not isinstance(uri, str) or not uri):
        raise bad(f"{where}: 'weights_uri' must be a non-empty string or null")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise bad(f"{where}: 'description' must be a string")
    return Build(name=name, weights_uri=uri, precision=data["precision"], batch_size=batch,
                 model_config=config, requires=_requires(data.get("requires", {}), where, bad, version),
                 description=description)


def _requires(data: Any, where: str, bad, version: int) -> Requirements:
    if not isinstance(data, dict):
        raise bad(f"{where}: 'requires' is not an object")
    unknown = set(data) - _REQUIRES_KEYS
    if unknown:
        raise bad(f"{where}: unknown requirement keys {sorted(unknown)}")
    if version == 1 and set(data) & _V2_KEYS:
        raise bad(f"{where}: {' and '.join(sorted(set(data) & _V2_KEYS))} need schema_version 2")
    device = data.get("device", "any")
    if device not in DEVICES:
        raise bad(f"{where}: device {device!r} is not one of {', '.join(DEVICES)}")
    min_cc, max_cc = (_cc(data.get(k), f"{where}: {k}", bad) for k in ("min_cc", "max_cc"))
    if min_cc and max_cc and min_cc > max_cc:
        raise bad(f"{where}: min_cc %d.%d is above max_cc %d.%d" % (min_cc + max_cc))
    if device == "cpu" and (min_cc or max_cc):
        raise bad(f"{where}: a CPU build cannot require a compute capability")
    lists = {k: _strings(data.get(k), f"{where}: {k}", bad) for k in ("cpu_arch", "backend", "cpu_features")}
    if lists["backend"] and set(lists["backend"]) - set(BACKENDS):
        raise bad(f"{where}: backend must be among {', '.join(BACKENDS)}")
    min_framework = data.get("min_framework")
    if min_framework is not None and (not isinstance(min_framework, str) or not re.match(r"^\d", min_framework)):
        raise bad(f"{where}: min_framework must be a version string like '2.16'")
    memory = data.get("min_gpu_memory_mb")
    if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool) or memory < 1):
        raise bad(f"{where}: min_gpu_memory_mb must be a positive integer (MiB), got {memory!r}")
    if device == "cpu" and memory is not None:
        raise bad(f"{where}: a CPU build cannot require GPU memory")
    vendor, gpu_arch = _gpu_kind(data, where, bad, version, device, bool(min_cc or max_cc))
    return Requirements(device=device, min_cc=min_cc, max_cc=max_cc, min_framework=min_framework,
                        min_gpu_memory_mb=memory, vendor=vendor, gpu_arch=gpu_arch, **lists)


def _gpu_kind(data: dict, where: str, bad, version: int, device: str, has_cc: bool) -> tuple:
    """(vendor, gpu_arch) of a build's requirements. Version 1 knew NVIDIA only, so its GPU builds
    are NVIDIA's; in version 2 a compute capability implies NVIDIA and a gpu_arch AMD or Intel."""
    if version == 1:
        return (None, None) if device == "cpu" else (("nvidia",), None)
    vendor = _strings(data.get("vendor"), f"{where}: vendor", bad)
    gpu_arch = _strings(data.get("gpu_arch"), f"{where}: gpu_arch", bad)
    if vendor and set(vendor) - set(VENDORS):
        raise bad(f"{where}: vendor must be among {', '.join(VENDORS)}")
    if device == "cpu" and (vendor or gpu_arch):
        raise bad(f"{where}: a CPU build cannot require a GPU vendor or architecture")
    if has_cc and vendor and set(vendor) != {"nvidia"}:
        raise bad(f"{where}: a compute capability is NVIDIA's; with vendor {'/'.join(vendor)} "
                  "name the architectures in gpu_arch")
    if gpu_arch and (not vendor or "nvidia" in vendor):
        raise bad(f"{where}: gpu_arch names AMD or Intel targets: give vendor [\"amd\"] or [\"intel\"] "
                  "(NVIDIA builds use min_cc/max_cc)")
    if gpu_arch and any(not re.fullmatch(r"[a-z][a-z0-9_.-]*", a) for a in gpu_arch):
        raise bad(f"{where}: gpu_arch entries are lower-case targets like 'gfx90a' or 'pvc'")
    return (("nvidia",) if has_cc and not vendor else vendor), gpu_arch


def _cc(value: Any, where: str, bad) -> Optional[tuple]:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\d+\.\d+", value):
        major, minor = value.split(".")
        return int(major), int(minor)
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        return tuple(value)
    raise bad(f"{where} must be 'major.minor' or [major, minor], got {value!r}")


def _strings(value: Any, where: str, bad) -> Optional[tuple]:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise bad(f"{where} must be a non-empty list of strings")
    return tuple(value)


def standard_builds(weights_uri: Optional[str], model_config: Optional[str], batch_size: int) -> tuple:
    """The usual builds of one set of weights, best first.

    gpu-fp32 comes after the tensor-core and matrix-core builds and takes any GPU, so it serves
    cc < 7.0, AMD and Intel GPUs outside the tables and GPUs whose architecture could not be read;
    cpu-bf16 only where the CPU has BF16 units. AMD: bfloat16 on CDNA 2 and later (MI200, MI300,
    MI350), whose matrix cores run it at the float16 rate; float16 on MI100 (gfx908), where
    bfloat16 runs at half that rate. Intel: bfloat16 on the Data Center GPU Max.
    """
    def build(name, precision, requires, description):
        return Build(name=name, weights_uri=weights_uri, precision=precision, batch_size=batch_size,
                     model_config=model_config, requires=requires, description=description)

    return (
        build("gpu-bf16", "mixed_bfloat16", Requirements(device="gpu", min_cc=(8, 0), vendor=("nvidia",)),
              "Ampere and newer: bfloat16 tensor cores"),
        build("gpu-fp16", "mixed_float16",
              Requirements(device="gpu", min_cc=(7, 0), max_cc=(7, 9), vendor=("nvidia",)),
              "Volta/Turing: float16 tensor cores with loss scaling"),
        build("amd-bf16", "mixed_bfloat16",
              Requirements(device="gpu", vendor=("amd",), gpu_arch=AMD_BF16_TARGETS),
              "AMD Instinct MI200/MI300/MI350: bfloat16 matrix cores"),
        build("amd-fp16", "mixed_float16", Requirements(device="gpu", vendor=("amd",), gpu_arch=("gfx908",)),
              "AMD Instinct MI100: float16 matrix cores with loss scaling"),
        build("intel-bf16", "mixed_bfloat16",
              Requirements(device="gpu", vendor=("intel",), gpu_arch=("pvc",)),
              "Intel Data Center GPU Max: bfloat16 XMX engines"),
        build("gpu-fp32", "float32", Requirements(device="gpu"),
              "older GPUs (cc < 7.0), other AMD and Intel GPUs, GPUs of unknown architecture"),
        build("cpu-bf16", "mixed_bfloat16",
              Requirements(device="cpu", cpu_features=BF16_CPU_FEATURES),
              "CPUs with AVX512-BF16 or AMX"),
        build("cpu-fp32", "float32", Requirements(device="cpu"), "any CPU"),
    )


def default_manifest(model_file: Optional[str], model_config: Optional[str], batch_size: int) -> Manifest:
    """The manifest used without --buildManifest: the standard builds, all on the same weights."""
    return Manifest(SCHEMA_VERSION, MODEL_NAME,
                    Path(model_file).name if model_file else "untrained",
                    standard_builds(model_file, model_config, batch_size))
