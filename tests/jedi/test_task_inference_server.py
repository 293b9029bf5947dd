"""scripts/jedi/task.py with --inference-server: the jobs send their events to a Triton server, so
they carry the server and model as trf arguments and run on CPU queues (no GPU request)."""
from __future__ import annotations

import json

import pytest

from scripts.jedi import task as jedi_task

SERVER = "grpc://triton.dune.example.org:8001"
BASE = ["infer", "--input-url", "https://data.example.org/run1/events_0001.h5",
        "--output-dataset", "user.jdoe.dune.pred.v1/", "--trf-url", "https://dune.example.org/trf/dune-payload.pyz"]


def _params(capsys, *extra: str) -> dict:
    assert jedi_task.main([*BASE, *extra]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_server_and_model_reach_every_job_and_no_gpu_is_asked(capsys):
    params = _params(capsys, "--inference-server", SERVER, "--inference-model", "dune-paper:3")
    values = [item["value"] for item in params["jobParameters"]]
    assert f"--inferenceServer={SERVER}" in values and "--inferenceModel=dune-paper:3" in values
    assert "--requireGPU" not in values
    assert params["architecture"] == "#x86_64"
    assert params["processingType"] == "dune-ml-infer"
    assert params["processingType"] not in jedi_task.GPU_PROCESSING_TYPES


def test_the_trf_parses_the_jobs_it_makes(capsys):
    params = _params(capsys, "--inference-server", SERVER, "--inference-model", "dune-small",
                     "--model-file", "reference:small")
    (job,) = jedi_task.validate(params)[:1]
    assert job["spec"]["inferenceServer"] == SERVER and job["spec"]["inferenceModel"] == "dune-small"
    assert job["spec"]["modelFile"] == "reference:small"   # the fallback's weights


def test_without_a_server_the_gpu_request_stays(capsys):
    params = _params(capsys, "--model-file", "reference:small")
    assert "&nvidia" in params["architecture"]
    assert "--requireGPU" in [item["value"] for item in params["jobParameters"]]


@pytest.mark.parametrize("extra, words", [
    (["--inference-model", "dune-tiny", "--model-file", "reference:small"], "go together"),
    (["--inference-server", SERVER], "go together"),
    (["--inference-server", SERVER, "--inference-model", "dune-tiny", "--model-file", "reference:small"],
     "a training runs its network"),
], ids=["model-without-server", "server-without-model", "training"])
def test_contradictions_are_refused(capsys, extra, words):
    argv = [*BASE, *extra]
    if words.startswith("a training"):
        argv[0] = "train"
    assert jedi_task.main(argv) == jedi_task.EXIT_INVALID
    assert words in capsys.readouterr().err
