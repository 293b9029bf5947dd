"""Fixtures for platform detection and build selection.

No GPU exists here, so two stand-ins are fed with text captured on real machines
(tests/platform/fixtures/README.md says where each capture comes from):
- `fake_smi(machine)`: an executable `nvidia-smi` first (and alone) on PATH that answers each
  argument list with the captured output and exit code of that machine, logs every call, and
  answers anything it has no capture for with exit 97 so an unexpected call shows;
- `nvml_machine(machine)`: pynvml's functions replaced by ones returning that machine's NVML
  values (fixtures/<machine>/nvml.json); `nvml_absent` makes nvmlInit fail the way it really does
  on this host (NVML_ERROR_LIBRARY_NOT_FOUND), so a host with a driver cannot leak into a test.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from wrapper.platform.cpu import CPUInfo
from wrapper.platform.framework import FrameworkInfo
from wrapper.platform.detect import VISIBILITY_VARIABLES, detect_platform, driver_problem, with_usability

from tests.support.fake_amdsmi import install_mi308x
from tests.support.fake_gpu import FIXTURES, fake_smi_environment, machine_tools, write_fake_smi

# Framework builds the selection table runs against (facts, not captures):
# TensorFlow 2.21's GPU wheel (docs/design.md, 'GPU detection and builds'): CUDA 12.5,
# SASS sm_60/70/80/89, PTX compute_90.
TF_GPU = FrameworkInfo(name="tensorflow", version="2.21.0", backend="tensorflow", cuda_build=True,
                       cuda_version="12.5.1", sass=("sm_60", "sm_70", "sm_80", "sm_89"),
                       ptx=("compute_90",))
# The same architectures built with CUDA 12.3: its PTX is JIT-able by a CUDA 12.4 driver.
TF_GPU_CUDA123 = replace(TF_GPU, version="2.16.1", cuda_version="12.3")
# A site's own CUDA 10.1 TensorFlow build for Kepler nodes (the reason a task needs several builds).
TF_KEPLER = FrameworkInfo(name="tensorflow", version="2.3.4", backend="tensorflow", cuda_build=True,
                          cuda_version="10.1", sass=("sm_35", "sm_37", "sm_60", "sm_70"),
                          ptx=("compute_70",))
TF_CPU = FrameworkInfo(name="tensorflow", version="2.21.0", backend="tensorflow", cuda_build=False,
                       cuda_version=None)
# AMD and Intel builds. PyTorch's ROCm wheels carry the gfx targets its wheel builder sets
# (pytorch/pytorch, .ci/docker/manywheel: PYTORCH_ROCM_ARCH="gfx900;gfx906;gfx908;gfx90a;gfx1030;gfx1100",
# plus gfx942 from ROCm 6.0 on), so a ROCm 5.7 wheel has no code for an MI300A. TensorFlow's ROCm
# wheels say they are ROCm builds (`is_rocm_build`) but not which targets; their device list is
# the evidence, as JAX's is for CUDA. An XPU build carries the AOT targets it was built with
# (TORCH_XPU_ARCH_LIST); one built for Arc B-series only ('bmg') has no code for a Max 1550 ('pvc').
_PYTORCH_ROCM5_TARGETS = ("gfx900", "gfx906", "gfx908", "gfx90a", "gfx1030", "gfx1100")
TORCH_ROCM61 = FrameworkInfo(name="torch", version="2.4.1+rocm6.1", backend="torch", cuda_build=False,
                             cuda_version=None, rocm_build=True, rocm_version="6.1.40091",
                             amd_targets=_PYTORCH_ROCM5_TARGETS + ("gfx942",))
TORCH_ROCM57 = FrameworkInfo(name="torch", version="2.2.2+rocm5.7", backend="torch", cuda_build=False,
                             cuda_version=None, rocm_build=True, rocm_version="5.7.31921",
                             amd_targets=_PYTORCH_ROCM5_TARGETS)
TF_ROCM_NO_DEVICES = FrameworkInfo(name="tensorflow", version="2.16.2", backend="tensorflow",
                                   cuda_build=False, cuda_version=None, rocm_build=True,
                                   rocm_version="6.1")
TORCH_XPU = FrameworkInfo(name="torch", version="2.5.1+xpu", backend="torch", cuda_build=False,
                          cuda_version=None, xpu_build=True, xpu_targets=("pvc",))
TORCH_XPU_BMG_ONLY = replace(TORCH_XPU, version="2.8.0+site", xpu_targets=("bmg",))

# CPUs for the selection table: the flags of this host's AMD EPYC and the H200 machine's Xeon
# (fixtures/cpuinfo_epyc_kvm.txt, fixtures/h200_driver580/platform_jax.json), a Haswell-class
# x86 without AVX-512, and Summit's POWER9.
CPU_EPYC = CPUInfo("x86_64", 2, "AMD EPYC", frozenset({"avx2", "avx512f", "avx512_bf16"}))
CPU_XEON_AMX = CPUInfo("x86_64", 16, "Intel(R) Xeon(R) Processor",
                       frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
CPU_X86_PLAIN = CPUInfo("x86_64", 8, "Intel(R) Xeon(R) CPU E5-2680 v3", frozenset({"avx", "avx2", "fma"}))
CPU_POWER9 = CPUInfo("ppc64le", 42, "POWER9", frozenset({"altivec", "vsx"}))


@pytest.fixture
def smi_log(tmp_path) -> Path:
    return tmp_path / "nvidia-smi-calls.log"


@pytest.fixture
def fake_smi(tmp_path, monkeypatch, smi_log):
    """Put the named machine's GPU tools (those its responses.json answers for: nvidia-smi,
    amd-smi, rocm-smi, xpu-smi) first and alone on PATH; returns a reader of their calls."""
    bin_dir = tmp_path / "bin"

    def install(machine: str):
        write_fake_smi(bin_dir, machine_tools(machine))
        if (FIXTURES / machine / "amdsmi_asic_info.json").exists():
            install_mi308x(monkeypatch)   # the one machine captured through the library
        for name, value in fake_smi_environment(machine, smi_log).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PATH", str(bin_dir))
        return calls

    def calls() -> list:
        if not smi_log.exists():
            return []
        return [json.loads(line) for line in smi_log.read_text().splitlines()]

    return install


@pytest.fixture
def no_smi(tmp_path, monkeypatch):
    """A PATH with no nvidia-smi on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Every test starts with every visible-devices variable unset and the TensorFlow backend, and
    no AMD library or ROCm install of this host can answer (`fake_smi` installs a machine's own)."""
    for name in VISIBILITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "amdsmi", None)          # import amdsmi → ImportError
    monkeypatch.setenv("ROCM_PATH", str(tmp_path / "no-rocm"))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")


class _Handle:
    def __init__(self, values: dict):
        self.values = values


def _nvml_error(pynvml, code: int):
    return pynvml.NVMLError(code)


@pytest.fixture
def nvml_absent(monkeypatch):
    """nvmlInit fails as it does on this host without a driver: NVML_ERROR_LIBRARY_NOT_FOUND."""
    import pynvml

    def init():
        raise _nvml_error(pynvml, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", init)


@pytest.fixture
def nvml_failing(monkeypatch):
    """nvmlInit fails with the given NVML error code (e.g. NVML_ERROR_DRIVER_NOT_LOADED)."""
    import pynvml

    def install(code: int):
        def init():
            raise _nvml_error(pynvml, code)
        monkeypatch.setattr(pynvml, "nvmlInit", init)

    return install


@pytest.fixture
def nvml_machine(monkeypatch):
    """Replace the pynvml calls wrapper.platform.gpus makes with the recorded values of one machine."""
    import pynvml

    def install(machine: str) -> dict:
        data = json.loads((FIXTURES / machine / "nvml.json").read_text())
        gpus = [_Handle(g) for g in data["gpus"]]

        def value(handle, key):
            found = handle.values.get(key)
            if found is None:
                raise _nvml_error(pynvml, pynvml.NVML_ERROR_NOT_SUPPORTED)
            return found

        def mig_handle(handle, slot):
            migs = handle.values.get("mig_devices") or []
            if slot >= len(migs):
                raise _nvml_error(pynvml, pynvml.NVML_ERROR_NOT_FOUND)
            return _Handle(migs[slot])

        class Memory:
            def __init__(self, total):
                self.total = total

        class Pci:
            def __init__(self, bus_id):
                self.busId = bus_id

        calls = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: None,
            "nvmlSystemGetDriverVersion": lambda: data["driver_version"],
            "nvmlSystemGetCudaDriverVersion": lambda: data["cuda_driver_version"],
            "nvmlDeviceGetCount": lambda: len(gpus),
            "nvmlDeviceGetHandleByIndex": lambda i: gpus[i],
            "nvmlDeviceGetName": lambda h: value(h, "name"),
            "nvmlDeviceGetUUID": lambda h: value(h, "uuid"),
            "nvmlDeviceGetCudaComputeCapability": lambda h: tuple(value(h, "cuda_compute_capability")),
            "nvmlDeviceGetMemoryInfo": lambda h: Memory(value(h, "memory_total_bytes")),
            "nvmlDeviceGetMigMode": lambda h: list(value(h, "mig_mode")),
            "nvmlDeviceGetPciInfo": lambda h: Pci(value(h, "pci_bus_id")),
            "nvmlDeviceGetMaxMigDeviceCount": lambda h: value(h, "max_mig_devices"),
            "nvmlDeviceGetMigDeviceHandleByIndex": mig_handle,
        }
        for name, call in calls.items():
            monkeypatch.setattr(pynvml, name, call)
        return data

    return install


def platform_of(framework=None, *, cpu=CPU_X86_PLAIN, **env):
    """Detect the current (fake) machine without importing a framework, then give it `framework`
    and `cpu` as the selection table's row says; `env` sets CUDA_VISIBLE_DEVICES and friends."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        detected = detect_platform(probe_framework=False)
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    problems = detected.problems
    note = driver_problem(detected.cuda_driver_version, framework)
    if note:
        problems += (note,)
    return with_usability(replace(detected, framework=framework, cpu=cpu, problems=problems,
                                  keras_backend=framework.backend if framework else "tensorflow"))
