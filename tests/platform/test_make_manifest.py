"""scripts/tools/make_manifest.py on a real trained-model file, published to a local directory."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from wrapper.builds.selection import load_manifest, select_build
from wrapper.platform.detect import detect_platform

from scripts.tools import make_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A real `.keras` file of the tiny config, written by the payload's own saver."""
    from payload.model import build_model
    from payload.modelfile import save_model

    path = tmp_path_factory.mktemp("trained") / "tiramisu-tiny.keras"
    return save_model(build_model("tiny"), path)


def test_publish_to_local_directory(model_file, tmp_path, capsys):
    dest = tmp_path / "models" / "v1"
    assert make_manifest.main([str(model_file), "--dest", str(dest), "--batch-size", "4"]) == 0
    manifest = load_manifest(dest / "manifest.json")
    published = dest.resolve() / model_file.name
    assert published.read_bytes() == model_file.read_bytes()
    assert [b.name for b in manifest.builds] == ["gpu-bf16", "gpu-fp16", "amd-bf16", "amd-fp16",
                                                 "intel-bf16", "gpu-fp32", "cpu-bf16", "cpu-fp32"]
    assert {(b.weights_uri, b.model_config, b.batch_size) for b in manifest.builds} == {(str(published), "tiny", 4)}
    assert manifest.model_version == hashlib.sha256(model_file.read_bytes()).hexdigest()[:12]
    assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", model_file.name]
    assert f"published {dest / 'manifest.json'}" in capsys.readouterr().out


def test_published_manifest_selects_and_loads_on_this_host(model_file, tmp_path):
    """End to end on this machine: the manifest's choice for this CPU names weights that load."""
    from payload.modelfile import load_model

    dest = tmp_path / "pub"
    assert make_manifest.main([str(model_file), "--dest", str(dest), "--model-version", "v7"]) == 0
    manifest = load_manifest(dest / "manifest.json")
    platform = detect_platform(probe_framework=False)
    selection = select_build(platform, manifest)
    expected = "cpu-bf16" if {"avx512_bf16", "amx_bf16"} & platform.cpu.features else "cpu-fp32"
    assert (selection.build.name, selection.device, manifest.model_version) == (expected, "cpu", "v7")
    model = load_model(Path(selection.build.weights_uri), selection.build.model_config)
    assert model.name == "fcdensenet_tiny"


def test_republish_replaces_atomically(model_file, tmp_path):
    dest = tmp_path / "pub"
    assert make_manifest.main([str(model_file), "--dest", str(dest), "--model-version", "a"]) == 0
    assert make_manifest.main([str(model_file), "--dest", str(dest), "--model-version", "b"]) == 0
    assert load_manifest(dest / "manifest.json").model_version == "b"
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("argv, code, message", [
    (["{model}", "--dest", "{tmp}/d", "--model-config", "paper"], 9, "holds config 'tiny', not --model-config 'paper'"),
    (["{tmp}/missing.keras", "--dest", "{tmp}/d"], 9, "missing.keras: no such file"),
    (["{junk}", "--dest", "{tmp}/d"], 9, "is not a .keras model file"),
    (["{model}"], 7, "the following arguments are required: --dest"),
    (["{model}", "--dest", "https://example.org/models"], 7, "--dest must be a directory or s3:// prefix"),
    (["{model}", "--dest", "{tmp}/d", "--batch-size", "0"], 7, "--batch-size must be at least 1"),
])
def test_refusals(argv, code, message, model_file, tmp_path, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    argv = [a.format(model=model_file, tmp=tmp_path, junk=junk) for a in argv]
    assert make_manifest.main(argv) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d" / "manifest.json").exists()


def test_command_line(model_file, tmp_path):
    """The script runs as a program from any directory (how operators use it)."""
    done = subprocess.run([sys.executable, "-m", "scripts.tools.make_manifest", str(model_file), "--dest", str(tmp_path / "cli")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "builds: gpu-bf16, gpu-fp16, amd-bf16, amd-fp16, intel-bf16, gpu-fp32, cpu-bf16, cpu-fp32" in done.stdout
    assert load_manifest(tmp_path / "cli" / "manifest.json").builds[0].model_config == "tiny"
