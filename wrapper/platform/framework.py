"""The deep-learning framework under Keras: version, its GPU stack (CUDA, ROCm, Intel XPU), the GPU
code it carries, its devices.

Importing this module imports no framework; `probe_framework` does, which is why dry runs skip it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable, Optional

from wrapper.platform.gpus import GPU, parse_cc

BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class FrameworkInfo:
    """`sass`: machine code it carries ('sm_80'); `ptx`: code the driver can JIT ('compute_90').
    Both empty means the framework does not say (JAX): its device list is then the only evidence.
    `amd_targets` ('gfx90a') and `xpu_targets` ('pvc') are the same for ROCm and Intel XPU builds;
    empty where the build does not say (TensorFlow's ROCm wheels).
    """

    name: str
    version: str
    backend: str
    cuda_build: bool
    cuda_version: Optional[str]
    sass: tuple = ()
    ptx: tuple = ()
    devices: tuple = ()                  # every device it lists, by its own names
    gpu_devices: tuple = ()              # its GPUs, as GPU records (name, cc, memory where it says)
    keras_version: Optional[str] = None
    rocm_build: bool = False
    rocm_version: Optional[str] = None
    amd_targets: tuple = ()
    xpu_build: bool = False
    xpu_targets: tuple = ()

    @property
    def arch_text(self) -> str:
        archs = self.sass + self.ptx + self.amd_targets + self.xpu_targets
        return ", ".join(archs) if archs else "not reported"

    @property
    def stack_text(self) -> str:
        """'CUDA 12.5.1', 'ROCm 6.2', 'Intel XPU' or 'no GPU stack'."""
        stacks = ([f"CUDA {self.cuda_version or '?'}"] if self.cuda_build else []) + \
            ([f"ROCm {self.rocm_version or '?'}"] if self.rocm_build else []) + \
            (["Intel XPU"] if self.xpu_build else [])
        return " + ".join(stacks) or "no GPU stack"

    def to_report(self) -> dict:
        return {"name": self.name, "version": self.version, "backend": self.backend,
                "keras_version": self.keras_version, "cuda_build": self.cuda_build,
                "cuda_version": self.cuda_version, "sass": list(self.sass), "ptx": list(self.ptx),
                "rocm_build": self.rocm_build, "rocm_version": self.rocm_version,
                "amd_targets": list(self.amd_targets), "xpu_build": self.xpu_build,
                "xpu_targets": list(self.xpu_targets), "devices": list(self.devices)}


def keras_backend() -> str:
    """The backend Keras will load: KERAS_BACKEND, else keras.json in KERAS_HOME (~/.keras)."""
    backend = os.environ.get("KERAS_BACKEND")
    if not backend:
        home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
        try:
            backend = json.loads((home / "keras.json").read_text()).get("backend")
        except (OSError, ValueError, AttributeError):
            backend = None
    return backend or "tensorflow"


def split_archs(archs: Iterable[str]) -> tuple:
    """Split a build's architecture list into (SASS, PTX): 'sm_80' is machine code,
    'compute_90' is PTX; an old TensorFlow's bare '3.5' means sm_35."""
    sass, ptx = [], []
    for arch in archs:
        arch = str(arch).strip()
        bare = parse_cc(arch)
        if bare:
            sass.append("sm_%d%d" % bare)
        elif arch.startswith("sm_"):
            sass.append(arch)
        elif arch.startswith("compute_"):
            ptx.append(arch)
    return tuple(sass), tuple(ptx)


def arch_cc(arch: str) -> tuple:
    """'sm_89' → ((8, 9), ''), 'compute_90a' → ((9, 0), 'a'), 'sm_100' → ((10, 0), '')."""
    match = re.fullmatch(r"(?:sm|compute)_(\d+?)(\d)([a-z]?)", arch)
    if not match:
        raise ValueError(f"not a CUDA architecture: {arch!r}")
    return (int(match.group(1)), int(match.group(2))), match.group(3)


def probe_framework(backend: Optional[str] = None) -> tuple:
    """Import the Keras backend and read its build: (FrameworkInfo or None, problems). Never raises."""
    backend = backend or keras_backend()
    probe = {"tensorflow": _probe_tensorflow, "jax": _probe_jax, "torch": _probe_torch}.get(backend)
    if probe is None:
        return None, (f"framework: unknown Keras backend {backend!r} (expected one of {', '.join(BACKENDS)})",)
    try:
        return probe(), ()
    except ImportError as err:
        return None, (f"framework: Keras backend {backend!r} is not installed ({err})",)
    except Exception as err:  # a broken install must not stop detection; it is reported instead
        return None, (f"framework: probing {backend} failed: {type(err).__name__}: {err}",)


def _keras_version() -> Optional[str]:
    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:
        return None


# Distributions whose presence makes a backend able to use a GPU (besides its own package).
_GPU_PLUGINS = {"jax": ("jax-cuda11-plugin", "jax-cuda12-plugin", "jax-cuda13-plugin",
                        "jax-rocm60-plugin", "jax-rocm7-plugin")}


def cpu_only_framework(backend: Optional[str] = None) -> Optional[FrameworkInfo]:
    """The backend's FrameworkInfo from its package metadata alone, when the installed build cannot
    use a GPU (tensorflow-cpu, a `+cpu` torch, jax without a CUDA plugin); else None.

    Importing the framework costs seconds; on a node without GPUs it could tell nothing more.
    """
    backend = backend or keras_backend()

    def version_of(name: str) -> Optional[str]:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    if backend == "tensorflow":
        version = version_of("tensorflow-cpu")
    elif backend == "torch":
        version = version_of("torch")
        version = version if version and version.endswith("+cpu") else None
    elif backend == "jax":
        version = version_of("jax")
        if any(version_of(plugin) for plugin in _GPU_PLUGINS["jax"]):
            version = None
    else:
        version = None
    if version is None:
        return None
    return FrameworkInfo(name=backend, version=version, backend=backend, cuda_build=False,
                         cuda_version=None, devices=("cpu (from package metadata)",),
                         keras_version=_keras_version())


def _probe_tensorflow() -> FrameworkInfo:
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    cuda_build = bool(info.get("is_cuda_build"))
    rocm_build = bool(info.get("is_rocm_build"))
    sass, ptx = split_archs(info.get("cuda_compute_capabilities") or ())
    gpus = []
    for index, device in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(device)
        cc = details.get("compute_capability") if cuda_build else None
        gpus.append(GPU(index=index, name=details.get("device_name", device.name), uuid=None,
                        compute_capability=tuple(cc) if cc else None, memory_mib=None,
                        mig_mode=None, cc_source="framework" if cc else None,
                        vendor="amd" if rocm_build else "nvidia"))
    # Intel GPUs appear as "XPU" devices once intel-extension-for-tensorflow is installed.
    xpus = tf.config.list_physical_devices("XPU")
    gpus += [GPU(index=i, name=d.name, uuid=None, compute_capability=None, memory_mib=None,
                 mig_mode=None, vendor="intel") for i, d in enumerate(xpus)]
    return FrameworkInfo(name="tensorflow", version=tf.__version__, backend="tensorflow",
                         cuda_build=cuda_build,
                         cuda_version=info.get("cuda_version") if cuda_build else None,
                         sass=sass, ptx=ptx, rocm_build=rocm_build,
                         rocm_version=info.get("rocm_version") if rocm_build else None,
                         xpu_build=bool(xpus),
                         devices=tuple(d.name for d in tf.config.list_physical_devices()),
                         gpu_devices=tuple(gpus), keras_version=_keras_version())


def _probe_torch() -> FrameworkInfo:
    import torch

    cuda_version, hip_version = torch.version.cuda, getattr(torch.version, "hip", None)
    # A ROCm build answers through torch.cuda; its arch list holds gfx targets, not sm_XY.
    archs = torch.cuda.get_arch_list() if (cuda_version or hip_version) else []
    sass, ptx = split_archs(archs if cuda_version else ())
    gpus = [_torch_gpu(torch.cuda.get_device_properties(i), i, "amd" if hip_version else "nvidia")
            for i in range(torch.cuda.device_count() if (cuda_version or hip_version) else 0)]
    xpu = getattr(torch, "xpu", None)
    xpu_build = bool(xpu is not None and getattr(xpu, "_is_compiled", lambda: False)())
    xpu_targets = tuple(xpu.get_arch_list()) if xpu_build and hasattr(xpu, "get_arch_list") else ()
    gpus += [_torch_gpu(xpu.get_device_properties(i), i, "intel")
             for i in range(xpu.device_count() if xpu_build else 0)]
    devices = ("cpu",) + tuple(f"{'xpu' if g.vendor == 'intel' else 'cuda'}:{g.index}" for g in gpus)
    return FrameworkInfo(name="torch", version=torch.__version__, backend="torch",
                         cuda_build=cuda_version is not None, cuda_version=cuda_version,
                         sass=sass, ptx=ptx, rocm_build=hip_version is not None,
                         rocm_version=hip_version,
                         amd_targets=tuple(a for a in archs if a.startswith("gfx")) if hip_version else (),
                         xpu_build=xpu_build, xpu_targets=xpu_targets, devices=devices,
                         gpu_devices=tuple(gpus), keras_version=_keras_version())


def _torch_gpu(props, index: int, vendor: str) -> GPU:
    """A GPU record from torch's device properties (CUDA, ROCm or XPU)."""
    memory = getattr(props, "total_memory", None)
    if vendor == "nvidia":
        uuid = str(getattr(props, "uuid", "") or "") or None
        return GPU(index=index, name=props.name,
                   uuid=("GPU-" + uuid) if uuid and not uuid.startswith(("GPU-", "MIG-")) else uuid,
                   compute_capability=(props.major, props.minor),
                   memory_mib=memory // 2**20, mig_mode=None, cc_source="framework")
    arch = getattr(props, "gcnArchName", None) if vendor == "amd" else None
    return GPU(index=index, name=props.name, uuid=None, compute_capability=None,
               memory_mib=memory // 2**20 if memory else None, mig_mode=None, vendor=vendor,
               gpu_arch=arch.split(":")[0] if arch else None, arch_source="framework" if arch else None)


def _probe_jax() -> FrameworkInfo:
    import importlib.util

    import jax

    def plugin(names) -> bool:
        return bool(importlib.util.find_spec("jax_plugins")) and any(
            importlib.util.find_spec(f"jax_plugins.{name}") is not None for name in names)

    cuda_plugin = plugin(f"xla_cuda{major}" for major in (11, 12, 13))
    rocm_plugin = plugin(("xla_rocm60", "xla_rocm7"))
    devices = jax.devices()
    gpus = tuple(GPU(index=i, name=d.device_kind, uuid=None,
                     compute_capability=None if rocm_plugin else parse_cc(str(getattr(d, "compute_capability", ""))),
                     memory_mib=None, mig_mode=None, cc_source=None if rocm_plugin else "framework",
                     vendor="amd" if rocm_plugin else "nvidia")
                 for i, d in enumerate(x for x in devices if x.platform == "gpu"))
    return FrameworkInfo(name="jax", version=jax.__version__, backend="jax",
                         cuda_build=cuda_plugin or (bool(gpus) and not rocm_plugin),
                         cuda_version=_jax_cuda_version(), rocm_build=rocm_plugin,
                         devices=tuple(str(d) for d in devices), gpu_devices=gpus,
                         keras_version=_keras_version())


def _jax_cuda_version() -> Optional[str]:
    """CUDA runtime of jaxlib's CUDA plugin; JAX has no public call for it, so absence is normal."""
    try:
        from jax._src.lib import cuda_versions
    except ImportError:
        return None
    if cuda_versions is None:
        return None
    try:
        value = cuda_versions.cuda_runtime_get_version()
    except Exception:  # private API of jaxlib: any failure only means "not known"
        return None
    return "%d.%d" % (value // 1000, (value % 1000) // 10)
