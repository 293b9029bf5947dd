"""A build's `min_gpu_memory_mb`: the manifest field the brokerage reads (scripts/jedi/brokerage.py)
holds on the node too: a GPU with less memory is skipped for the next build."""
from __future__ import annotations

import json

import pytest

from wrapper import exitcodes as ec
from wrapper.builds.selection import Build, Manifest, Requirements, load_manifest, select_build, standard_builds
from wrapper.errors import SetupError

from tests.platform.conftest import CPU_POWER9, CPU_XEON_AMX, TF_GPU, platform_of


def manifest(memory_mb):
    big = Build("gpu-big", "m.keras", "float32", 32, "paper", Requirements(device="gpu", min_gpu_memory_mb=memory_mb))
    return Manifest(2, "m", "1", (big,) + standard_builds("m.keras", "paper", 8))


@pytest.mark.parametrize("machine, cpu, memory_mb, chosen, reason", [
    ("v100_driver580", CPU_POWER9, 40000, "gpu-fp16", "needs 40000 MiB of GPU memory (GPU 0 has 16384"),
    ("v100_driver580", CPU_POWER9, 16384, "gpu-big", None),
    ("h200_driver580", CPU_XEON_AMX, 80000, "gpu-big", None),
])
def test_selection_honours_gpu_memory(fake_smi, nvml_absent, machine, cpu, memory_mb, chosen, reason):
    fake_smi(machine)
    selection = select_build(platform_of(TF_GPU, cpu=cpu), manifest(memory_mb))
    assert selection.build.name == chosen
    if reason:
        assert reason in dict(selection.skipped)["gpu-big"]


def test_forced_build_notes_the_memory(fake_smi, nvml_absent):
    fake_smi("v100_driver580")
    selection = select_build(platform_of(TF_GPU, cpu=CPU_POWER9), manifest(40000), build_name="gpu-big")
    assert selection.build.name == "gpu-big" and "needs 40000 MiB" in " ".join(selection.notes)


@pytest.mark.parametrize("requires, words", [
    ({"device": "gpu", "min_gpu_memory_mb": 0}, "min_gpu_memory_mb must be a positive integer"),
    ({"device": "gpu", "min_gpu_memory_mb": "16G"}, "min_gpu_memory_mb must be a positive integer"),
    ({"device": "cpu", "min_gpu_memory_mb": 1000}, "a CPU build cannot require GPU memory"),
])
def test_bad_memory_requirement(tmp_path, requires, words):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema_version": 1, "model": "m", "model_version": "1", "builds": [
        {"name": "b", "weights_uri": None, "precision": "float32", "batch_size": 1, "model_config": "tiny",
         "requires": requires}]}))
    with pytest.raises(SetupError) as caught:
        load_manifest(path)
    assert caught.value.exit_code == ec.EXEC_SETUP_FAIL and words in caught.value.message


def test_memory_round_trips(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest(24000).to_json()))
    assert load_manifest(path).builds[0].requires.min_gpu_memory_mb == 24000
