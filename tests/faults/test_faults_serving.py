"""The network on a real Triton server (`--inferenceServer`), and every way that server fails a job.

Servers are real tritonserver processes (PyTriton, the serve venv): `dune-payload-serve` on the
suite's model, and test models that are slow or of the wrong shape (tests/support/triton_models.py).
A relay between the trf and the server cuts or stalls the connection. Each failure must end in
bounded time with its exit code and cause, both reports and no output under its final name; with
`--inferenceFallback=local` the job finishes in process and says which events ran where.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests.faults.harness import DATA, expect_failure
from tests.support.relay import Relay
from tests.support.seaweed import free_ports

INFER = ("--mode=infer", "--outputPredFile=pred.h5")
UNIFORM = np.float16(1 / 3)          # what the slow test model answers for every pixel
FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")
# Loaded by every interpreter of the job (the trf and its payload step, whatever starts it): each
# writes the frameworks it imports to a file named by its PID, at the import itself.
_IMPORT_PROBE = """
import os, sys
_FRAMEWORKS = {frameworks!r}
def _hook(event, args):
    if event == "import" and args[0].split(".")[0] in _FRAMEWORKS:
        with open(os.path.join({directory!r}, str(os.getpid())), "a") as out:
            out.write(args[0] + "\\n")
sys.addaudithook(_hook)
with open(os.path.join({directory!r}, "started." + str(os.getpid())), "w"):
    pass
"""


@pytest.fixture(scope="module")
def served(triton_server, data):
    """dune-payload-serve on the suite's model, float32, batches of at most 2 events."""
    return triton_server("--device", "cpu", "--precision", "float32", "--maxBatchSize", "2",
                         model_file=data.model)


@pytest.fixture(scope="module")
def slow(triton_test_model):
    """A model that takes 2 s a batch (batches of 1, unbounded queue)."""
    return triton_test_model("slow", delay=2, maxBatchSize=1)


@pytest.fixture(scope="module")
def secured(triton_server, data, tls_files, secrets, tmp_path_factory):
    """dune-payload-serve with TLS and the suite's BEARER_TOKEN as its token."""
    token_file = tmp_path_factory.mktemp("serve-token") / "token"
    token_file.write_text(secrets.bearer + "\n")
    cert, key = tls_files
    return triton_server("--device", "cpu", "--precision", "float32", "--tlsCert", str(cert),
                         "--tlsKey", str(key), "--tokenFile", str(token_file), model_file=data.model)


def _server(server, model: str = "") -> tuple:
    return (f"--inferenceServer={server.url}", f"--inferenceModel={model or server.model}")


def _scores(run) -> np.ndarray:
    with h5py.File(run.jobdir / "pred.h5") as f:
        return f["scores"][...]


def _import_probe(directory) -> dict:
    """The environment that makes every interpreter of a job record its framework imports in `directory`."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(_IMPORT_PROBE.format(frameworks=FRAMEWORKS,
                                                                    directory=str(directory)))
    return {"PYTHONPATH": str(directory)}


def test_through_the_server_the_job_writes_what_an_in_process_job_writes(trf, inputs, served, tmp_path):
    in_process, probe, probe_local = tmp_path / "in-process", tmp_path / "imports", tmp_path / "imports-local"
    in_process.mkdir()
    trf.scenario.control()
    remote = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(served), "--batchSize=3",
                 "--inferenceConcurrency=2", env=_import_probe(probe))
    local = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--modelFile={inputs.model}",
                "--precision=float32", jobdir=in_process, env=_import_probe(probe_local))

    assert remote.rc == 0 and local.rc == 0, remote.stderr[-3000:] + local.stderr[-3000:]
    # the trf and its payload step both ran, and neither imported a framework
    assert len(list(probe.glob("started.*"))) >= 2
    assert {p.name: p.read_text() for p in probe.iterdir() if p.name.isdigit()} == {}
    # the probe sees them where they are imported: the in-process job's payload step
    assert "keras" in "".join(p.read_text() for p in probe_local.iterdir() if p.name.isdigit())
    np.testing.assert_allclose(_scores(remote).astype(np.float32), _scores(local).astype(np.float32),
                               atol=2e-3)
    section = remote.report["inference"]
    assert (section["where"], section["model"], section["version"]) == ("server", served.model, "1")
    assert section["events"] == {"server": 4, "in-process": 0}
    # 4 events in batches of 3 to a server taking 2: the 3 went as 2 + 1, the last 1 alone
    assert section["maxBatch"] == 2 and section["requests"] == 3 and section["concurrency"] == 2
    assert section["served"]["precision"] == "float32" and section["served"]["model_file"] == "model.keras"
    with h5py.File(remote.jobdir / "pred.h5") as f:
        assert f.attrs["model_version"] == f"{served.model}:1"
        assert '"where": "server"' in f.attrs["inference"]


def test_server_unreachable_exits_64_naming_the_address(trf, inputs):
    (port,) = free_ports(1)
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--inferenceServer=grpc://127.0.0.1:{port}",
              "--inferenceModel=dune-tiny", "--inferenceRetries=1")
    expect_failure(run, 64, cause="connection", mentions=[f"127.0.0.1:{port}", "no server answers"])


@pytest.mark.fault_kind(DATA)
def test_a_model_the_server_lacks_exits_9_naming_it(trf, inputs, served):
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(served, "dune-nosuch"))
    expect_failure(run, 9, cause="not-found", mentions=["dune-nosuch", "--inferenceModel"])


@pytest.mark.fault_kind(DATA)
def test_a_model_of_the_wrong_shape_exits_9_before_any_event_is_sent(trf, inputs, triton_test_model):
    server = triton_test_model("wrong-shape")
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(server))
    expect_failure(run, 9, cause="model-mismatch", mentions=["FP16", "[160, 160, 1]", "dune-payload-serve"])


def test_a_full_queue_is_retried_then_exits_64_overloaded(trf, inputs, triton_test_model):
    server = triton_test_model("slow", delay=3, maxBatchSize=1, maxQueueSize=1)
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(server), "--batchSize=1",
              "--inferenceConcurrency=4", "--inferenceRetries=0")
    expect_failure(run, 64, cause="overloaded", mentions=["queue is full"])


def test_a_request_that_hangs_times_out_and_exits_64(trf, inputs, slow):
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(slow), "--batchSize=1",
              "--inferenceTimeout=1", "--inferenceRetries=1")
    report = expect_failure(run, 64, cause="timeout", mentions=["--inferenceTimeout", "after 2 tries"])
    assert report["inference"]["server"] == slow.url and report["inference"]["where"] == "server"


def test_a_connection_cut_mid_response_is_retried_and_the_job_succeeds(trf, inputs, served):
    trf.scenario.control()
    relay = Relay(("127.0.0.1", served.port), cut_at=200_000)
    try:
        run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--inferenceServer=grpc://127.0.0.1:{relay.port}",
                  f"--inferenceModel={served.model}")
    finally:
        relay.close()
    assert run.rc == 0, run.stderr[-3000:]
    assert relay.cuts == 1 and relay.connections >= 2
    assert run.report["inference"]["retries"] >= 1 and run.report["inference"]["events"]["server"] == 4


def test_a_stalled_connection_times_out_and_exits_64(trf, inputs, served):
    relay = Relay(("127.0.0.1", served.port), rate=20_000)
    try:
        run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--inferenceServer=grpc://127.0.0.1:{relay.port}",
                  f"--inferenceModel={served.model}", "--inferenceTimeout=2", "--inferenceRetries=1")
    finally:
        relay.close()
    expect_failure(run, 64, cause="timeout", mentions=[f"127.0.0.1:{relay.port}"])


def _start_and_kill_server_mid_job(trf, inputs, server, *extra: str):
    running = trf.start(*INFER, f"--inputEventsFile={inputs.events}", *_server(server), "--batchSize=1",
                        "--inferenceConcurrency=1", "--inferenceRetries=2", *extra)
    running.wait_for_output("inference: 1/4", timeout=120)
    server.kill()
    return running.finish()


def test_a_server_that_dies_mid_job_exits_64_server_lost(trf, inputs, triton_test_model):
    run = _start_and_kill_server_mid_job(trf, inputs, triton_test_model("slow", delay=2, maxBatchSize=1,
                                                                         modelName="test-slow-dies"))
    expect_failure(run, 64, cause="server-lost", mentions=["no longer does", "after 3 tries"])


def test_with_fallback_the_events_after_the_server_died_run_in_process(trf, inputs, triton_test_model):
    trf.scenario.control()
    server = triton_test_model("slow", delay=2, maxBatchSize=1, modelName="test-slow-falls-back")
    run = _start_and_kill_server_mid_job(trf, inputs, server, "--inferenceFallback=local",
                                         f"--modelFile={inputs.model}")

    assert run.rc == 0, run.stderr[-3000:]
    section = run.report["inference"]
    at = section["fallback"]["atEvent"]
    assert section["where"] == "server, then in-process" and section["fallback"]["kind"] == "lost"
    assert 1 <= at < 4 and section["events"] == {"server": at, "in-process": 4 - at}
    scores = _scores(run)
    assert (scores[:at] == UNIFORM).all()             # the test model's answer
    assert not (scores[at:] == UNIFORM).all(axis=(1, 2, 3)).any()   # the real network's


def test_token_over_tls_is_sent_and_never_written(trf, inputs, secured, tls_files, secrets):
    trf.scenario.control()
    url = secured.url.replace("grpc://", "grpcs://")
    ca = {"REQUESTS_CA_BUNDLE": str(tls_files[0])}
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--inferenceServer={url}",
              f"--inferenceModel={secured.model}", env=ca)
    assert run.rc == 0, run.stderr[-3000:]
    assert run.report["inference"]["events"]["server"] == 4


def test_a_wrong_token_is_refused_with_exit_9_and_not_written(trf, inputs, secured, tls_files, secrets):
    url = secured.url.replace("grpc://", "grpcs://")
    env = {"REQUESTS_CA_BUNDLE": str(tls_files[0]), "BEARER_TOKEN": secrets.wrong_secret}
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--inferenceServer={url}",
              f"--inferenceModel={secured.model}", env=env)
    expect_failure(run, 9, cause="permission", mentions=["refused", "BEARER_TOKEN or a token file"])


def test_without_a_token_over_plain_grpc_the_server_refuses(trf, inputs, secured, tls_files):
    plain = trf(*INFER, f"--inputEventsFile={inputs.events}", *_server(secured), "--inferenceRetries=0")
    expect_failure(plain, 64, mentions=[secured.url])
