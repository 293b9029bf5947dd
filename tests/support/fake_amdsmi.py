"""A stand-in for AMD's `amdsmi` library (PyPI `amdsmi`, which needs a ROCm driver to load), put in
sys.modules and answering with the values of one real capture (tests/platform/fixtures).
"""
from __future__ import annotations

import json
import sys
import types

from tests.support.fake_gpu import FIXTURES


class NotSupported(Exception):
    """amdsmi's AmdSmiLibraryException as it prints for AMDSMI_STATUS_NOT_SUPPORTED."""

    def __init__(self):
        super().__init__("Error code:\n\t2 | AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported")


def install_amdsmi(monkeypatch, asic: list, vram: list = None, driver: str = None,
              rocm: object = None, init_error: Exception = None) -> types.ModuleType:
    """An `amdsmi` module answering the getters read_amdsmi calls with one capture's values (one
    entry per processor handle); every getter the capture has no value for says NOT_SUPPORTED."""
    module = types.ModuleType("amdsmi")

    def answer(values):
        def get(handle):
            value = values[handle] if values else None
            if value is None:
                raise NotSupported()
            return value
        return get

    def init():
        if init_error:
            raise init_error

    module.amdsmi_init = init
    module.amdsmi_shut_down = lambda: None
    module.amdsmi_get_processor_handles = lambda: list(range(len(asic)))
    module.amdsmi_get_gpu_asic_info = answer(asic)
    module.amdsmi_get_gpu_vram_info = answer([{"vram_size": v} for v in vram] if vram else None)
    module.amdsmi_get_gpu_driver_info = answer([{"driver_name": "amdgpu", "driver_version": driver}] * len(asic)
                                               if driver else None)
    for name in ("uuid", "bdf", "compute_partition", "memory_partition"):
        setattr(module, f"amdsmi_get_gpu_{'device_' if name in ('uuid', 'bdf') else ''}{name}", answer(None))
    module.amdsmi_get_rocm_version = (lambda: rocm) if rocm else answer(None)
    monkeypatch.setitem(sys.modules, "amdsmi", module)
    return module


def install_mi308x(monkeypatch) -> types.ModuleType:
    """The stand-in answering as the MI308X node of fixtures/mi308x_amdsmi (three gfx942 GPUs,
    ROCm 6.4.1; nothing but the ASIC info was printed there)."""
    asic = json.loads((FIXTURES / "mi308x_amdsmi" / "amdsmi_asic_info.json").read_text())
    return install_amdsmi(monkeypatch, asic, rocm=(True, "6.4.1"))
