"""Two CPU worker processes on loopback train the `tiny` network together (MultiWorkerMirroredStrategy),
launched as srun would launch them; a worker that never starts or dies makes the other fail, not hang."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from payload.simulate import simulate_events
from tests.support.private_network import private_network
from tests.support.seaweed import free_ports

WORKER = Path(__file__).with_name("mw_worker.py")
ROOT = WORKER.parents[2]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return simulate_events(6, 5, path=tmp_path_factory.mktemp("mw") / "events.h5")


@pytest.fixture
def network():
    """A command prefix into a network namespace of the test's own: TensorFlow's collective server
    listens on every interface (tests/support/private_network.py)."""
    with private_network() as prefix:
        yield prefix


def launch(prefix: list, rank: int, size: int, out: Path, events: Path, port: int, *extra: str) -> subprocess.Popen:
    """One worker with the environment srun gives task `rank` of a one-node step."""
    env = dict(os.environ, SLURM_JOB_ID="4711", SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
               SLURM_STEP_NUM_TASKS=str(size), SLURM_STEP_NODELIST="localhost",
               SLURM_STEP_TASKS_PER_NODE=str(size), PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    log = open(out / f"log-{rank}.txt", "w")
    return subprocess.Popen([*prefix, sys.executable, str(WORKER), str(out), str(events), "--port", str(port), *extra],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def finish(procs, limit_s: float = 400.0) -> list[int]:
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(limit_s))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise AssertionError("a worker hung past the test's limit")
    return codes


def test_two_workers_end_with_identical_weights(tmp_path, events, network):
    from payload.modelfile import load_model

    port = free_ports(1)[0]
    procs = [launch(network, rank, 2, tmp_path, events, port, "--epochs", "1", "--batch", "1") for rank in (0, 1)]
    codes = finish(procs)
    logs = [(tmp_path / f"log-{r}.txt").read_text()[-3000:] for r in (0, 1)]
    assert codes == [0, 0], logs

    results = [json.loads((tmp_path / f"result-{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in results] == [0, 1] and {r["size"] for r in results} == {2}
    assert results[0]["history"] == results[1]["history"]
    assert np.isfinite(results[0]["history"]["loss"]).all()

    first, second = (load_model(tmp_path / f"model-{r}.keras", "tiny").get_weights() for r in (0, 1))
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)   # identical, batch-norm statistics included
    fresh = load_model_fresh_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(first, fresh)), "nothing was trained"


def load_model_fresh_weights():
    import keras

    from payload.model import build_model

    keras.utils.set_random_seed(11)
    return build_model("tiny").get_weights()


def test_a_worker_that_never_starts_fails_the_other_in_bounded_time(tmp_path, events, network):
    port = free_ports(1)[0]
    proc = launch(network, 0, 2, tmp_path, events, port, "--timeout", "4")
    codes = finish([proc], limit_s=120)
    log = (tmp_path / "log-0.txt").read_text()
    assert codes[0] != 0
    assert "CollectiveError" in log and f"localhost:{port + 1} did not start within 4 s" in log


def test_a_worker_that_dies_mid_training_fails_the_other_with_a_clear_error(tmp_path, events, network):
    port = free_ports(1)[0]
    procs = [launch(network, 0, 2, tmp_path, events, port, "--epochs", "3", "--timeout", "10"),
             launch(network, 1, 2, tmp_path, events, port, "--epochs", "3", "--timeout", "10",
                    "--die-after-steps", "1")]
    codes = finish(procs, limit_s=200)
    survivor = (tmp_path / "log-0.txt").read_text()
    assert codes[1] == 9 and codes[0] not in (0, 9)
    assert "CollectiveError" in survivor and "worker 0 of 2" in survivor
    assert "retry resumes from the last complete checkpoint" in survivor
