"""Our GPU microarchitecture names against the real pilot's (3.11.5.1, `detect_architecture`).

PanDA's brokerage compares these names as exact strings, so for every product the pilot knows ours
must be the pilot's; where the pilot says Unknown (an H200), ours names the generation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wrapper.platform import gpu_architectures
from wrapper.platform.gpus import cc_from_name

from scripts.pilot_harness import pilots

# Product names as nvidia-smi prints them, with their compute capabilities (NVIDIA's CUDA GPU list).
PRODUCTS = [
    ("Tesla K80", (3, 7)), ("Tesla P100-PCIE-16GB", (6, 0)), ("Tesla V100-SXM2-32GB", (7, 0)),
    ("Tesla T4", (7, 5)), ("NVIDIA A100-SXM4-80GB", (8, 0)), ("NVIDIA L40S", (8, 9)),
    ("NVIDIA RTX 6000 Ada Generation", (8, 9)), ("NVIDIA H100 80GB HBM3", (9, 0)),
    ("NVIDIA GH200 480GB", (9, 0)), ("NVIDIA H200", (9, 0)),
]

_DETECT = r"""
import json, sys
from pilot.util.workernode import detect_architecture
print(json.dumps({name: detect_architecture(name) for name in json.load(sys.stdin)}))
"""


@pytest.fixture(scope="module")
def pilot_names(tmp_path_factory) -> dict:
    """{product: the name pilot 3.11.5.1's own detect_architecture gives it}."""
    top = pilots.unpack(tmp_path_factory.mktemp("pilot3") / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _DETECT], input=json.dumps([p for p, _ in PRODUCTS]),
                          env=dict(env, PILOT_USER="generic", PYTHONPATH=str(top)), cwd=top, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("product, cc", PRODUCTS, ids=[p for p, _ in PRODUCTS])
def test_our_name_is_the_pilots_wherever_the_pilot_knows_the_gpu(pilot_names, product, cc):
    assert cc_from_name(product) == cc           # our own name table agrees with NVIDIA's list
    ours = gpu_architectures.name_of(cc, product)
    if product == "NVIDIA H200":
        assert (pilot_names[product], ours) == ("Unknown", "Hopper")
    else:
        assert ours == pilot_names[product] != "Unknown"


def test_ranges_and_unknown_capabilities():
    assert gpu_architectures.name_of(None) is None
    assert gpu_architectures.name_of((5, 2), "Tesla M40") == "Maxwell"
    assert gpu_architectures.name_of((13, 0)) == "Unknown"
    assert gpu_architectures.in_range((8, 9), (9, 0)) == ("Ada Lovelace", "Hopper", "Grace Hopper")


def test_the_table_is_the_only_place_that_spells_the_names():
    """The plugin takes the name the trf put in its report and the JEDI helper asks the table:
    no other module of ours writes a microarchitecture name as a string of its own."""
    import ast
    from pathlib import Path

    root = Path(gpu_architectures.__file__).resolve().parents[2]
    table = Path(gpu_architectures.__file__).resolve()
    names = {name for name, _, _ in gpu_architectures.MICROARCHITECTURES}
    spelled = {}
    for folder in ("wrapper", "scripts", "deploy"):
        for path in (root / folder).rglob("*.py"):
            if path.resolve() == table:
                continue
            found = {node.value for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Constant) and node.value in names}
            if found:
                spelled[str(path.relative_to(root))] = sorted(found)
    assert spelled == {}
