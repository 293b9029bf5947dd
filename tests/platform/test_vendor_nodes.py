"""The trf on captured AMD and Intel nodes, through the real CLI: `--showPlatform` names each GPU,
its architecture, memory and the build a job gets with the reasons; `--requireGPU` on a node whose
framework cannot use the GPU exits 69 naming both.

The node's tools are the fakes of tests/support/fake_gpu.py answering with real captures
(fixtures/README.md, sections 'AMD' and 'Intel'); the framework is the one installed here
(TensorFlow's CPU build), probed for real, which can use neither vendor's GPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_gpu import fake_smi_environment, machine_tools, write_fake_smi

ROOT = Path(__file__).resolve().parents[2]


def run_trf(machine: str, args: list, tmp_path: Path) -> tuple:
    """`python -m wrapper ARGS` in a fresh job directory of a node whose only GPU tools are
    `machine`'s; returns (exit code, stdout, jobReport.json)."""
    bin_dir = write_fake_smi(tmp_path / "bin", machine_tools(machine))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BEARER_TOKEN"))
           and k not in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                         "ZE_AFFINITY_MASK", "ZE_FLAT_DEVICE_HIERARCHY")}
    env.update(fake_smi_environment(machine, tmp_path / "calls.log"), PATH=str(bin_dir),
               PYTHONPATH=str(ROOT), ROCM_PATH=str(tmp_path / "no-rocm"), TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND="tensorflow")
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    done = subprocess.run([sys.executable, "-m", "wrapper", *args], cwd=jobdir, env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr, json.loads((jobdir / "jobReport.json").read_text())


NODES = [
    # machine, the GPU line's words, the report's (vendor, name, gpu_arch, architecture, memory)
    ("mi210_rocm7", "AMD GPU 0: AMD Instinct MI210, gfx90a (CDNA 2), 65520 MiB",
     ("amd", "AMD Instinct MI210", "gfx90a", "CDNA 2", 65520), "amd-bf16"),
    ("mi250x_rocm6", "AMD GPU 0: AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2, gfx90a (CDNA 2), memory unknown, GCD of 2",
     ("amd", "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", "gfx90a", "CDNA 2", None), "amd-bf16"),
    ("max1550_aurora", "Intel GPU 5: Intel(R) Data Center GPU Max 1550, pvc (Xe-HPC), 131072 MiB, 2 tiles",
     ("intel", "Intel(R) Data Center GPU Max 1550", "pvc", "Xe-HPC", 131072), "intel-bf16"),
]


@pytest.mark.parametrize("machine, line, record, vendor_build", NODES, ids=[n[0] for n in NODES])
def test_show_platform_names_the_gpu_its_architecture_memory_and_the_build(
        machine, line, record, vendor_build, tmp_path):
    rc, out, report = run_trf(machine, ["--showPlatform"], tmp_path)
    assert rc == 0, out
    assert line in out
    assert "is not a ROCm build" in out or "is not an Intel XPU build" in out
    assert f"skipped {vendor_build}: no usable GPU" in out and "Build: cpu-" in out
    gpus = report["platform"]["gpus"]
    assert {(g["vendor"], g["name"], g["gpu_arch"], g["architecture"], g["memory_mib"]) for g in gpus} == {record}
    assert not any(g["usable"] for g in gpus)
    # an AMD or Intel node is not asked to explain its missing NVIDIA driver
    assert not any("nvidia-smi" in p or "NVML" in p for p in report["platform"]["problems"])
    assert report["platform"]["gpu_readings"][0]["vendor"] == record[0]


@pytest.mark.parametrize("machine, named", [
    ("mi210_rocm7", ("AMD GPU 0 AMD Instinct MI210 (gfx90a) not usable", "is not a ROCm build")),
    ("max1550_aurora", ("Intel GPU 0 Intel(R) Data Center GPU Max 1550 (pvc) not usable",
                        "is not an Intel XPU build")),
])
def test_require_gpu_where_the_framework_cannot_use_the_gpu_exits_69_naming_both(machine, named, tmp_path):
    rc, out, report = run_trf(machine, ["--showPlatform", "--requireGPU"], tmp_path)
    assert rc == 69 and report["exitCode"] == 69, out
    message = report["exitMsg"]
    assert "(--requireGPU)" in message and "tensorflow" in message
    for words in named:
        assert words in message, message
