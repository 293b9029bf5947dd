"""AMD GPU detection (wrapper/platform/amd_gpus.py) against what real AMD nodes printed.

No AMD GPU exists here: the tools are the fake of tests/support/fake_gpu.py answering with the
captures of tests/platform/fixtures (its README, section 'AMD', says where each comes from), and
the amdsmi library is a stand-in module put in sys.modules whose values come from a capture.
"""
from __future__ import annotations

import json
import sys

import pytest

from wrapper.platform import amd_gpus
from wrapper.platform.amd_gpus import (normalize_gfx, parse_amd_smi_static, parse_amd_smi_version,
                                       parse_rocm_smi, read_amd, rocr_uuid)
from wrapper.platform.amd_visible import apply_amd_visible_devices
from wrapper.platform.gpu_record import GPU

from tests.support.fake_amdsmi import install_amdsmi
from tests.support.fake_gpu import FIXTURES

MI210_DRIVER = ("Linuxversion6.14.0-24-generic(buildd@lcy02-amd64-010)(x86_64-linux-gnu-gcc-13(Ubuntu13.3.0-"
                "6ubuntu2~24.04)13.3.0,GNUld(GNUBinutilsforUbuntu)2.42)#24~24.04.3-UbuntuSMPPREEMPT_DYNAMIC"
                "MonJul716:39:17UTC2")


@pytest.fixture(autouse=True)
def no_amd_leaks(tmp_path, monkeypatch):
    """No amdsmi library, no ROCm install and no visibility variable of this host in any test."""
    monkeypatch.setitem(sys.modules, "amdsmi", None)          # import amdsmi → ImportError
    monkeypatch.setenv("ROCM_PATH", str(tmp_path / "no-rocm"))
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)


def _capture(machine: str, name: str) -> str:
    return (FIXTURES / machine / name).read_text()


# --- the tools, through the fake ---------------------------------------------------------------

def test_mi250x_gcd_from_rocm_smi_6_0(fake_smi):
    calls = fake_smi("mi250x_rocm6")
    reading, problems = read_amd()
    assert problems == ()
    assert (reading.source, reading.vendor, len(reading.gpus)) == ("rocm-smi", "amd", 1)
    gpu = reading.gpus[0]
    assert gpu.name == "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2"
    # rocm-smi 6.0 prints 'gfx9010' for gfx90a; the reader gives the LLVM target
    assert (gpu.gpu_arch, gpu.arch_source, gpu.device_id) == ("gfx90a", "rocm-smi", "0x7408")
    assert gpu.partition == "GCD of 2"        # one die of a two-GCD MI250X, which one unknown
    assert (gpu.memory_mib, gpu.uuid, gpu.compute_capability, gpu.mig_mode) == (None, None, None, None)
    assert gpu.label == "AMD GPU 0" and gpu.to_report()["architecture"] == "CDNA 2"
    assert (reading.driver_version, reading.runtime_version, reading.cuda_driver_version) == (None, None, None)
    assert reading.problems == ("rocm-smi --showmeminfo vram --json: no memory sizes (exit 97): "
                                "fake rocm-smi: no capture for ['--showmeminfo', 'vram', '--json']",)
    assert calls() == [["rocm-smi", "--showproductname", "--json"],
                       ["rocm-smi", "--showmeminfo", "vram", "--json"]]


def test_mi210_from_amd_smi_static_rocm7(fake_smi, tmp_path, monkeypatch):
    (tmp_path / "rocm" / ".info").mkdir(parents=True)
    (tmp_path / "rocm" / ".info" / "version").write_text("7.0.2-56\n")   # made here, not a capture
    monkeypatch.setenv("ROCM_PATH", str(tmp_path / "rocm"))
    calls = fake_smi("mi210_rocm7")
    reading, problems = read_amd()
    assert problems == () and reading.source == "amd-smi"
    [gpu] = reading.gpus
    assert (gpu.index, gpu.name, gpu.gpu_arch, gpu.arch_source) == (0, "AMD Instinct MI210", "gfx90a", "amd-smi")
    assert (gpu.device_id, gpu.memory_mib, gpu.partition, gpu.pci_bus_id, gpu.uuid) == \
        ("0x740f", 65520, None, None, None)
    assert reading.driver_version == MI210_DRIVER
    assert reading.runtime_version == "7.0.2-56"            # amd-smi version not captured: the file
    assert reading.problems == ("amd-smi version: no ROCm version (exit 97): "
                                "fake amd-smi: no capture for ['version']",)
    assert calls() == [["amd-smi", "static", "--json"], ["amd-smi", "version"]]


def test_driver_not_loaded_gives_no_reading_and_names_each_tool(fake_smi):
    fake_smi("amd_driver_failure")
    reading, problems = read_amd()
    assert reading is None
    assert problems == (
        "amd-smi static: no JSON GPU list: ERROR:root:Unable to get devices, driver not initialized "
        "(amdgpu not found in modules)",
        "rocm-smi --showproductname --json: no JSON: cat: /sys/module/amdgpu/initstate: "
        "No such file or directory")


def test_no_amd_source_at_all_is_silent(fake_smi):
    fake_smi("h200_driver580")              # an NVIDIA node: nvidia-smi only
    assert read_amd() == (None, ())


def test_no_tool_and_no_library_is_silent(no_smi):
    assert read_amd() == (None, ())


# --- the amdsmi library ------------------------------------------------------------------------

def test_library_with_mi210_capture_values(no_smi, monkeypatch):
    """The stand-in answers with the values of the MI210's amd-smi capture: amd-smi builds its
    asic section from amdsmi_get_gpu_asic_info and its VRAM size from amdsmi_get_gpu_vram_info."""
    static = json.loads(_capture("mi210_rocm7", "amd-smi-static.json"))["gpu_data"][0]
    install_amdsmi(monkeypatch, [static["asic"]], vram=[static["vram"]["size"]["value"]],
              driver=static["driver"]["version"], rocm="7.0.2")
    reading, problems = read_amd()
    assert problems == () and reading.problems == ()
    assert (reading.source, reading.driver_version, reading.runtime_version) == ("amdsmi", MI210_DRIVER, "7.0.2")
    [gpu] = reading.gpus
    assert (gpu.name, gpu.gpu_arch, gpu.arch_source, gpu.device_id, gpu.memory_mib) == \
        ("AMD Instinct MI210", "gfx90a", "amdsmi", "0x740f", 65520)


def test_library_with_mi308x_capture_values(no_smi, monkeypatch):
    """The stand-in answers amdsmi_get_gpu_asic_info with the dicts printed on an MI308X node
    (fixtures/mi308x_amdsmi); nothing else was printed there, so every other getter is
    NOT_SUPPORTED, which the reader takes silently."""
    asic = json.loads(_capture("mi308x_amdsmi", "amdsmi_asic_info.json"))
    install_amdsmi(monkeypatch, asic, rocm=(True, "6.4.1"))
    reading, problems = read_amd()
    assert problems == () and reading.problems == ()
    assert [g.name for g in reading.gpus] == ["AMD Instinct MI308X OAM"] * 3
    assert {(g.gpu_arch, g.device_id, g.memory_mib, g.partition) for g in reading.gpus} == \
        {("gfx942", "0x74a2", None, None)}
    # ROCR_VISIBLE_DEVICES names a GPU by its unique ID, which the library calls asic_serial
    assert [g.uuid for g in reading.gpus] == ["GPU-c027d079faca2939", "GPU-77a05eb626eac067",
                                              "GPU-0af93fcec721eead"]
    assert reading.runtime_version == "6.4.1" and reading.gpus[2].to_report()["architecture"] == "CDNA 3"


def test_library_failing_falls_through_to_the_tools(fake_smi, monkeypatch):
    install_amdsmi(monkeypatch, [], init_error=RuntimeError("AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded"))
    fake_smi("mi250x_rocm6")
    reading, problems = read_amd()
    assert problems == ()
    assert reading.source == "rocm-smi" and reading.gpus[0].gpu_arch == "gfx90a"
    assert reading.problems[0] == "amdsmi: amdsmi_init: AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded"


def test_library_missing_but_cli_present_falls_through_silently(fake_smi):
    fake_smi("mi210_rocm7")                 # sys.modules['amdsmi'] is None: not installed
    reading, _ = read_amd()
    assert reading.source == "amd-smi" and not any("amdsmi:" in p for p in reading.problems)


def test_broken_library_and_driver_failure(fake_smi, monkeypatch):
    install_amdsmi(monkeypatch, [], init_error=RuntimeError("Error code:\n\t51 | AMDSMI_STATUS_DRIVER_NOT_LOADED"))
    fake_smi("amd_driver_failure")
    reading, problems = read_amd()
    assert reading is None and [p.split(":")[0] for p in problems] == ["amdsmi", "amd-smi static", "rocm-smi --showproductname --json"]


# --- parsers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, target", [
    ("gfx90a:sramecc+:xnack-", "gfx90a"), ("amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-", "gfx942"),
    ("gfx9010", "gfx90a"), ("gfx942", "gfx942"), ("gfx1100", "gfx1100"), ("GFX90A", "gfx90a"),
    ("N/A", None), ("", None), (None, None), ("Vega 20", None)])
def test_gfx_targets(value, target):
    assert normalize_gfx(value) == target


def test_rocr_uuid_forms():
    # the same MI210 as amd-smi list and rocm-smi --showuniqueid show it (ROCm/ROCm#5480)
    assert rocr_uuid("67ff740f-0000-1000-80c6-3ac3c3c637f9") == rocr_uuid("0x67c63ac3c3c637f9") \
        == rocr_uuid("GPU-67C63AC3C3C637F9") == "GPU-67c63ac3c3c637f9"
    assert rocr_uuid("N/A") is None


def test_amd_smi_version_and_unreadable_static():
    failure = _capture("amd_driver_failure", "amd-smi.txt")
    assert parse_amd_smi_version(failure) is None           # 'ROCm version: N/A'
    assert parse_amd_smi_version("AMDSMI Tool: 24.7.1+8dc45db | AMDSMI Library version: 25.1.0.0 | "
                                 "ROCm version: 6.3.3") == "6.3.3"
    assert parse_amd_smi_static(failure)[0] == ()
    assert parse_rocm_smi(_capture("amd_driver_failure", "rocm-smi.txt"))[0] == ()


def test_rocm_smi_json_after_a_warning_and_gcd_pairs():
    product = json.loads(_capture("mi250x_rocm6", "rocm-smi-productname.json"))
    two = {"card0": product["card0"], "card1": product["card0"]}   # both dies of the card
    gpus, _, _ = parse_rocm_smi("WARNING: AMD GPU device(s) is/are in a low-power state.\n" + json.dumps(two))
    assert [g.partition for g in gpus] == ["GCD 1 of 2", "GCD 2 of 2"]


def test_rocm_version_file(tmp_path):
    (tmp_path / ".info").mkdir()
    (tmp_path / ".info" / "version").write_text("6.3.1-48\n")
    assert amd_gpus.rocm_version_file({"ROCM_PATH": str(tmp_path)}) == "6.3.1-48"
    assert amd_gpus.rocm_version_file({"ROCM_PATH": str(tmp_path / "absent")}) is None


# --- ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES ------------------------------------------------

def _node() -> tuple:
    """Four GPUs numbered as amd-smi numbers them, with ROCr-form UUIDs."""
    return tuple(GPU(index=i, name="AMD Instinct MI300A", uuid=f"GPU-{i:016x}", compute_capability=None,
                     memory_mib=None, mig_mode=None, vendor="amd", gpu_arch="gfx942") for i in range(4))


@pytest.mark.parametrize("env, shown, problem", [
    ({}, [0, 1, 2, 3], None),
    ({"ROCR_VISIBLE_DEVICES": "2,0"}, [2, 0], None),
    ({"ROCR_VISIBLE_DEVICES": "GPU-0000000000000003,1"}, [3, 1], None),
    ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3], None),      # index into ROCR's
    ({"ROCR_VISIBLE_DEVICES": "1,3", "CUDA_VISIBLE_DEVICES": "0"}, [1], None),
    ({"HIP_VISIBLE_DEVICES": "2", "CUDA_VISIBLE_DEVICES": "0"}, [2], None),        # HIP_ wins
    ({"CUDA_VISIBLE_DEVICES": "3,1"}, [3, 1], None),
    ({"HIP_VISIBLE_DEVICES": "0,7,1"}, [0], "HIP_VISIBLE_DEVICES entry '7' names no AMD GPU here"),
    ({"ROCR_VISIBLE_DEVICES": "1,1"}, [1], "ROCR_VISIBLE_DEVICES entry '1' repeats AMD GPU 1"),
    ({"HIP_VISIBLE_DEVICES": "GPU-0000000000000001"}, [], "HIP_VISIBLE_DEVICES entry 'GPU-0000000000000001' names"),
    ({"ROCR_VISIBLE_DEVICES": ""}, [], "ROCR_VISIBLE_DEVICES is empty"),
    ({"ROCR_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "1"}, [], "HIP_VISIBLE_DEVICES entry '1' names"),
])
def test_visible_devices(env, shown, problem):
    gpus, problems = apply_amd_visible_devices(_node(), env)
    assert [g.index for g in gpus] == shown
    assert (problems == ()) if problem is None else (len(problems) == 1 and problems[0].startswith(problem))


def test_visible_devices_on_a_real_reading(fake_smi):
    fake_smi("mi250x_rocm6")
    reading, _ = read_amd()
    assert apply_amd_visible_devices(reading.gpus, {"HIP_VISIBLE_DEVICES": "0"})[0] == reading.gpus
    assert apply_amd_visible_devices(reading.gpus, {"ROCR_VISIBLE_DEVICES": "1"})[0] == ()
