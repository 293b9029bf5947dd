"""Build manifests and build selection: a table of (captured platform × framework × manifest) → build."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from wrapper import exitcodes as ec
from wrapper.builds.selection import (Build, Manifest, Requirements, default_manifest, load_manifest,
                            manifest_from_json, select_build, standard_builds)
from wrapper.errors import InputFileError, SetupError
from wrapper.platform.describe import format_platform

from tests.platform.conftest import (CPU_EPYC, CPU_POWER9, CPU_X86_PLAIN, CPU_XEON_AMX, TF_CPU, TF_GPU,
                                     TF_GPU_CUDA123, TF_KEPLER, TF_ROCM_NO_DEVICES, TORCH_ROCM57,
                                     TORCH_ROCM61, TORCH_XPU, TORCH_XPU_BMG_ONLY, platform_of)

STANDARD = default_manifest("s3://dune-models/tiramisu/v3/model.keras", "paper", 8)
# The standard builds as a version-1 manifest said them (before vendors): every GPU build NVIDIA's.
VERSION_1 = manifest_from_json({"schema_version": 1, "model": "m", "model_version": "1", "builds": [
    {"name": "gpu-fp32", "weights_uri": None, "precision": "float32", "batch_size": 8,
     "model_config": "paper", "requires": {"device": "gpu"}},
    {"name": "cpu-fp32", "weights_uri": None, "precision": "float32", "batch_size": 8,
     "model_config": "paper", "requires": {"device": "cpu"}}]})
# A version-2 manifest of a site with builds per AMD generation.
AMD_MANIFEST = manifest_from_json({"schema_version": 2, "model": "m", "model_version": "2", "builds": [
    {"name": "mi300", "weights_uri": None, "precision": "mixed_bfloat16", "batch_size": 32,
     "model_config": "paper", "requires": {"device": "gpu", "vendor": ["amd"], "gpu_arch": ["gfx942"]}},
    {"name": "mi200", "weights_uri": None, "precision": "mixed_bfloat16", "batch_size": 16,
     "model_config": "paper", "requires": {"device": "gpu", "vendor": ["amd"], "gpu_arch": ["gfx90a"]}},
    {"name": "cpu", "weights_uri": None, "precision": "float32", "batch_size": 4,
     "model_config": "paper", "requires": {"device": "cpu"}}]})


def only(*names):
    return replace(STANDARD, builds=tuple(b for b in STANDARD.builds if b.name in names))


def with_build(manifest, **changes):
    """The manifest with one extra build first, with the given requirement changes."""
    extra = Build("special", "model.keras", "float32", 4, "paper", Requirements(**changes))
    return replace(manifest, builds=(extra,) + manifest.builds)


# machine (None: no GPU tool), framework, cpu, manifest, select_build kwargs, env
#   → (build, device, gpu indices, {skipped build: reason fragment}) or SetupError fragments
TABLE = [
    ("kepler-current-tf-falls-to-cpu", "k80_driver410", TF_GPU, CPU_X86_PLAIN, STANDARD, {}, {},
     ("cpu-fp32", "cpu", [], {"gpu-bf16": "no usable GPU", "cpu-bf16": "avx512_bf16 or amx_bf16"})),
    ("kepler-current-tf-requiregpu", "k80_driver410", TF_GPU, CPU_X86_PLAIN, STANDARD,
     {"require_gpu": True}, {},
     ["--requireGPU", "GPU 0 Tesla K80 (cc 3.7)", "sm_60, sm_70, sm_80, sm_89, compute_90",
      "gpu-bf16: no usable GPU", "cpu-fp32: a CPU build, excluded by --requireGPU"]),
    ("kepler-site-tf-runs-fp32", "k80_driver410", TF_KEPLER, CPU_X86_PLAIN, STANDARD, {}, {},
     ("gpu-fp32", "gpu", [0], {"gpu-bf16": "needs cc ≥ 8.0", "gpu-fp16": "needs cc 7.0–7.9"})),
    ("t4-driver-too-old", "t4_driver418", TF_GPU, CPU_EPYC, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"gpu-fp16": "no usable GPU"})),
    ("t4-site-tf-fp16", "t4_driver418", TF_KEPLER, CPU_EPYC, STANDARD, {}, {},
     ("gpu-fp16", "gpu", [0], {"gpu-bf16": "needs cc ≥ 8.0 (GPU 0 has cc 7.5)"})),
    ("v100-fp16-both-gpus", "v100_driver580", TF_GPU, CPU_POWER9, STANDARD, {}, {},
     ("gpu-fp16", "gpu", [0, 1], {"gpu-bf16": "needs cc ≥ 8.0"})),
    ("v100-visible-none", "v100_driver580", TF_GPU, CPU_POWER9, STANDARD, {},
     {"CUDA_VISIBLE_DEVICES": ""}, ("cpu-fp32", "cpu", [], {"gpu-fp16": "no GPU"})),
    ("v100-visible-second", "v100_driver580", TF_GPU, CPU_POWER9, STANDARD, {},
     {"CUDA_VISIBLE_DEVICES": "1"}, ("gpu-fp16", "gpu", [1], {})),
    ("v100-device-cpu", "v100_driver580", TF_GPU, CPU_XEON_AMX, STANDARD, {"device": "cpu"}, {},
     ("cpu-bf16", "cpu", [], {"gpu-bf16": "a GPU build, excluded by --device=cpu"})),
    ("a100-mig-bf16", "a100_mig", TF_GPU, CPU_EPYC, STANDARD, {}, {}, ("gpu-bf16", "gpu", [0], {})),
    ("h100-ptx-needs-newer-driver", "h100_driver550", TF_GPU, CPU_XEON_AMX, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"gpu-bf16": "no usable GPU"})),
    ("h100-ptx-jit", "h100_driver550", TF_GPU_CUDA123, CPU_XEON_AMX, STANDARD, {}, {},
     ("gpu-bf16", "gpu", [0, 1], {})),
    ("h200-bf16", "h200_driver580", TF_GPU, CPU_XEON_AMX, STANDARD, {}, {}, ("gpu-bf16", "gpu", [0], {})),
    ("h200-cpu-only-tf", "h200_driver580", TF_CPU, CPU_XEON_AMX, STANDARD, {"device": "gpu"}, {},
     ["(--device=gpu)", "tensorflow 2.21.0 is not a CUDA build", "cpu-bf16: a CPU build, excluded by --device=gpu"]),
    ("no-smi-cpu", None, TF_CPU, CPU_EPYC, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"gpu-bf16": "no GPU", "gpu-fp32": "no GPU"})),
    ("no-smi-requiregpu", None, TF_CPU, CPU_EPYC, STANDARD, {"require_gpu": True}, {},
     ["no GPU visible (NVML: NVML Shared Library Not Found)"]),
    ("build-override-fp32-on-a100", "a100_mig", TF_GPU, CPU_EPYC, STANDARD, {"build_name": "gpu-fp32"},
     {}, ("gpu-fp32", "gpu", [0], {})),
    ("build-override-fp16-on-h200", "h200_driver580", TF_GPU, CPU_EPYC, STANDARD,
     {"build_name": "gpu-fp16"}, {}, ("gpu-fp16", "gpu", [0], {})),
    ("build-override-cpu-bf16-without-bf16", None, TF_CPU, CPU_X86_PLAIN, STANDARD,
     {"build_name": "cpu-bf16"}, {}, ("cpu-bf16", "cpu", [], {})),
    ("build-override-gpu-on-kepler", "k80_driver410", TF_GPU, CPU_EPYC, STANDARD,
     {"build_name": "gpu-bf16"}, {}, ["builds tried: gpu-bf16: no usable GPU"]),
    ("build-override-unknown", "h200_driver580", TF_GPU, CPU_EPYC, STANDARD, {"build_name": "gpu-int8"}, {},
     ["--build=gpu-int8: no such build", "gpu-bf16, gpu-fp16, amd-bf16, amd-fp16, intel-bf16, gpu-fp32, cpu-bf16, cpu-fp32"]),
    ("gpu-only-manifest-on-v100", "v100_driver580", TF_GPU, CPU_EPYC, only("gpu-bf16"), {}, {},
     ["no usable build", "GPU 0 Tesla V100-SXM2-16GB (cc 7.0); GPU 1 Tesla V100-SXM2-16GB (cc 7.0)",
      "gpu-bf16: needs cc ≥ 8.0 (GPU 0 has cc 7.0, GPU 1 has cc 7.0)"]),
    ("every-build-listed", "k80_driver410", TF_GPU, CPU_X86_PLAIN, only("gpu-bf16", "gpu-fp16", "cpu-bf16"),
     {}, {}, ["gpu-bf16: no usable GPU", "gpu-fp16: no usable GPU",
              "cpu-bf16: needs a CPU with avx512_bf16 or amx_bf16"]),
    ("cpu-arch-requirement", None, TF_CPU, CPU_EPYC, with_build(STANDARD, cpu_arch=("ppc64le",)), {}, {},
     ("cpu-bf16", "cpu", [], {"special": "needs CPU architecture ppc64le, this is x86_64"})),
    ("cpu-arch-requirement-met", None, TF_CPU, CPU_POWER9, with_build(STANDARD, cpu_arch=("ppc64le",)),
     {}, {}, ("special", "cpu", [], {})),
    ("backend-requirement", None, TF_CPU, CPU_EPYC, with_build(STANDARD, backend=("jax", "torch")), {}, {},
     ("cpu-bf16", "cpu", [], {"special": "needs Keras backend jax/torch, this job uses tensorflow"})),
    ("min-framework", None, TF_CPU, CPU_EPYC, with_build(STANDARD, min_framework="2.22"), {}, {},
     ("cpu-bf16", "cpu", [], {"special": "needs tensorflow ≥ 2.22, found 2.21.0"})),
    ("min-framework-met", None, TF_CPU, CPU_EPYC, with_build(STANDARD, min_framework="2.16.1"), {}, {},
     ("special", "cpu", [], {})),
    # AMD nodes: an MI210 (amd-smi), one MI250X GCD (rocm-smi), three MI308X (the amdsmi library)
    ("mi210-rocm-torch-bf16", "mi210_rocm7", TORCH_ROCM61, CPU_EPYC, STANDARD, {}, {},
     ("amd-bf16", "gpu", [0], {"gpu-bf16": "needs an NVIDIA GPU (here: AMD Instinct MI210)"})),
    ("mi210-cuda-tf-requiregpu", "mi210_rocm7", TF_GPU, CPU_EPYC, STANDARD, {"require_gpu": True}, {},
     ["AMD GPU 0 AMD Instinct MI210 (gfx90a) not usable: tensorflow 2.21.0 is not a ROCm build (CUDA 12.5.1",
      "amd-bf16: no usable GPU"]),
    ("mi210-cpu-tf-falls-to-cpu", "mi210_rocm7", TF_CPU, CPU_EPYC, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"amd-bf16": "no usable GPU"})),
    ("mi210-rocm-tf-without-devices", "mi210_rocm7", TF_ROCM_NO_DEVICES, CPU_EPYC, STANDARD,
     {"require_gpu": True}, {}, ["not usable: tensorflow 2.16.2 lists no AMD GPU"]),
    ("mi210-rocr-visible-none", "mi210_rocm7", TORCH_ROCM61, CPU_EPYC, STANDARD, {},
     {"ROCR_VISIBLE_DEVICES": ""}, ("cpu-bf16", "cpu", [], {"amd-bf16": "no GPU"})),
    ("mi210-version-1-manifest-is-nvidia-only", "mi210_rocm7", TORCH_ROCM61, CPU_EPYC, VERSION_1, {}, {},
     ("cpu-fp32", "cpu", [], {"gpu-fp32": "needs an NVIDIA GPU"})),
    ("mi210-version-2-amd-builds", "mi210_rocm7", TORCH_ROCM61, CPU_EPYC, AMD_MANIFEST, {}, {},
     ("mi200", "gpu", [0], {"mi300": "needs gfx942 (AMD GPU 0 has gfx90a)"})),
    ("mi210-force-an-nvidia-build", "mi210_rocm7", TORCH_ROCM61, CPU_EPYC, STANDARD,
     {"build_name": "gpu-bf16"}, {}, ["gpu-bf16: needs an NVIDIA GPU"]),
    ("mi250x-gcd-rocm57-torch", "mi250x_rocm6", TORCH_ROCM57, CPU_EPYC, STANDARD, {}, {},
     ("amd-bf16", "gpu", [0], {})),
    ("mi308x-rocm61-torch-bf16", "mi308x_amdsmi", TORCH_ROCM61, CPU_XEON_AMX, STANDARD, {}, {},
     ("amd-bf16", "gpu", [0, 1, 2], {})),
    ("mi308x-version-2-amd-builds", "mi308x_amdsmi", TORCH_ROCM61, CPU_XEON_AMX, AMD_MANIFEST, {}, {},
     ("mi300", "gpu", [0, 1, 2], {})),
    ("mi308x-rocm57-torch-lacks-gfx942", "mi308x_amdsmi", TORCH_ROCM57, CPU_XEON_AMX, STANDARD,
     {"require_gpu": True}, {},
     ["AMD GPU 0 AMD Instinct MI308X OAM (gfx942) not usable: torch 2.2.2+rocm5.7 has no code for gfx942 "
      "(carries gfx900, gfx906, gfx908, gfx90a, gfx1030, gfx1100)", "ROCm 5.7.31921"]),
    ("mi308x-hip-visible-second", "mi308x_amdsmi", TORCH_ROCM61, CPU_XEON_AMX, STANDARD, {},
     {"HIP_VISIBLE_DEVICES": "1"}, ("amd-bf16", "gpu", [1], {})),
    ("amd-driver-not-loaded", "amd_driver_failure", TORCH_ROCM61, CPU_EPYC, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"amd-bf16": "no GPU"})),
    # Intel: six Data Center GPU Max 1550 of an Aurora node (xpu-smi)
    ("max1550-xpu-torch-bf16", "max1550_aurora", TORCH_XPU, CPU_XEON_AMX, STANDARD, {}, {},
     ("intel-bf16", "gpu", [0, 1, 2, 3, 4, 5], {"amd-bf16": "needs an AMD GPU (here: 6 × Intel(R) "
                                                 "Data Center GPU Max 1550)"})),
    ("max1550-build-without-pvc", "max1550_aurora", TORCH_XPU_BMG_ONLY, CPU_XEON_AMX, STANDARD,
     {"require_gpu": True}, {}, ["Intel GPU 0 Intel(R) Data Center GPU Max 1550 (pvc) not usable: "
                                 "torch 2.8.0+site has no code for pvc (carries bmg)"]),
    ("max1550-rocm-torch", "max1550_aurora", TORCH_ROCM61, CPU_XEON_AMX, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"intel-bf16": "no usable GPU"})),
    ("max1550-affinity-one-card", "max1550_aurora", TORCH_XPU, CPU_XEON_AMX, STANDARD, {},
     {"ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE", "ZE_AFFINITY_MASK": "3"}, ("intel-bf16", "gpu", [3], {})),
    ("intel-driver-failure", "intel_driver_failure", TORCH_XPU, CPU_XEON_AMX, STANDARD, {}, {},
     ("cpu-bf16", "cpu", [], {"intel-bf16": "no GPU"})),
]


@pytest.mark.parametrize("machine, framework, cpu, manifest, kwargs, env, expected",
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_selection_table(machine, framework, cpu, manifest, kwargs, env, expected, fake_smi, no_smi,
                         nvml_absent):
    if machine:
        fake_smi(machine)
    platform = platform_of(framework, cpu=cpu, **env)
    if isinstance(expected, list):
        with pytest.raises(SetupError) as caught:
            select_build(platform, manifest, **kwargs)
        assert caught.value.exit_code == ec.EXEC_SETUP_FAIL == 69
        for fragment in expected:
            assert fragment in caught.value.message, (fragment, caught.value.message)
        return
    build, device, gpus, skipped = expected
    selection = select_build(platform, manifest, **kwargs)
    assert (selection.build.name, selection.device, [g.index for g in selection.gpus]) == (build, device, gpus)
    reasons = dict(selection.skipped)
    for name, fragment in skipped.items():
        assert fragment in reasons[name], (name, reasons)
    assert list(reasons) == [b.name for b in manifest.builds][:len(reasons)]


def test_forced_build_records_what_it_overrode(fake_smi, nvml_absent):
    fake_smi("h200_driver580")
    selection = select_build(platform_of(TF_GPU), STANDARD, build_name="gpu-fp16")
    assert selection.notes == ("forced by --build although it needs cc 7.0–7.9 (GPU 0 has cc 9.0)",)
    assert selection.skipped == ()


def test_mig_selection_runs_on_the_visible_slice(nvml_machine, no_smi, monkeypatch):
    nvml_machine("a100_mig")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-feb88891-0321-5fef-9c87-d4af3b54259e")
    from wrapper.platform.detect import detect_platform, with_usability

    platform = with_usability(replace(detect_platform(probe_framework=False), framework=TF_GPU))
    selection = select_build(platform, STANDARD)
    assert selection.build.name == "gpu-bf16"
    assert [m.uuid for m in selection.gpus[0].mig_devices] == ["MIG-feb88891-0321-5fef-9c87-d4af3b54259e"]


def test_contradicting_options():
    with pytest.raises(SetupError, match="contradict"):
        select_build(platform_of(TF_CPU), STANDARD, device="cpu", require_gpu=True)
    with pytest.raises(SetupError, match="not one of auto, gpu, cpu"):
        select_build(platform_of(TF_CPU), STANDARD, device="tpu")


def test_error_carries_the_platform_for_the_log(fake_smi, nvml_absent):
    fake_smi("k80_driver410")
    platform = platform_of(TF_GPU)
    with pytest.raises(SetupError) as caught:
        select_build(platform, STANDARD, require_gpu=True)
    assert caught.value.extra == format_platform(platform)
    assert "NOT usable: tensorflow 2.21.0 has no code for compute capability 3.7" in caught.value.extra


def test_selection_report_hides_credentials(fake_smi, nvml_absent):
    fake_smi("v100_driver580")
    manifest = default_manifest("https://reader:s3cr3t@models.example.org/m.keras?X-Amz-Signature=abc",
                                "paper", 8)
    report = select_build(platform_of(TF_GPU), manifest).to_report()
    assert report["weights_uri"] == "https://models.example.org/m.keras"
    assert "s3cr3t" not in json.dumps(report) and "Signature" not in json.dumps(report)
    assert report["gpus"] == [0, 1] and report["precision"] == "mixed_float16"
    assert report["skipped"] == [{"build": "gpu-bf16", "reason": "needs cc ≥ 8.0 (GPU 0 has cc 7.0, GPU 1 has cc 7.0)"}]


def test_show_platform_text(fake_smi, nvml_absent):
    fake_smi("a100_mig")
    platform = platform_of(TF_GPU)
    text = format_platform(platform, select_build(platform, STANDARD))
    assert "GPU 0: NVIDIA A100-SXM4-80GB, cc 8.0, 81920 MiB, MIG on (7 devices: 1g.10gb" in text
    assert "Driver: 535.216.01 (CUDA 12.2)" in text
    assert "Build: gpu-bf16 on GPU 0: mixed_bfloat16, batch 8, config paper" in text
    assert "driver supports CUDA 12.2, older than the CUDA 12.5.1" in text


# --- manifests ----------------------------------------------------------------------------------

def test_default_manifest():
    manifest = default_manifest("/data/model.keras", "small", 4)
    assert [b.name for b in manifest.builds] == ["gpu-bf16", "gpu-fp16", "amd-bf16", "amd-fp16",
                                                 "intel-bf16", "gpu-fp32", "cpu-bf16", "cpu-fp32"]
    assert [b.precision for b in manifest.builds] == [
        "mixed_bfloat16", "mixed_float16", "mixed_bfloat16", "mixed_float16", "mixed_bfloat16",
        "float32", "mixed_bfloat16", "float32"]
    assert {(b.weights_uri, b.model_config, b.batch_size) for b in manifest.builds} == \
        {("/data/model.keras", "small", 4)}
    assert manifest.build("gpu-fp16").requires.max_cc == (7, 9)
    assert default_manifest(None, "tiny", 2).model_version == "untrained"


def test_manifest_round_trip(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(STANDARD.to_json()))
    assert load_manifest(path) == STANDARD


def test_manifest_accepts_cc_as_list():
    data = STANDARD.to_json()
    data["builds"][0]["requires"]["min_cc"] = [8, 0]
    assert manifest_from_json(data).builds[0].requires.min_cc == (8, 0)


def _mutated(change):
    data = json.loads(json.dumps(STANDARD.to_json()))
    change(data)
    return data


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(schema_version=3), "schema_version 3 is not supported (this wrapper reads 1 and 2)"),
    (lambda d: d.update(schema_version=1), "vendor need schema_version 2"),
    (lambda d: d["builds"][2]["requires"].update(vendor=["arm"]), "vendor must be among nvidia, amd, intel"),
    (lambda d: d["builds"][2]["requires"].update(min_cc="9.0"), "a compute capability is NVIDIA's"),
    (lambda d: d["builds"][0]["requires"].update(gpu_arch=["gfx90a"]), "gpu_arch names AMD or Intel targets"),
    (lambda d: d["builds"][2]["requires"].update(gpu_arch=["GFX 90a"]), "lower-case targets like 'gfx90a'"),
    (lambda d: d["builds"][6]["requires"].update(vendor=["amd"]), "a CPU build cannot require a GPU vendor"),
    (lambda d: d.pop("schema_version"), "schema_version None is not supported"),
    (lambda d: d.update(builds=[]), "'builds' must be a non-empty list"),
    (lambda d: d.update(extra=1), "unknown top-level keys ['extra']"),
    (lambda d: d["builds"][0].update(precision="int8"), "precision 'int8' is not one of"),
    (lambda d: d["builds"][0].update(batch_size=0), "batch_size must be a positive integer"),
    (lambda d: d["builds"][0].update(batch_size=True), "batch_size must be a positive integer"),
    (lambda d: d["builds"][0].update(name="bad name"), "'name' must match"),
    (lambda d: d["builds"][1].update(name="gpu-bf16"), "unique: gpu-bf16 repeated"),
    (lambda d: d["builds"][0]["requires"].update(min_cc="eight"), "min_cc must be 'major.minor'"),
    (lambda d: d["builds"][1]["requires"].update(min_cc="8.0"), "min_cc 8.0 is above max_cc 7.9"),
    (lambda d: d["builds"][6]["requires"].update(min_cc="8.0"), "a CPU build cannot require"),
    (lambda d: d["builds"][0]["requires"].update(device="tpu"), "device 'tpu' is not one of"),
    (lambda d: d["builds"][0]["requires"].update(backend=["mxnet"]), "backend must be among"),
    (lambda d: d["builds"][0]["requires"].update(gpus=2), "unknown requirement keys ['gpus']"),
    (lambda d: d["builds"][0].update(weights=""), "unknown keys ['weights']"),
    (lambda d: d["builds"][0].update(weights_uri=""), "'weights_uri' must be a non-empty string or null"),
])
def test_malformed_manifest(change, fragment, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_mutated(change)))
    with pytest.raises(SetupError) as caught:
        load_manifest(path)
    assert caught.value.exit_code == 69
    assert fragment in caught.value.message and str(path) in caught.value.message


def test_manifest_not_json(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"schema_version": 1, "builds": [')
    with pytest.raises(SetupError, match="is not valid JSON"):
        load_manifest(path)


def test_manifest_missing(tmp_path):
    with pytest.raises(InputFileError) as caught:
        load_manifest(tmp_path / "nowhere.json")
    assert (caught.value.exit_code, caught.value.cause) == (9, "not-found")


def test_manifest_unreadable(tmp_path):
    with pytest.raises(InputFileError) as caught:
        load_manifest(tmp_path)
    assert (caught.value.exit_code, caught.value.cause) == (9, "unreadable")


def test_standard_builds_order_serves_every_cc(fake_smi, nvml_absent):
    """gpu-fp32 takes any GPU, so a GPU whose cc is unknown, but which the framework lists, still
    gets a GPU build."""
    from wrapper.platform.gpus import GPU

    fake_smi("v100_driver580")
    mystery = GPU(0, "NVIDIA Mystery 9000", None, None, 1024, None)
    platform = platform_of(replace(TF_GPU, gpu_devices=(mystery,)))
    selection = select_build(replace(platform, gpus=(mystery,), unusable=()),
                             Manifest(1, "m", "1", standard_builds("w", "tiny", 2)))
    assert selection.build.name == "gpu-fp32"
