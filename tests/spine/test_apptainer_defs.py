"""The Apptainer definitions in deploy/apptainer (CUDA, ROCm, ppc64le) read as Apptainer reads them:
one structure, a pinned base image, the project's own files, and labels that say what is inside.
No image is built here (that needs the network and, for the tests inside, the GPUs)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFS = sorted((ROOT / "deploy" / "apptainer").glob("*.def"))
SECTIONS = ("files", "post", "environment", "runscript", "test", "labels", "help")


def parse(path: Path) -> tuple:
    """(header {key: value}, {section: body}) of a definition file."""
    text = path.read_text()
    header_text, *rest = re.split(r"^%", text, maxsplit=1, flags=re.M)
    header = dict(re.findall(r"^(Bootstrap|From):\s*(\S+)\s*$", header_text, re.M))
    sections = {}
    for block in re.split(r"^%", "%" + rest[0], flags=re.M)[1:] if rest else []:
        name, _, body = block.partition("\n")
        sections[name.strip()] = body
    return header, sections


def test_every_platform_has_its_definition():
    assert {p.name for p in DEFS} >= {"dune-payload-x86_64-cuda.def", "dune-payload-x86_64-rocm.def",
                                      "dune-payload-ppc64le.def"}


@pytest.mark.parametrize("path", DEFS, ids=[p.stem for p in DEFS])
def test_a_definition_has_the_common_structure(path):
    header, sections = parse(path)
    assert header["Bootstrap"] == "docker"
    image, _, tag = header["From"].partition(":")
    assert tag and tag != "latest", f"{path.name}: the base image must be pinned"
    assert set(SECTIONS) <= set(sections), set(SECTIONS) - set(sections)
    copied = [line.split() for line in sections["files"].splitlines() if line.strip()]
    assert {src for src, _ in copied} == {"setup.py", "README.md", "payload", "wrapper"}
    assert all((ROOT / src).exists() for src, _ in copied)
    assert 'exec dune-payload "$@"' in sections["runscript"]
    labels = dict(line.split(None, 1) for line in sections["labels"].splitlines() if line.strip())
    backend = re.search(r"KERAS_BACKEND=(\w+)", sections["environment"]).group(1)
    assert labels["org.dune.payload.backend"] == backend
    assert labels["org.dune.payload.arch"] in path.stem


def test_the_rocm_image_keeps_amds_tensorflow():
    """AMD's image brings tensorflow-rocm; the `gpu` extra would add NVIDIA's TensorFlow beside it."""
    header, sections = parse(ROOT / "deploy" / "apptainer" / "dune-payload-x86_64-rocm.def")
    assert header["From"].startswith("rocm/tensorflow:rocm6.")
    assert "[gpu]" not in sections["post"] and "is_rocm_build" in sections["post"]
    assert re.search(r"org\.dune\.payload\.gpu\s+rocm", sections["labels"])
    assert "--rocm" in sections["help"]
