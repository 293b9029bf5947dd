"""The DUNE pilot plugin with AMD and Intel GPUs (ids dune_plugin): what PanDA receives from a job
whose trf report names them, where pilot 3.11.5.1 itself reads nvidia-smi only
(pilot/util/workernode.py, get_workernode_gpu_map) and so reports none.

No pilot job runs here: the plugin is imported from pilot 3.11.5.1 unpacked with it (the real
`pilot` package, in a child process with that tree first on its path), given a job directory
holding a report, and asked for what the pilot's final update sends: `get_metadata` (the
`worker_node_gpus` record, the keys of panda-server's AdderGen.update_worker_node_gpu) and
`get_job_metrics`. The reports' GPU entries are the trf's (wrapper/platform/gpu_record.py,
GPU.to_report and GpuReading.to_report).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.pilot_harness import pilots
from tests.pilot.conftest import PLUGIN_DIR


def amd_gcd(index: int, name: str, arch: str, family: str, memory: int, partition: str) -> dict:
    return {"index": index, "vendor": "amd", "name": name, "uuid": f"GPU-{index:016x}",
            "architecture": family, "memory_mib": memory, "pci_bus_id": f"0000:{0xc1 + index:02x}:00.0",
            "gpu_arch": arch, "arch_source": "amd-smi", "device_id": "0x740c", "partition": partition,
            "usable": True, "unusable_reason": None}


MI250X = [amd_gcd(i, "AMD Instinct MI250X", "gfx90a", "CDNA 2", 65520, f"GCD {i % 2} of 2") for i in range(8)]
MI300A = [dict(amd_gcd(i, "AMD Instinct MI300A", "gfx942:sramecc+:xnack-", "CDNA 3", 98304, "SPX/NPS1"),
               device_id="0x74a0") for i in range(4)]
MAX1550 = [{"index": i, "vendor": "intel", "name": "Intel(R) Data Center GPU Max 1550", "uuid": None,
            "architecture": "Xe-HPC", "memory_mib": 131072, "pci_bus_id": f"0000:{0x18 + i:02x}:00.0",
            "gpu_arch": "pvc", "arch_source": "xpu-smi", "device_id": "0x0bd5", "partition": "2 tiles",
            "usable": True, "unusable_reason": None} for i in range(6)]
H200 = [{"index": 0, "name": "NVIDIA H200", "uuid": "GPU-1", "architecture": "Hopper", "memory_mib": 143771,
         "compute_capability": "9.0", "usable": True, "unusable_reason": None}]   # a report from before vendors


def reading(vendor, source, driver, runtime, gpus, cuda=None) -> dict:
    return {"vendor": vendor, "source": source, "driver_version": driver, "cuda_driver_version": cuda,
            "runtime_version": runtime, "gpus": gpus}


def report(gpus, readings=(), driver=None, cuda=None, distributed=1) -> dict:
    return {"platform": {"source": readings[0]["source"] if readings else "nvidia-smi", "driver_version": driver,
                         "cuda_driver_version": cuda, "gpus": gpus, "gpu_readings": list(readings)},
            "build": {"name": "gpu-bf16", "precision": "mixed_bfloat16", "device": "gpu"},
            "distribution": {"gpus": distributed},
            "resource": {"transform": {"processedEvents": 4}},
            "executor": [{"name": "payload", "wallTime": 2.0}], "files": {"output": []}}


# The plugin in a child process: the report in a job directory, then what the final update sends.
PROBE = r"""
import json, sys, types
from pilot.info import infosys
infosys.queuedata = types.SimpleNamespace(site="LOCAL", name="LOCAL_TEST")
from pilot.user.dune import common, jobmetrics
workdir = sys.argv[1]
metadata = common.get_metadata(workdir)
job = types.SimpleNamespace(workdir=workdir, nevents=4, neventsw=4)
print(json.dumps({"metadata": json.loads(metadata), "jobMetrics": jobmetrics.get_job_metrics(job, {}),
                  "file": json.load(open(workdir + "/jobReport.json"))}))
"""


@pytest.fixture(scope="module")
def pilot_with_plugin(tmp_path_factory) -> Path:
    """pilot 3.11.5.1 unpacked with the plugin as pilot/user/dune."""
    return pilots.unpack(tmp_path_factory.mktemp("pilot3-dune") / "src", plugins={"dune": PLUGIN_DIR})


@pytest.fixture
def final_update(pilot_with_plugin, tmp_path):
    def run(job_report: dict) -> dict:
        workdir = tmp_path / "job"
        workdir.mkdir()
        (workdir / "jobReport.json").write_text(json.dumps(job_report))
        env = {**os.environ, "PYTHONPATH": str(pilot_with_plugin), "PILOT_HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-c", PROBE, str(workdir)], cwd=pilot_with_plugin, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.splitlines()[-1])
        out["metrics"] = dict(word.split("=", 1) for word in out["jobMetrics"].split())
        assert len(out["jobMetrics"]) <= 500
        return out
    return run


RECORD_KEYS = ("vendor", "model", "count", "vram", "architecture", "framework", "framework_version", "driver_version")

# id, report → worker_node_gpus (without site and host), the GPU words of jobMetrics
CASES = [
    ("frontier-mi250x", report(MI250X, [reading("amd", "amd-smi", "6.7.0", "6.2.0", 8)], distributed=8),
     ("AMD", "AMD Instinct MI250X", 8, 65520, "CDNA 2", "ROCm", "6.2.0", "6.7.0"),
     {"nGPU": "8", "GPU_name": "AMD_Instinct_MI250X", "GPU_vendor": "AMD", "GPU_arch": "CDNA_2",
      "GPU_target": "gfx90a", "GPU_count": "8", "GPU_vram": "65520"}),
    ("el-capitan-mi300a", report(MI300A, [reading("amd", "rocm-smi", "6.8.5", "6.3.1", 4)]),
     ("AMD", "AMD Instinct MI300A", 4, 98304, "CDNA 3", "ROCm", "6.3.1", "6.8.5"),
     {"GPU_vendor": "AMD", "GPU_arch": "CDNA_3", "GPU_target": "gfx942:sramecc+:xnack-", "GPU_count": "4"}),
    ("aurora-max1550", report(MAX1550, [reading("intel", "xpu-smi", "1.3.29735", "1.3.29735", 6)]),
     ("Intel", "Intel(R) Data Center GPU Max 1550", 6, 131072, "Xe-HPC", "Level Zero", "1.3.29735", "1.3.29735"),
     {"GPU_name": "Intel(R)_Data_Center_GPU_Max_1550", "GPU_vendor": "Intel", "GPU_arch": "Xe-HPC",
      "GPU_target": "pvc", "GPU_count": "6", "GPU_vram": "131072"}),
    # a report without vendors or readings (the trf before AMD/Intel): NVIDIA, as before
    ("nvidia-report-before-vendors", report(H200, driver="580.159.04", cuda="13.0", distributed=0),
     ("NVIDIA", "NVIDIA H200", 1, 143771, "Hopper", "CUDA", "13.0", "580.159.04"),
     {"nGPU": "0", "GPU_name": "NVIDIA_H200", "GPU_vendor": "NVIDIA", "GPU_arch": "Hopper", "GPU_count": "1"}),
    # an AMD node whose report also carries an NVIDIA reading of no GPU: the AMD reading's versions
    ("amd-reading-chosen-by-vendor", report(MI250X[:2], [reading("nvidia", "nvml", "550.1", None, 0, cuda="12.4"),
                                                         reading("amd", "amd-smi", "6.7.0", "6.2.0", 2)],
                                            driver="550.1", cuda="12.4"),
     ("AMD", "AMD Instinct MI250X", 2, 65520, "CDNA 2", "ROCm", "6.2.0", "6.7.0"), {"GPU_count": "2"}),
]


@pytest.mark.parametrize("job_report, record, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dune_plugin_sends_each_vendors_gpus(final_update, job_report, record, words):
    out = final_update(job_report)
    gpus = out["metadata"]["worker_node_gpus"]
    assert tuple(gpus[k] for k in RECORD_KEYS) == record
    # one record, a JSON object (the Adder reads it with .get), under the node record's site and host
    assert (gpus["site"], gpus["host_name"]) == ("LOCAL", out["metadata"]["worker_node"]["host_name"])
    assert set(gpus) == {"site", "host_name", *RECORD_KEYS}
    assert out["file"]["worker_node_gpus"] == gpus             # Harvester's copy: the file itself
    assert {k: out["metrics"].get(k) for k in words} == words
    if job_report["platform"]["gpus"][0].get("vendor") in (None, "nvidia"):
        assert "GPU_target" not in out["metrics"]


def test_dune_plugin_cuts_versions_to_the_servers_columns(final_update):
    """worker_node_gpus.framework_version and driver_version are VARCHAR(20): a longer value would
    make the Adder's insert fail, so the record holds their first 20 characters."""
    long_driver = "6.10.5.60200-2009582.el9"
    out = final_update(report(MI250X[:1], [reading("amd", "amd-smi", long_driver, "6.2.0", 1)]))
    assert out["metadata"]["worker_node_gpus"]["driver_version"] == long_driver[:20]


def test_dune_plugin_keeps_gpu_words_when_the_metrics_are_cut(final_update):
    """Words are dropped from the end at 500 characters: the GPU words come right after GPU_name."""
    job_report = report(MI250X, [reading("amd", "amd-smi", "6.7.0", "6.2.0", 8)])
    job_report["build"]["name"] = "b" * 400
    out = final_update(job_report)
    assert out["metrics"]["GPU_vram"] == "65520" and "build" not in out["metrics"]
