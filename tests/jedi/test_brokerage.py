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


# ---------------------------------------------------------------------------------------------
# AMD and Intel GPUs: `--gpu amd|intel` (alias --gpu-vendor), `--gpu-arch`, `--gpu-model`. The
# families are those the DUNE pilot plugin reports in worker_node_gpus (pilot 3.11.5.1 reports
# none of these GPUs); panda-server matches microarchitecture as exact strings (match_gpu_spec).

def gpu_v2(name, vendor, targets=None, memory=None, device="gpu"):
    requires = {"device": device, "vendor": [vendor]}
    requires.update({k: v for k, v in (("gpu_arch", targets), ("min_gpu_memory_mb", memory)) if v})
    return {"name": name, "weights_uri": f"s3://models/{name}.keras", "precision": "float32",
            "batch_size": 4, "model_config": "paper", "requires": requires}


def manifest_v2(web, builds) -> str:
    return web.add("/dune/manifest2.json", json.dumps(
        {"schema_version": 2, "model": "m", "model_version": "3", "builds": builds}).encode())


JSON_CPU = {"cpu_specs": [{"arch": "x86_64"}]}
# id, builds (None: the standard builds; v2 manifests), extra arguments → architecture
VENDOR_TABLE = [
    ("standard-builds-take-any-amd-gpu", None, ["--gpu", "amd"], "#x86_64&amd"),
    ("gpu-vendor-alias-and-a-family", None, ["--gpu-vendor", "amd", "--gpu-arch", "CDNA 2"], "#x86_64&amd:uarch=CDNA 2"),
    ("targets-become-families", None, ["--gpu", "amd", "--gpu-arch", "gfx90a,gfx942"],
     {**JSON_CPU, "gpu_spec": {"vendor": "amd", "microarchitecture": ["CDNA 2", "CDNA 3"]}}),
    ("family-spelling-is-loose", None, ["--gpu", "amd", "--gpu-arch", "cdna3"], "#x86_64&amd:uarch=CDNA 3"),
    ("amd-builds-targets", [gpu_v2("amd-bf16", "amd", ["gfx90a", "gfx942", "gfx950"], memory=32000), CPU],
     ["--gpu", "amd"],
     {**JSON_CPU, "gpu_spec": {"vendor": "amd", "microarchitecture": ["CDNA 2", "CDNA 3", "CDNA 4"],
                               "vram": ">=32000"}}),
    ("gpu-arch-narrows-the-builds", [gpu_v2("amd-bf16", "amd", ["gfx90a", "gfx942"])],
     ["--gpu", "amd", "--gpu-arch", "gfx90a"], "#x86_64&amd:uarch=CDNA 2"),
    ("a-model-pattern-takes-the-json-form", None, ["--gpu", "amd", "--gpu-arch", "gfx942", "--gpu-model", "AMD Instinct MI300A"],
     {**JSON_CPU, "gpu_spec": {"vendor": "amd", "model": "AMD Instinct MI300A", "microarchitecture": ["CDNA 3"]}}),
    ("intel-max", None, ["--gpu", "intel", "--gpu-arch", "pvc"], "#x86_64&intel:uarch=Xe-HPC"),
    ("intel-builds-only-see-intel-targets", [gpu_v2("xpu", "intel", ["pvc"]), gpu_v2("amd", "amd", ["gfx90a"])],
     ["--gpu", "intel"], "#x86_64&intel:uarch=Xe-HPC"),
    ("nvidia-gpu-arch-narrows-the-cc-range", [gpu("bf16", "8.0")], ["--gpu-arch", "Hopper"],
     "#x86_64&nvidia:uarch=Hopper"),
    ("nvidia-ignores-amd-builds", [gpu_v2("amd-bf16", "amd", ["gfx90a"]), gpu_v2("nv", "nvidia")], [],
     "#x86_64&nvidia"),
]


def run_task(web, capsys, builds, extra):
    argv = BASE + extra
    if builds is None:
        argv += ["--model-file", "https://dune.example.org/models/dune.model.v3.keras"]
    else:
        argv += ["--build-manifest", manifest_v2(web, builds)]
    code = jedi_task.main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.mark.parametrize("builds, extra, expected", [row[1:] for row in VENDOR_TABLE], ids=[row[0] for row in VENDOR_TABLE])
def test_architecture_for_each_vendor(web, capsys, builds, extra, expected):
    code, params, err = run_task(web, capsys, builds, extra)
    assert code == 0, err
    text = params["architecture"]
    assert (json.loads(text) if isinstance(expected, dict) else text) == expected
    vendor = (text.split("&")[1].split(":")[0] if "&" in text else json.loads(text)["gpu_spec"]["vendor"])
    assert params["processingType"] == jedi_task.processing_type("infer", True, vendor)
    assert params["processingType"] in jedi_task.VENDOR_PROCESSING_TYPES[vendor]
    assert ("warning: GenJobBroker" in err) == (vendor != "nvidia")


def test_amd_and_intel_tasks_have_processing_types_of_their_own():
    assert jedi_task.VENDOR_PROCESSING_TYPES == {
        "nvidia": ("dune-ml-infer-gpu", "dune-ml-train-gpu"),       # what queues already list
        "amd": ("dune-ml-infer-gpu-amd", "dune-ml-train-gpu-amd"),
        "intel": ("dune-ml-infer-gpu-intel", "dune-ml-train-gpu-intel")}
    assert jedi_task.GPU_PROCESSING_TYPES == jedi_task.VENDOR_PROCESSING_TYPES["nvidia"]
    assert set(jedi_task.ALL_GPU_PROCESSING_TYPES) == {t for ts in jedi_task.VENDOR_PROCESSING_TYPES.values() for t in ts}


def test_what_the_brokers_cannot_honour_is_a_warning_naming_the_server_function(web, capsys):
    code, params, err = run_task(web, capsys, None, ["--gpu", "amd", "--gpu-arch", "gfx942"])
    assert code == 0 and params["architecture"] == "#x86_64&amd:uarch=CDNA 3"
    # gfx942 is only one of CDNA 3's targets: the broker compares families as exact strings
    assert "gfx942 can only be asked for as its family 'CDNA 3', which also holds gfx940, gfx941" in err
    assert "match_gpu_spec (pandaserver/srvcore/hardware_matching.py)" in err
    # GenJobBroker reads processingType only; queues must be set up for the new type
    assert "GenJobBroker (pandajedi/jedibrokerage/GenJobBroker.py, doBrokerage)" in err
    assert "allowed_processing=dune-ml-infer-gpu-amd|dune-ml-train-gpu-amd" in err
    assert "get_workernode_gpu_map" in err
    # an NVIDIA task warns of nothing
    assert run_task(web, capsys, None, [])[2] == ""


@pytest.mark.parametrize("builds, extra, message", [
    ([gpu("bf16", "8.0"), CPU], ["--gpu", "amd"], "none of the builds runs on an AMD GPU"),
    (None, ["--gpu", "intel", "--gpu-arch", "gfx90a"], "--gpu-arch 'gfx90a' is no Intel microarchitecture"),
    (None, ["--gpu", "amd", "--gpu-arch", "Hopper"], "is no AMD microarchitecture"),
    ([gpu_v2("amd-bf16", "amd", ["gfx942"])], ["--gpu", "amd", "--gpu-arch", "gfx90a"],
     "none of the builds targets it (they target gfx942)"),
    (None, ["--gpu", "none", "--gpu-arch", "CDNA 2"], "this task asks for no GPU"),
    (None, ["--gpu", "amd", "--gpu-model", "MI300(A"], "is not a regular expression"),
], ids=["nvidia-only-builds", "wrong-vendor-target", "wrong-vendor-family", "no-build-for-the-target",
        "cpu-task", "bad-model-pattern"])
def test_a_gpu_request_no_build_or_broker_can_meet_is_refused(web, capsys, builds, extra, message):
    code, _, err = run_task(web, capsys, builds, extra)
    assert code == 1 and message in err, err


def plugin_jobreport():
    """The DUNE pilot plugin's jobreport module (standard library only), from its file."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "pilot-plugin" / "dune" / "jobreport.py"
    spec = importlib.util.spec_from_file_location("dune_plugin_jobreport", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# worker_node_gpus records as the plugin makes them from the trf's report, by node
NODES = {
    "mi250x": ("amd", "AMD Instinct MI250X", "gfx90a", "CDNA 2", "6.2.0"),
    "mi300a": ("amd", "AMD Instinct MI300A", "gfx942", "CDNA 3", "6.3.1"),
    "max1550": ("intel", "Intel(R) Data Center GPU Max 1550", "pvc", "Xe-HPC", "1.3.29735"),
    "h200": ("nvidia", "NVIDIA H200", None, "Hopper", "13.0"),
}
# the request's arguments → the nodes panda-server's own matcher lets it run on
MATCHES = [
    (["--gpu", "amd"], {"mi250x", "mi300a"}),
    (["--gpu", "amd", "--gpu-arch", "gfx90a"], {"mi250x"}),
    (["--gpu", "amd", "--gpu-arch", "gfx90a,gfx942"], {"mi250x", "mi300a"}),
    (["--gpu", "amd", "--gpu-arch", "gfx942", "--gpu-model", "AMD Instinct MI300A"], {"mi300a"}),
    (["--gpu", "amd", "--gpu-model", ".*MI250"], {"mi250x"}),
    (["--gpu", "intel", "--gpu-arch", "pvc"], {"max1550"}),
    (["--gpu", "amd", "--gpu-memory-mb", "80000"], {"mi300a"}),
    ([], {"h200"}),
]


def test_panda_servers_matcher_takes_the_plugins_records_for_these_requests(web, capsys):
    """The requests parsed by panda-server's JediTaskSpec.get_host_gpu_spec and matched by its
    match_gpu_spec (both from .panda-venv, in its own Python) against the plugin's records."""
    import subprocess

    from scripts.panda_local import venv

    python = venv.location() / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no PanDA venv at {venv.location()} (python -m scripts.panda_local venv)")
    jobreport = plugin_jobreport()
    records = {}
    for node, (vendor, name, target, family, runtime) in NODES.items():
        memory = 98304 if node == "mi300a" else 65520
        report = {"platform": {"gpus": [{"vendor": vendor, "name": name, "architecture": family,
                                          "memory_mib": memory, "gpu_arch": target}],
                               "gpu_readings": [{"vendor": vendor, "driver_version": "1.0",
                                                 "cuda_driver_version": runtime if vendor == "nvidia" else None,
                                                 "runtime_version": runtime}]}}
        records[node] = jobreport.gpu_summary(report)
    requests = [run_task(web, capsys, None, extra)[1]["architecture"] for extra, _ in MATCHES]
    probe = ("import json, sys\n"
             "from pandaserver.srvcore.hardware_matching import match_gpu_spec\n"
             "from pandaserver.taskbuffer.JediTaskSpec import JediTaskSpec\n"
             "records, requests = json.load(sys.stdin)\n"
             "out = []\n"
             "for text in requests:\n"
             "    task = JediTaskSpec(); task.architecture = text\n"
             "    spec = task.get_host_gpu_spec()\n"
             "    out.append(sorted(n for n, r in records.items() if match_gpu_spec(spec, [r])))\n"
             "print(json.dumps(out))\n")
    done = subprocess.run([str(python), "-c", probe], input=json.dumps([records, requests]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert dict(zip(requests, got)) == {text: sorted(nodes) for text, (_, nodes) in zip(requests, MATCHES)}
