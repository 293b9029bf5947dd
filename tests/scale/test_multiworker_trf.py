"""Multi-node training through the trf: two real `python -m wrapper --mode=train --multiWorker=auto`
processes, launched with the environment srun gives the 2 tasks of a step on one node, training
the `tiny` network together over loopback (MultiWorkerMirroredStrategy).

What is promised (README "Scale", wrapper/cluster/workers.py): the chief (rank 0) alone writes the job's
outputs and report in its job directory; the other rank works in a private directory under its
TMPDIR (wrapper/cluster/distribution.py) and leaves nothing in its job directory; both end with the
same weights. A worker killed mid-training makes the chief fail with exit 65 and errorCause
`worker-lost` within a bounded time instead of hanging until the walltime.

Each rank runs in a job directory of its own, its log kept outside it, so "nothing in the
non-chief's job directory" is checked against an empty directory.
"""
from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.simulate import simulate_events
from tests.outputs_on_disk import assert_outputs_on_disk
from tests.support.private_network import private_network
from tests.support.samples import files_under
from tests.support.seaweed import free_ports

ROOT = Path(__file__).resolve().parents[2]
# The step's one node, as SLURM_STEP_NODELIST names it. wrapper/cluster/workers.py passes node names on
# unchanged (host:port per rank); the rendezvous and TensorFlow resolve them, and this one resolves
# to loopback only (checked at launch), so every connection between the workers stays on it.
NODE = "localhost"
LFNS = {"outputModelFile": "user.dune.train.4711._000001.model.keras",
        "outputMetricsFile": "user.dune.train.4711._000001.metrics.json",
        "outputPlotFile": "user.dune.train.4711._000001.curve.png"}
WORKER_TIMEOUT_S = 10
# Liveness bounds, not performance figures: far above what the runs take on 2 shared cores.
RUN_LIMIT_S = 300
FAIL_LIMIT_S = 120      # from the kill to the chief's exit: --workerTimeout plus the framework's unwinding


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return simulate_events(4, 5, path=tmp_path_factory.mktemp("mw-trf") / "events.h5")


def srun_env(rank: int, size: int, tmpdir: Path) -> dict:
    """The environment srun gives task `rank` of a `size`-task step on one node (the variables a
    Slurm 23 step sets for its tasks that say where the task sits), and a per-task TMPDIR as sites
    with a per-job temporary directory set it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "PMI_", "JSM_", "LSB_")) and k != "TF_CONFIG"}
    env.update(
        SLURM_JOB_ID="4711", SLURM_JOBID="4711", SLURM_STEP_ID="0", SLURM_STEPID="0",
        SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0", SLURM_GTIDS="0,1",
        SLURM_NTASKS=str(size), SLURM_NPROCS=str(size), SLURM_STEP_NUM_TASKS=str(size),
        SLURM_NNODES="1", SLURM_JOB_NUM_NODES="1", SLURM_STEP_NUM_NODES="1",
        SLURM_NODELIST=NODE, SLURM_JOB_NODELIST=NODE, SLURM_STEP_NODELIST=NODE,
        SLURM_TASKS_PER_NODE=str(size), SLURM_STEP_TASKS_PER_NODE=str(size),
        SLURMD_NODENAME=NODE, SLURM_TOPOLOGY_ADDR=NODE, SLURM_LAUNCH_NODE_IPADDR="127.0.0.1",
        TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    return env


def worker_port() -> int:
    """A port P with P and P + 1 free on loopback (local rank N listens on --workerPort + N)."""
    while True:
        port = free_ports(1)[0]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


class Rank:
    """One task of the step: the trf in its own job directory, its log beside it."""

    def __init__(self, base: Path, prefix: list, rank: int, size: int, port: int, events: Path, *args: str):
        self.rank, self.port = rank, port
        self.jobdir, self.tmpdir = base / f"job-{rank}", base / f"tmp-{rank}"
        self.jobdir.mkdir()
        self.tmpdir.mkdir()
        self.log_path = base / f"log-{rank}.txt"
        words = ["--mode=train", "--multiWorker=auto", f"--workerPort={port}",
                 f"--workerTimeout={WORKER_TIMEOUT_S}", f"--inputEventsFile={events}",
                 "--modelConfig=tiny", "--batchSize=1", "--precision=float32", *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "wrapper", *words], cwd=self.jobdir,
                                         env=srun_env(rank, size, self.tmpdir), stdout=log,
                                         stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, limit_s: float) -> int:
        try:
            return self.proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"rank {self.rank} still ran {limit_s:g} s on: {self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launch(tmp_path, events):
    # Both ranks share a network namespace of the test's own: TensorFlow's collective server
    # listens on every interface (tests/support/private_network.py).
    ranks: list[Rank] = []
    with private_network() as prefix:
        def start(*args: str) -> list[Rank]:
            addresses = {info[4][0] for info in socket.getaddrinfo(NODE, None)}
            assert "127.0.0.1" in addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), \
                f"{NODE} must name this node's loopback only, not {addresses}"
            port = worker_port()
            ranks.extend(Rank(tmp_path, prefix, rank, 2, port, events, *args) for rank in (0, 1))
            return ranks

        yield start
        for rank in ranks:
            rank.stop()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def private_dir(rank: Rank) -> Path:
    """The non-chief's private directory, as its log names it."""
    found = re.findall(r"this worker's own go to (\S+)", rank.log())
    assert len(found) == 1, rank.log()[-3000:]
    return Path(found[0])


def weights(model_file: Path) -> dict:
    """Every array in a `.keras` file's weights, by its path in model.weights.h5 (h5py alone)."""
    arrays = {}

    def keep(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with zipfile.ZipFile(model_file) as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
            f.visititems(keep)
    return arrays


def test_two_trf_ranks_train_one_model_written_by_the_chief_alone(launch):
    chief, other = launch("--epochs=2", *(f"--{name}={lfn}" for name, lfn in LFNS.items()))
    codes = [chief.wait(RUN_LIMIT_S), other.wait(RUN_LIMIT_S)]
    assert codes == [0, 0], chief.log()[-3000:] + other.log()[-3000:]

    # The chief: the job's report and every output, in its job directory, as the pilot reads them.
    report = read_json(chief.jobdir / "jobReport.json")
    assert report["exitCode"] == 0 and "errorCause" not in report
    assert {o["argName"]: o["subFiles"][0]["name"] for o in report["files"]["output"]} == LFNS
    assert_outputs_on_disk(chief.jobdir, report)
    cluster = report["distribution"]["cluster"]
    assert cluster == {"source": "slurm", "rank": 0, "size": 2, "localRank": 0, "localSize": 2,
                       "chief": True, "workers": [f"{NODE}:{chief.port}", f"{NODE}:{chief.port + 1}"]}
    assert report["distribution"]["kind"] == "multi_worker" and report["distribution"]["replicas"] == 2
    assert report["distribution"]["globalBatch"] == 2
    assert not (chief.jobdir / "payload_error_report.json").exists()
    assert {p.split("/")[0] for p in files_under(chief.jobdir)} == {"jobReport.json", "checkpoints",
                                                                     *LFNS.values()}

    # The other rank: nothing at all in its job directory (no report, no LFN, no temporary name).
    assert files_under(other.jobdir) == set()
    # Its own report and its copy of the model sit in the private directory its log names.
    private = private_dir(other)
    assert private.parent == other.tmpdir
    mine = read_json(private / "jobReport.json")
    assert mine["exitCode"] == 0
    assert mine["distribution"]["cluster"]["rank"] == 1 and mine["distribution"]["cluster"]["chief"] is False
    assert mine["distribution"]["cluster"]["workers"] == cluster["workers"]
    assert mine["metrics"]["loss"] == report["metrics"]["loss"] and np.isfinite(report["metrics"]["loss"])
    assert mine["resource"]["transform"]["processedEvents"] == report["resource"]["transform"]["processedEvents"] > 0

    # The model the chief wrote holds exactly the weights the other rank trained.
    ours, theirs = weights(chief.jobdir / LFNS["outputModelFile"]), weights(private / LFNS["outputModelFile"])
    assert len(ours) > 10 and ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_a_worker_killed_mid_training_fails_the_chief_with_worker_lost(launch):
    epochs = 8
    chief, other = launch(f"--epochs={epochs}", f"--outputModelFile={LFNS['outputModelFile']}")
    # Evidence, not a sleep: the other rank's log reports its first epoch done (every later step
    # needs it in the all-reduce, so the chief cannot finish without it).
    first_epoch = re.compile(rf"train epoch 1/{epochs}: (\d+)/\1 steps \(100\.0%\)")
    deadline = time.monotonic() + RUN_LIMIT_S
    while not first_epoch.search(other.log()):
        assert chief.proc.poll() is None and other.proc.poll() is None, chief.log()[-2000:] + other.log()[-2000:]
        assert time.monotonic() < deadline, other.log()[-3000:]
        time.sleep(0.2)
    child = int(re.search(r"payload step: process (\d+)", other.log()).group(1))

    other.proc.send_signal(signal.SIGKILL)          # the rank's trf, by its PID, as a lost node
    assert other.proc.wait(30) == -signal.SIGKILL
    code = chief.wait(FAIL_LIMIT_S)

    assert code == 65, chief.log()[-3000:]
    report = read_json(chief.jobdir / "jobReport.json")
    assert (report["exitCode"], report["exitAcronym"], report.get("errorCause")) == (65, "TRF_EXEC_FAIL",
                                                                                    "worker-lost")
    # The meaning first, within the 256 characters PanDA shows; the lost peer named after it.
    assert report["exitMsg"].startswith("worker 0 of 2: a collective operation with the other workers "
                                        f"failed: a worker died or stopped answering within {WORKER_TIMEOUT_S} s")
    assert f"(peers {NODE}:{chief.port + 1}; " in report["exitMsg"] + report["exitMsgExtra"]
    assert read_json(chief.jobdir / "payload_error_report.json") == {"error_code": 65,
                                                                      "error_diag": report["exitMsg"]}
    assert "(exit 65 TRF_EXEC_FAIL)" in chief.log()
    assert report["files"]["output"] == []
    left = files_under(chief.jobdir)
    assert not [p for p in left if LFNS["outputModelFile"] in p], left
    assert {p.split("/")[0] for p in left} <= {"jobReport.json", "payload_error_report.json", "checkpoints"}

    # The killed rank left nothing in its job directory, and its payload process did not live on.
    assert files_under(other.jobdir) == set()
    assert gone(child, within_s=30), f"payload process {child} of the killed rank still runs"


def gone(pid: int, within_s: float) -> bool:
    """True once `pid` has exited (no longer in /proc, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False
