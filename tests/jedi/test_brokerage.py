"""The task's GPU requirement from the builds it ships, as a table: manifest → `architecture`.

The forms are those panda-server reads (JediTaskSpec.get_host_gpu_spec): the shorthand
`#cpu&nvidia[:vram>=MB][:uarch=NAME]` and, for several microarchitectures, the JSON object; the
microarchitecture names are those pilot 3.11.5.1 reports (pilot/util/workernode.py)."""
from __future__ import annotations

import json

import pytest

from tests.support.httpd import LoopbackHTTP

from scripts.jedi import brokerage as jedi_brokerage
from scripts.jedi import task as jedi_task

NEWER = ["Ampere", "Ada Lovelace", "Hopper", "Grace Hopper", "Blackwell"]
BASE = ["infer", "--dataset", "dune:mc.pdsp.events.v1", "--output-dataset", "user.jdoe.dune.pred.v1/",
        "--trf-url", "https://dune.example.org/trf/dune-payload.pyz", "--image", "docker://r/dune:cuda"]


def gpu(name, min_cc=None, max_cc=None, memory=None, device="gpu"):
    requires = {"device": device}
    requires.update({k: v for k, v in (("min_cc", min_cc), ("max_cc", max_cc),
                                        ("min_gpu_memory_mb", memory)) if v is not None})
    return {"name": name, "weights_uri": f"s3://models/{name}.keras", "precision": "float32",
            "batch_size": 4, "model_config": "paper", "requires": requires}


CPU = {"name": "cpu", "weights_uri": "s3://models/cpu.keras", "precision": "float32", "batch_size": 2,
       "model_config": "paper", "requires": {"device": "cpu"}}

# id, builds (None: no manifest, the standard builds), extra arguments → architecture (str or JSON)
TABLE = [
    ("standard-builds-take-any-nvidia-gpu", None, [], "#x86_64&nvidia"),
    ("standard-builds-with-memory-asked", None, ["--gpu-memory-mb", "16000"], "#x86_64&nvidia:vram>=16000"),
    ("bf16-only", [gpu("bf16", "8.0")], [],
     {"cpu_specs": [{"arch": "x86_64"}], "gpu_spec": {"vendor": "nvidia", "microarchitecture": NEWER}}),
    ("fp16-and-bf16", [gpu("bf16", "8.0"), gpu("fp16", "7.0", "7.9"), CPU], [],
     {"cpu_specs": [{"arch": "x86_64"}],
      "gpu_spec": {"vendor": "nvidia", "microarchitecture": ["Volta", "Turing"] + NEWER}}),
    ("one-generation-fits-the-shorthand", [gpu("a100", "8.0", "8.7", memory=40000)], [],
     "#x86_64&nvidia:vram>=40000:uarch=Ampere"),
    ("partial-generation-is-included", [gpu("sm86", "8.6", "8.6")], [], "#x86_64&nvidia:uarch=Ampere"),
    ("smallest-memory-of-the-gpu-builds", [gpu("h", "9.0", "9.0", memory=80000), gpu("a", "8.0", "8.7", memory=40000)],
     ["--base-platform", "el9"],
     {"base_platform": "el9", "cpu_specs": [{"arch": "x86_64"}],
      "gpu_spec": {"vendor": "nvidia", "microarchitecture": ["Ampere", "Hopper", "Grace Hopper"],
                   "vram": ">=40000"}}),
    ("a-build-without-memory-needs-none", [gpu("h", "9.0", "9.0", memory=80000), gpu("v", "7.0", "7.0")], [],
     {"cpu_specs": [{"arch": "x86_64"}],
      "gpu_spec": {"vendor": "nvidia", "microarchitecture": ["Volta", "Hopper", "Grace Hopper"]}}),
    ("asked-memory-above-the-builds", [gpu("a", "8.0", "8.7", memory=16000)], ["--gpu-memory-mb", "50000"],
     "#x86_64&nvidia:vram>=50000:uarch=Ampere"),
    ("any-gpu-build-lifts-the-uarch-filter", [gpu("bf16", "8.0"), gpu("fp32")], [], "#x86_64&nvidia"),
    ("device-any-counts-as-gpu", [gpu("any", "7.5", "7.5", device="any")], ["--cpu-arch", "ppc64le"],
     "#ppc64le&nvidia:uarch=Turing"),
    ("cpu-queues", [gpu("bf16", "8.0"), CPU], ["--gpu", "none"], "#x86_64"),
]


@pytest.fixture
def web():
    """Where a task's manifest lives: a URL every job (and the helper) can read."""
    server = LoopbackHTTP().start()
    yield server
    server.stop()


def manifest(web, builds) -> str:
    return web.add("/dune/manifest.json", json.dumps(
        {"schema_version": 1, "model": "m", "model_version": "3", "builds": builds}).encode())


@pytest.mark.parametrize("builds, extra, expected", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_architecture_from_the_builds(web, capsys, builds, extra, expected):
    argv = BASE + extra
    if builds is None:
        argv += ["--model-file", "https://dune.example.org/models/dune.model.v3.keras"]
    else:
        argv += ["--build-manifest", manifest(web, builds)]
    assert jedi_task.main(argv) == 0, capsys.readouterr().err
    params = json.loads(capsys.readouterr().out)
    text = params["architecture"]
    assert (json.loads(text) if isinstance(expected, dict) else text) == expected
    if builds is not None:
        assert f"--buildManifest={web.url('/dune/manifest.json')}" in jedi_task.job_template(params)


def test_a_manifest_without_gpu_builds_cannot_make_a_gpu_task(web, capsys):
    assert jedi_task.main(BASE + ["--build-manifest", manifest(web, [CPU])]) == 1
    assert "none of the builds runs on a GPU" in capsys.readouterr().err


def test_an_unreadable_manifest_says_so(web, capsys):
    assert jedi_task.main(BASE + ["--build-manifest", web.url("/dune/absent.json")]) == 9
    assert "--buildManifest" in capsys.readouterr().err


def test_a_manifest_by_a_local_path_is_refused_since_no_job_could_read_it(tmp_path, capsys):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema_version": 1, "model": "m", "model_version": "3", "builds": [CPU]}))
    assert jedi_task.main(BASE + ["--build-manifest", str(path)]) == 1
    assert f"--buildManifest {str(path)!r} is a bare file name" in capsys.readouterr().err


@pytest.mark.parametrize("low, high, names", [
    ((3, 5), (3, 7), ["Kepler"]), ((7, 0), (7, 5), ["Volta", "Turing"]), ((8, 9), (9, 0), ["Ada Lovelace", "Hopper", "Grace Hopper"]),
    (None, (6, 1), ["Kepler", "Maxwell", "Pascal"]), ((10, 0), None, ["Blackwell"]),
])
def test_compute_capability_ranges(low, high, names):
    assert list(jedi_brokerage.microarchitectures(low, high)) == names
