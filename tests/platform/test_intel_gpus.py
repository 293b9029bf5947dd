"""Intel GPU detection (wrapper/platform/intel_gpus.py) against what real Max 1550 nodes printed.

The fake `xpu-smi` (tests/support/fake_gpu.py) answers as ALCF's Aurora node did: six Data Center
GPU Max 1550 cards of two tiles each (fixtures/max1550_aurora, sources in its sources.json).
"""
from __future__ import annotations

import json

import pytest

from tests.support.fake_gpu import FIXTURES
from wrapper.platform import intel_gpus
from wrapper.platform.intel_gpus import (apply_ze_affinity_mask, arch_of, parse_xpu_smi_device,
                                         parse_xpu_smi_discovery, parse_xpu_smi_version,
                                         read_intel)

AURORA = FIXTURES / "max1550_aurora"
AURORA_UUIDS = ("00000000-0000-0000-926a-83c28645e226", "00000000-0000-0000-41ba-014c9029529c",
                "00000000-0000-0000-ef03-1b4749c20cb0", "00000000-0000-0000-a9e9-a41ad019b491",
                "00000000-0000-0000-1198-22ef5c1e3288", "00000000-0000-0000-cec2-eaa8508708c5")
AURORA_BUSES = ("0000:18:00.0", "0000:42:00.0", "0000:6c:00.0", "0001:18:00.0", "0001:42:00.0",
                "0001:6c:00.0")


@pytest.fixture
def aurora_gpus():
    gpus, problems = parse_xpu_smi_discovery((AURORA / "discovery.txt").read_text())
    assert problems == ()
    return tuple(intel_gpus.merge_device_detail(
        g, parse_xpu_smi_device((AURORA / f"discovery-d-{g.index}.txt").read_text())[0]) for g in gpus)


def test_read_intel_reads_the_aurora_node(fake_smi):
    calls = fake_smi("max1550_aurora")
    reading, problems = read_intel()
    assert problems == ()
    assert reading.problems == ()
    assert (reading.source, reading.vendor) == ("xpu-smi", "intel")
    assert reading.driver_version == "I915_23.10.32_PSB_231129.32"
    assert reading.runtime_version == "1.20.2"            # Level Zero, from xpu-smi --version
    assert reading.cuda_driver_version is None
    assert len(reading.gpus) == 6
    for index, gpu in enumerate(reading.gpus):
        assert gpu.index == index and gpu.key == ("intel", index)
        assert gpu.name == "Intel(R) Data Center GPU Max 1550"
        assert (gpu.gpu_arch, gpu.arch_source, gpu.device_id) == ("pvc", "pci-device-id", "0x0bd5")
        assert gpu.memory_mib == 131072
        assert gpu.partition == "2 tiles"
        assert gpu.uuid == AURORA_UUIDS[index] and gpu.pci_bus_id == AURORA_BUSES[index]
        assert gpu.compute_capability is None and gpu.mig_mode is None
        assert gpu.label == f"Intel GPU {index}" and gpu.arch_text == "pvc"
    assert calls() == ([["xpu-smi", "discovery"]]
                       + [["xpu-smi", "discovery", "-d", str(i)] for i in range(6)]
                       + [["xpu-smi", "--version"]])


def test_the_report_of_an_aurora_gpu_names_its_target_and_tiles(fake_smi):
    fake_smi("max1550_aurora")
    report = read_intel()[0].gpus[0].to_report()
    assert report["vendor"] == "intel" and report["gpu_arch"] == "pvc"
    assert report["architecture"] == "Xe-HPC"
    assert report["partition"] == "2 tiles" and report["device_id"] == "0x0bd5"


def test_a_driver_that_does_not_initialize_gives_no_reading_and_says_why(fake_smi):
    calls = fake_smi("intel_driver_failure")
    reading, problems = read_intel()
    assert reading is None
    assert problems == ("xpu-smi discovery: exit 39: Error: Level Zero Initialization Error",)
    assert calls() == [["xpu-smi", "discovery"]]


def test_no_xpu_smi_means_no_intel_reading_and_no_noise(fake_smi):
    fake_smi("h200_driver580")                            # an NVIDIA node: nvidia-smi only
    assert read_intel() == (None, ())


def test_xpu_smi_that_lists_nothing_is_a_problem(monkeypatch, fake_smi):
    fake_smi("max1550_aurora")
    monkeypatch.setattr(intel_gpus, "run_tool", lambda argv: (0, "No device discovered\n"))
    reading, problems = read_intel()
    assert reading is None
    assert problems == ("xpu-smi discovery: lists no GPU: No device discovered",)


def test_the_summary_alone_still_names_the_target_from_the_product_name():
    gpus, problems = parse_xpu_smi_discovery((AURORA / "discovery.txt").read_text())
    assert problems == () and len(gpus) == 6
    assert {(g.gpu_arch, g.arch_source, g.device_id, g.memory_mib, g.partition) for g in gpus} == {
        ("pvc", "name-table", None, None, None)}


def test_the_json_form_reads_like_the_table():
    # The keys of `xpu-smi discovery -j` as intel/xpumanager's doc/smi_user_guide.md shows them,
    # with device 0's values from the Aurora table (not a capture: a parser check).
    summary = {"device_list": [{"device_id": 0, "device_name": "Intel(R) Data Center GPU Max 1550",
                                "device_type": "GPU", "pci_bdf_address": AURORA_BUSES[0],
                                "pci_device_id": "0xbd5", "uuid": AURORA_UUIDS[0],
                                "vendor_name": "Intel(R) Corporation"}]}
    gpus, problems = parse_xpu_smi_discovery(json.dumps(summary))
    assert problems == ()
    assert [(g.index, g.uuid, g.device_id, g.gpu_arch, g.arch_source) for g in gpus] == [
        (0, AURORA_UUIDS[0], "0x0bd5", "pvc", "pci-device-id")]
    detail, _ = parse_xpu_smi_device(json.dumps({"device_id": 0, "number_of_tiles": 2,
                                                 "memory_physical_size_byte": 137438953472}))
    gpu = intel_gpus.merge_device_detail(gpus[0], detail)
    assert (gpu.memory_mib, gpu.partition) == (131072, "2 tiles")
    assert parse_xpu_smi_discovery('{"device_list": null}') == ((), ())
    assert parse_xpu_smi_discovery("{not json")[1][0].startswith("xpu-smi: output is not valid JSON")


def test_level_zero_version_and_device_id_table():
    assert parse_xpu_smi_version((AURORA / "version.txt").read_text()) == "1.20.2"
    assert parse_xpu_smi_version("Version: 1.2.39") is None
    assert arch_of("0xbd9", "Intel(R) Data Center GPU Max 1100") == ("pvc", "pci-device-id")
    assert arch_of(None, "Intel(R) Data Center GPU Max 1100") == ("pvc", "name-table")
    assert arch_of("0x56c0", "Intel(R) Data Center GPU Flex 170") == (None, None)


def _view(gpus):
    return [(g.index, g.partition, g.memory_mib) for g in gpus]


# ZE_AFFINITY_MASK on the Aurora node (6 cards x 2 tiles). Under FLAT (Intel's default) ordinal k
# is tile k across the cards; under COMPOSITE "N" is card N and "N.M" its tile M (Level Zero spec,
# 'Affinity Mask').
AFFINITY_CASES = [
    (None, None, [(i, "2 tiles", 131072) for i in range(6)], 0),
    ("", None, [(i, "2 tiles", 131072) for i in range(6)], 0),
    ("0", None, [(0, "tile 0 of 2", 65536)], 0),
    ("0,1", None, [(0, "2 tiles", 131072)], 0),
    ("1,2", "FLAT", [(0, "tile 1 of 2", 65536), (1, "tile 0 of 2", 65536)], 0),
    ("11,0", "flat", [(0, "tile 0 of 2", 65536), (5, "tile 1 of 2", 65536)], 0),
    ("0.1", "FLAT", [], 2),                               # not valid under FLAT; then none left
    ("12", None, [], 2),                                  # no 13th tile
    ("0,1", "COMPOSITE", [(0, "2 tiles", 131072), (1, "2 tiles", 131072)], 0),
    ("0.1", "COMPOSITE", [(0, "tile 1 of 2", 65536)], 0),
    ("3.1,3.0", "COMPOSITE", [(3, "2 tiles", 131072)], 0),
    ("5,0.0", "COMPOSITE", [(0, "tile 0 of 2", 65536), (5, "2 tiles", 131072)], 0),
    ("0.2,4", "COMPOSITE", [(4, "2 tiles", 131072)], 1),  # card 0 has no tile 2: ignored
    ("6,x", "COMPOSITE", [], 3),
    ("2", "COMBINED", [(1, "tile 0 of 2", 65536)], 0),    # COMBINED numbers tiles as FLAT does
]


@pytest.mark.parametrize("mask, hierarchy, expected, n_problems", AFFINITY_CASES,
                         ids=[f"{m!r}-{h}" for m, h, _, _ in AFFINITY_CASES])
def test_ze_affinity_mask(aurora_gpus, mask, hierarchy, expected, n_problems):
    gpus, problems = apply_ze_affinity_mask(aurora_gpus, mask, hierarchy=hierarchy)
    assert _view(gpus) == expected
    assert len(problems) == n_problems, problems
    assert all(p.startswith("ZE_AFFINITY_MASK") for p in problems)


def test_an_unknown_hierarchy_is_a_problem_and_read_as_flat(aurora_gpus):
    gpus, problems = apply_ze_affinity_mask(aurora_gpus, "1", hierarchy="TREE")
    assert _view(gpus) == [(0, "tile 1 of 2", 65536)]
    assert problems == ("ZE_FLAT_DEVICE_HIERARCHY='TREE' is none of FLAT, COMPOSITE, COMBINED: "
                        "read as the driver default FLAT",)


def test_the_mask_keeps_xpu_smi_device_ids_and_uuids(aurora_gpus):
    gpus, _ = apply_ze_affinity_mask(aurora_gpus, "4.1", hierarchy="COMPOSITE")
    assert [(g.index, g.uuid, g.pci_bus_id) for g in gpus] == [(4, AURORA_UUIDS[4], AURORA_BUSES[4])]
