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
from dataclasses import replace
from pathlib import Path

import pytest

from wrapper.platform.cpu import CPUInfo
from wrapper.platform.framework import FrameworkInfo
from wrapper.platform.detect import detect_platform, driver_problem, with_usability

from tests.support.fake_gpu import FIXTURES, fake_smi_environment, write_fake_smi

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
    """Put the named machine's nvidia-smi first and alone on PATH; returns a reader of its calls."""
    bin_dir = write_fake_smi(tmp_path / "bin")

    def install(machine: str):
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
def clean_env(monkeypatch):
    """Every test starts with CUDA_VISIBLE_DEVICES unset and the TensorFlow backend."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
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
