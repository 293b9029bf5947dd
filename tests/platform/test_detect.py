"""Platform detection against captured nvidia-smi / NVML output of real machines, and this host."""
from __future__ import annotations

import json
import os
import platform as host
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from wrapper.platform.cpu import read_cpu
from wrapper.platform.framework import arch_cc, probe_framework, split_archs
from wrapper.platform.gpus import apply_visible_devices, cc_from_name, parse_smi_cuda_version
from wrapper.platform.describe import format_platform
from wrapper.platform.detect import detect_platform, driver_problem, usable_gpus

from tests.platform.conftest import FIXTURES, TF_GPU, TF_GPU_CUDA123, TF_KEPLER, platform_of

FULL_QUERY = ["--query-gpu=index,name,pci.bus_id,memory.total,driver_version,compute_cap,mig.mode.current",
              "--format=csv,noheader,nounits"]


# --- nvidia-smi captures -----------------------------------------------------------------------

SMI_MACHINES = [
    # machine, [(name, cc, cc_source, memory MiB, MIG mode, bus id)], driver, CUDA, MIG devices of GPU 0
    ("k80_driver410", [("Tesla K80", (3, 7), "name-table", 11441, None, "00000000:00:04.0")],
     "410.104", "10.0", 0),
    ("t4_driver418", [("Tesla T4", (7, 5), "name-table", 15079, None, "00000000:00:04.0")],
     "418.67", "10.1", 0),
    ("v100_driver580", [("Tesla V100-SXM2-16GB", (7, 0), "nvidia-smi", 16384, None, "00000000:03:00.0"),
                        ("Tesla V100-SXM2-16GB", (7, 0), "nvidia-smi", 16384, None, "00000000:06:00.0")],
     "580.126.09", "13.0", 0),
    ("a100_mig", [("NVIDIA A100-SXM4-80GB", (8, 0), "nvidia-smi", 81920, True, "00000000:00:05.0")],
     "535.216.01", "12.2", 7),
    ("h100_driver550", [("NVIDIA H100 80GB HBM3", (9, 0), "nvidia-smi", 81559, False, "00000000:19:00.0"),
                        ("NVIDIA H100 80GB HBM3", (9, 0), "nvidia-smi", 81559, False, "00000000:3B:00.0")],
     "550.90.07", "12.4", 0),
    ("h200_driver580", [("NVIDIA H200", (9, 0), "nvidia-smi", 143771, False, "00000000:00:06.0")],
     "580.159.04", "13.0", 0),
]


@pytest.mark.parametrize("machine, expected, driver, cuda, migs", SMI_MACHINES,
                         ids=[m[0] for m in SMI_MACHINES])
def test_nvidia_smi_capture(machine, expected, driver, cuda, migs, fake_smi, nvml_absent):
    calls = fake_smi(machine)
    platform = detect_platform(probe_framework=False)
    assert platform.source == "nvidia-smi"
    assert [(g.name, g.compute_capability, g.cc_source, g.memory_mib, g.mig_mode, g.pci_bus_id)
            for g in platform.gpus] == expected
    assert (platform.driver_version, platform.cuda_driver_version) == (driver, cuda)
    assert len(platform.gpus[0].mig_devices) == migs
    assert "NVML: NVML Shared Library Not Found" in platform.problems
    assert calls()[0] == FULL_QUERY


def test_old_driver_rejects_compute_cap_then_mig_fields(fake_smi, nvml_absent):
    """Driver 410 knows neither compute_cap nor mig.mode.current: both are dropped in turn, the
    compute capability comes from the name table, and no error is left over."""
    calls = fake_smi("k80_driver410")
    platform = detect_platform(probe_framework=False)
    queries = [c[0] for c in calls() if c and c[0].startswith("--query-gpu=")]
    assert queries == [FULL_QUERY[0],
                       "--query-gpu=index,name,pci.bus_id,memory.total,driver_version,mig.mode.current",
                       "--query-gpu=index,name,pci.bus_id,memory.total,driver_version"]
    assert platform.gpus[0].cc_source == "name-table"
    assert platform.problems == ("NVML: NVML Shared Library Not Found",)


def test_mig_devices_come_from_nvidia_smi_listing(fake_smi, nvml_absent):
    calls = fake_smi("a100_mig")
    gpu = detect_platform(probe_framework=False).gpus[0]
    assert ["-L"] in calls()
    assert gpu.uuid == "GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16"
    assert [m.profile for m in gpu.mig_devices] == ["1g.10gb"] * 7
    assert gpu.mig_devices[6].uuid == "MIG-1aae4990-b962-574e-8375-119d6d9b9687"


def test_no_listing_without_need(fake_smi, nvml_absent):
    """`nvidia-smi -L` is only run for MIG or UUIDs in CUDA_VISIBLE_DEVICES."""
    calls = fake_smi("h100_driver550")
    platform = detect_platform(probe_framework=False)
    assert ["-L"] not in calls()
    assert all(g.uuid is None for g in platform.gpus)


def test_driver_not_loaded(fake_smi, nvml_failing):
    import pynvml

    nvml_failing(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    fake_smi("driver_failure")
    platform = detect_platform(probe_framework=False)
    assert platform.source == "none" and platform.gpus == ()
    assert platform.problems == (
        "NVML: Driver Not Loaded",
        "nvidia-smi: exit 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        "driver. Make sure that the latest NVIDIA driver is installed and running.")


def test_no_nvidia_smi_at_all(no_smi, nvml_absent):
    platform = detect_platform(probe_framework=False)
    assert platform.source == "none"
    assert platform.problems == ("NVML: NVML Shared Library Not Found", "nvidia-smi: not found on PATH")
    assert platform.driver_version is None and platform.cuda_driver_version is None


def test_unexpected_smi_failure_is_reported_not_raised(fake_smi, nvml_absent, monkeypatch):
    """A capture that lacks the plain banner (the fake answers exit 97) leaves CUDA unknown."""
    fake_smi("h100_driver550")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-0")
    platform = detect_platform(probe_framework=False)
    assert any(p.startswith("nvidia-smi -L: exit 97") for p in platform.problems)
    assert platform.gpus == ()


# --- NVML ---------------------------------------------------------------------------------------

def test_nvml_a100_mig(nvml_machine, no_smi):
    nvml_machine("a100_mig")
    platform = detect_platform(probe_framework=False)
    assert platform.source == "nvml"
    gpu, = platform.gpus
    assert (gpu.name, gpu.compute_capability, gpu.cc_source, gpu.memory_mib, gpu.mig_mode) == \
        ("NVIDIA A100-SXM4-80GB", (8, 0), "nvml", 81920, True)
    assert [m.profile for m in gpu.mig_devices] == ["1g.10gb"] * 7
    assert gpu.mig_devices[0].memory_mib is None
    assert (platform.driver_version, platform.cuda_driver_version) == ("535.216.01", "12.2")


def test_nvml_and_nvidia_smi_agree_on_the_h200(nvml_machine, fake_smi, monkeypatch):
    """Both readers, fed what one real H200 said, describe the same GPU; and the wrapper's report
    matches the one detect_platform wrote on that machine."""
    nvml_machine("h200_driver580")
    by_nvml = detect_platform(probe_framework=False)
    fake_smi("h200_driver580")
    import pynvml

    monkeypatch.setattr(pynvml, "nvmlInit", lambda: (_ for _ in ()).throw(
        pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)))
    by_smi = detect_platform(probe_framework=False)
    fields = lambda g: (g.name, g.compute_capability, g.memory_mib, g.mig_mode, g.pci_bus_id)
    assert [fields(g) for g in by_nvml.gpus] == [fields(g) for g in by_smi.gpus]
    assert (by_nvml.driver_version, by_nvml.cuda_driver_version) == \
        (by_smi.driver_version, by_smi.cuda_driver_version) == ("580.159.04", "13.0")
    on_device = json.loads((FIXTURES / "h200_driver580" / "platform_jax.json").read_text())
    here = by_nvml.to_report()
    for key in ("source", "driver_version", "cuda_driver_version", "detected_gpus"):
        assert here[key] == on_device["platform"][key], key
    # the capture predates the microarchitecture name and the vendor in the report
    assert [{k: v for k, v in g.items() if k not in ("architecture", "vendor")} for g in here["gpus"]] == \
        on_device["platform"]["gpus"]
    assert [(g["architecture"], g["vendor"]) for g in here["gpus"]] == [("Hopper", "nvidia")]


def test_h200_query_of_the_brief_matches_the_wrapper_query():
    """The two captured query forms of the H200 carry the same facts."""
    brief = (FIXTURES / "h200_driver580" / "query-brief.csv").read_text().strip().split(", ")
    ours = (FIXTURES / "h200_driver580" / "query.csv").read_text().strip().split(", ")
    assert brief[1] == ours[1] == "NVIDIA H200"
    assert brief[3] == ours[5] == "9.0" and brief[4] == ours[3] == "143771"
    assert (FIXTURES / "h200_driver580" / "invalid_field.txt").read_text().startswith(
        'Field "no_such_field" is not a valid field to query.')


def test_framework_device_list_is_the_last_source(no_smi, nvml_absent, monkeypatch):
    """No NVML, no nvidia-smi, but the framework sees a GPU (a container without driver tools):
    its list is used. Values as torch 2.11.0+cu130 reported them on the H200 machine."""
    from wrapper.platform import framework
    from wrapper.platform.gpus import GPU

    torch_on_h200 = framework.FrameworkInfo(
        name="torch", version="2.11.0+cu130", backend="torch", cuda_build=True, cuda_version="13.0",
        sass=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"), devices=("cpu", "cuda:0"),
        gpu_devices=(GPU(0, "NVIDIA H200", None, (9, 0), 143771, None, cc_source="framework"),))
    monkeypatch.setattr(framework, "probe_framework", lambda backend: (torch_on_h200, ()))
    platform = detect_platform()
    assert platform.source == "framework"
    assert [(g.name, g.compute_capability) for g in usable_gpus(platform)] == [("NVIDIA H200", (9, 0))]
    assert platform.cuda_driver_version is None


# --- CUDA_VISIBLE_DEVICES -----------------------------------------------------------------------

@pytest.mark.parametrize("value, indices, problem", [
    (None, [0, 1], None),
    ("1", [1], None),
    ("1,0", [1, 0], None),
    ("0,7,1", [0], "'7' names no GPU"),
    ("", [], "empty"),
    ("-1", [], "'-1' names no GPU"),
    ("0,0", [0], "twice"),
], ids=["unset", "one", "reordered", "stops-at-invalid", "empty", "minus-one", "duplicate"])
def test_visible_devices_by_index(value, indices, problem, fake_smi, nvml_absent, monkeypatch):
    fake_smi("h100_driver550")
    if value is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    platform = detect_platform(probe_framework=False)
    assert [g.index for g in platform.gpus] == indices
    assert platform.detected_gpus == 2
    assert platform.visible_devices == value
    found = [p for p in platform.problems if "CUDA_VISIBLE_DEVICES" in p]
    assert (problem is None and not found) or (problem and problem in found[0])


def test_visible_devices_by_gpu_uuid_prefix(fake_smi, nvml_absent, monkeypatch):
    calls = fake_smi("h200_driver580")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-47136eb1")
    platform = detect_platform(probe_framework=False)
    assert ["-L"] in calls()
    assert [g.uuid for g in platform.gpus] == ["GPU-47136eb1-1fb2-68e1-d23b-963ae407b727"]


def test_visible_mig_device(nvml_machine, no_smi, monkeypatch):
    nvml_machine("a100_mig")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-3f45d38c-8cee-503e-b806-a1f1bdceedeb")
    gpu, = detect_platform(probe_framework=False).gpus
    assert [m.uuid for m in gpu.mig_devices] == ["MIG-3f45d38c-8cee-503e-b806-a1f1bdceedeb"]


def test_visible_unknown_mig_device_hides_everything(nvml_machine, no_smi, monkeypatch):
    nvml_machine("a100_mig")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-00000000-0000-0000-0000-000000000000")
    platform = detect_platform(probe_framework=False)
    assert platform.gpus == ()
    assert any("names no GPU" in p for p in platform.problems)


def test_mig_mode_without_devices_is_not_usable(nvml_machine, no_smi):
    """MIG on but no instance made: CUDA sees nothing on that GPU."""
    from wrapper.platform.detect import with_usability

    nvml_machine("a100_mig")
    platform = detect_platform(probe_framework=False)
    empty = with_usability(replace(platform, gpus=(replace(platform.gpus[0], mig_devices=()),)))
    assert usable_gpus(empty) == ()
    assert "no MIG device is configured" in dict(empty.unusable)[("nvidia", 0)]


def test_index_order_warning_only_for_mixed_models():
    from wrapper.platform.gpus import GPU
    from wrapper.platform.detect import index_order_problem

    v100 = GPU(0, "Tesla V100-SXM2-16GB", None, (7, 0), 16384, None)
    t4 = GPU(1, "Tesla T4", None, (7, 5), 15079, None)
    assert "CUDA_DEVICE_ORDER is not PCI_BUS_ID" in index_order_problem([v100, t4], "1", None)
    assert index_order_problem([v100, t4], "1", "PCI_BUS_ID") is None
    assert index_order_problem([v100, t4], "GPU-1234", None) is None
    assert index_order_problem([v100, v100], "1", None) is None


def test_visible_devices_old_mig_form():
    """CUDA 11.0's MIG-GPU-<uuid>/<gi>/<ci> names the parent GPU."""
    from wrapper.platform.gpus import GPU

    gpu = GPU(0, "NVIDIA A100-SXM4-80GB", "GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16", (8, 0), 81920, True)
    chosen, problems = apply_visible_devices([gpu], "MIG-GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16/1/0")
    assert chosen == (gpu,) and problems == ()


# --- usability: framework code vs GPU vs driver -------------------------------------------------

@pytest.mark.parametrize("machine, framework, usable, reason", [
    ("k80_driver410", TF_GPU, [], "has no code for compute capability 3.7"),
    ("k80_driver410", TF_KEPLER, [0], None),
    ("t4_driver418", TF_GPU, [], "the driver supports CUDA 10.1, tensorflow 2.21.0 needs CUDA 12.x"),
    ("t4_driver418", TF_KEPLER, [0], None),
    ("v100_driver580", TF_GPU, [0, 1], None),
    ("a100_mig", TF_GPU, [0], None),
    ("h100_driver550", TF_GPU, [], "JIT-compiling its compute_90 PTX, which needs a driver for CUDA ≥ 12.5.1"),
    ("h100_driver550", TF_GPU_CUDA123, [0, 1], None),
    ("h200_driver580", TF_GPU, [0], None),
    ("h200_driver580", TF_KEPLER, [0], None),      # its compute_70 PTX JITs to 9.0
    ("h200_driver580", replace(TF_KEPLER, ptx=()), [], "has no code for compute capability 9.0 "
     "(carries sm_35, sm_37, sm_60, sm_70)"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_usable_gpus(machine, framework, usable, reason, fake_smi, nvml_absent):
    fake_smi(machine)
    platform = platform_of(framework)
    assert [g.index for g in usable_gpus(platform)] == usable
    reasons = dict(platform.unusable)
    assert (reason is None and not reasons) or reason in reasons[("nvidia", 0)]


def test_driver_problem_texts():
    assert "driver too old" in driver_problem("10.0", TF_GPU)
    assert "its PTX cannot be JIT-compiled" in driver_problem("12.4", TF_GPU)
    assert driver_problem("13.0", TF_GPU) is None
    assert driver_problem("10.0", None) is None


# --- parsing helpers ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, cc", [
    ("Tesla K20Xm", (3, 5)), ("Tesla K40m", (3, 5)), ("Tesla K80", (3, 7)), ("Tesla P100-PCIE-16GB", (6, 0)),
    ("Tesla V100-SXM2-16GB", (7, 0)), ("Tesla T4", (7, 5)), ("Quadro RTX 4000", (7, 5)),
    ("NVIDIA A100-SXM4-80GB", (8, 0)), ("NVIDIA A10G", (8, 6)), ("NVIDIA L4", (8, 9)),
    ("NVIDIA H100 80GB HBM3", (9, 0)), ("NVIDIA H200", (9, 0)), ("NVIDIA GH200 480GB", (9, 0)),
    ("NVIDIA B200", (10, 0)), ("Matrox G200eW", None),
])
def test_name_table(name, cc):
    assert cc_from_name(name) == cc


def test_arch_lists():
    assert split_archs(["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]) == \
        (("sm_60", "sm_70", "sm_80", "sm_89"), ("compute_90",))
    assert split_archs(["3.5", "7.0"]) == (("sm_35", "sm_70"), ())
    assert arch_cc("sm_89") == ((8, 9), "") and arch_cc("compute_90a") == ((9, 0), "a")
    assert arch_cc("sm_100") == ((10, 0), "") and arch_cc("sm_120") == ((12, 0), "")
    with pytest.raises(ValueError):
        arch_cc("gfx90a")


def test_cuda_version_from_banner_and_q():
    assert parse_smi_cuda_version((FIXTURES / "h200_driver580" / "nvidia-smi-q.txt").read_text()) == "13.0"
    assert parse_smi_cuda_version((FIXTURES / "t4_driver418" / "nvidia-smi.txt").read_text()) == "10.1"
    assert parse_smi_cuda_version("CUDA UMD Version : 13.1") == "13.1"
    assert parse_smi_cuda_version("Failed to initialize NVML") is None


def test_cpuinfo_capture():
    cpu = read_cpu((FIXTURES / "cpuinfo_epyc_kvm.txt").read_text(), machine="x86_64", cores=2)
    assert (cpu.arch, cpu.cores, cpu.model) == ("x86_64", 2, "AMD EPYC")
    assert {"avx512_bf16", "avx512f", "avx2"} <= cpu.features and "amx_bf16" not in cpu.features
    assert cpu.to_report()["features"] == sorted(cpu.features & set(cpu.to_report()["features"]))


def test_cpuinfo_power9_and_arm():
    power = read_cpu("processor\t: 0\ncpu\t\t: POWER9, altivec supported\nclock\t\t: 3800.000000MHz\n",
                     machine="ppc64le", cores=4)
    assert (power.model, "altivec" in power.features) == ("POWER9", True)
    grace = read_cpu("processor\t: 0\nFeatures\t: fp asimd sve sve2 bf16 i8mm\nCPU implementer\t: 0x41\n"
                     "CPU part\t: 0xd4f\n", machine="aarch64", cores=72)
    assert grace.model == "Neoverse-V2" and {"sve2", "bf16"} <= grace.features


# --- this host, for real ------------------------------------------------------------------------

def _host_nvidia_gpus() -> list[str] | None:
    """This node's NVIDIA GPU names as its own nvidia-smi lists them, without the wrapper's code;
    None when the node has no NVIDIA driver (no device node, no /proc/driver/nvidia, no tool)."""
    import shutil

    if not (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()
            or shutil.which("nvidia-smi")):
        return None
    listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                            capture_output=True, text=True, timeout=60)
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()] \
        if listed.returncode == 0 else []


def test_this_host_is_detected_as_it_really_is():
    # Compared with what this node has, read without the wrapper: the CPU hosts of CI have no GPU,
    # a lent GPU node has its own.
    platform = detect_platform()
    import tensorflow as tf

    assert platform.framework.name == "tensorflow" and platform.framework.version == tf.__version__
    assert platform.framework.cuda_build is tf.test.is_built_with_cuda()
    assert platform.cpu.arch == host.machine()
    assert platform.cpu.cores == len(os.sched_getaffinity(0))
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith(("flags", "Features"))), None)
    if flags is not None:
        assert platform.cpu.features == frozenset(flags.split(":", 1)[1].split())
    text = format_platform(platform)
    assert platform.cpu.model in text
    names = _host_nvidia_gpus()
    if names is None:
        assert platform.source == "none" and platform.gpus == ()
        assert "NVML: NVML Shared Library Not Found" in platform.problems
        assert any(p.startswith("nvidia-smi") for p in platform.problems)
        assert "GPUs from: none" in text
    else:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            assert [g.name for g in platform.gpus] == names
        assert platform.source in ("nvml", "nvidia-smi")
    if not platform.framework.cuda_build:
        assert "not a CUDA build" in text


def test_jax_backend_probe_on_this_host(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    info, problems = probe_framework()
    import jax

    assert problems == () and (info.name, info.version) == ("jax", jax.__version__)
    import importlib.metadata as metadata

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    plugins = [d.metadata["Name"] for d in metadata.distributions()
               if d.metadata["Name"] and d.metadata["Name"].startswith("jax-cuda")]
    assert len(info.gpu_devices) == len(gpus)
    assert info.cuda_build is (bool(plugins) or bool(gpus))


def test_unknown_backend_is_a_problem():
    info, problems = probe_framework("mxnet")
    assert info is None and "unknown Keras backend 'mxnet'" in problems[0]


def test_dry_detection_imports_no_framework():
    """detect_platform(probe_framework=False) must leave TensorFlow, Keras, JAX and torch unloaded."""
    code = ("import sys; from wrapper.platform.detect import detect_platform; from wrapper.platform.describe import format_platform; "
            "from wrapper.builds.selection import default_manifest, select_build; "
            "p = detect_platform(probe_framework=False); "
            "select_build(p, default_manifest(None, 'small', 4)); format_platform(p); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"


def test_a_cpu_node_with_a_cpu_only_framework_needs_no_probe_process(no_smi, nvml_absent, monkeypatch):
    """tensorflow-cpu here, no GPU seen: the framework's facts come from its package metadata."""
    from importlib import metadata

    from wrapper.platform import probe as platform_probe
    def no_probe(*args, **kwargs):
        raise AssertionError(f"a probe process was started: {args[0]!r}")

    monkeypatch.setattr(platform_probe.subprocess, "run", no_probe)
    platform = platform_probe.detect_platform_apart()
    assert platform.source == "none" and platform.gpus == ()
    assert platform.framework.version == metadata.version("tensorflow-cpu")
    assert platform.framework.cuda_build is False and platform.framework.keras_version


def test_a_node_with_a_gpu_is_probed_in_another_process(fake_smi, nvml_absent, monkeypatch):
    """A GPU seen by nvidia-smi (the captured H200): only importing the framework says whether it
    can use it, and that happens in a process of its own."""
    from wrapper.platform import probe as platform_probe
    started = []
    real_run = subprocess.run

    def recording_run(command, *args, **kwargs):
        started.append(command)
        return real_run(command, *args, **kwargs)

    fake_smi("h200_driver580")
    monkeypatch.setattr(platform_probe.subprocess, "run", recording_run)
    platform = platform_probe.detect_platform_apart()
    probes = [command for command in started if command[0] == sys.executable]   # not nvidia-smi
    assert len(probes) == 1 and "probe_framework=True" in probes[0][-1]
    assert [g.name for g in platform.gpus] == ["NVIDIA H200"]
    assert platform.framework.name == "tensorflow" and platform.framework.cuda_build is False
    assert platform.unusable and "CUDA" in platform.unusable[0][1]
