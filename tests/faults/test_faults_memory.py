"""Fault scenarios: the payload step really runs out of host memory.

Two limits a CPU machine can set, each on the trf from its first instruction (a wrapper sets it on
itself and execs the trf, so no allocation of the trf escapes it, and nothing else the suite runs
meanwhile is limited):

- a memory cgroup (the way Slurm, HTCondor and Kubernetes bound a job): the kernel's OOM killer
  SIGKILLs the largest process, the payload child, and the cgroup's `oom_kill` counter says why;
- a data-segment rlimit (RLIMIT_DATA, as `ulimit -d` sets it): the allocation itself fails, as
  MemoryError, TensorFlow's ResourceExhaustedError or C++'s std::bad_alloc.

A batch of 32 whole events (320 x 320) does not fit under either limit; the tiny network alone does.
The GPU's out-of-memory cannot be made here: its texts, copied from public logs, are classified in
tests/spine/test_supervisor.py.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.faults.harness import expect_failure

CGROUP_LIMIT = 700 << 20      # the trf (~100 MiB) and the framework (~400 MiB) fit; the batch does not
DATA_LIMIT = 2000 << 20       # address space for the framework's libraries and threads, not the batch
# Memory is the node's resource, not the data's: an infrastructure fault in the fault suite's tally.
pytestmark = pytest.mark.fault_kind("infrastructure")

TRAIN = ("--mode=train", "--modelConfig=tiny", "--epochs=1", "--batchSize=32", "--validationSplit=0",
         "--outputModelFile=model.keras", "--outputMetricsFile=metrics.json")


@pytest.fixture(scope="module")
def batch_events(data) -> Path:
    from payload.simulate import simulate_events

    path = data.directory / "batch32.h5"
    if not path.exists():
        simulate_events(32, 41, path=path)
    return path


def _own_memory_cgroup() -> Path:
    """This process's directory in the cgroup v1 memory hierarchy, or in the v2 unified one where
    that delegates the memory controller to its children."""
    lines = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
    for hierarchy, controllers, path in lines:
        v1 = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        if "memory" in controllers.split(",") and (v1 / "memory.limit_in_bytes").is_file():
            return v1
        for top in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
            v2 = top / path.lstrip("/") / "cgroup.subtree_control"
            if hierarchy == "0" and v2.is_file() and "memory" in v2.read_text().split():
                return v2.parent
    raise AssertionError("this machine gives the test no memory cgroup to nest a job's limit in; "
                         "/proc/self/cgroup:\n" + Path("/proc/self/cgroup").read_text())


@contextlib.contextmanager
def memory_cgroup(limit: int):
    """A memory cgroup of its own, nested in this process's, limited to `limit` bytes; yields the
    command prefix that runs what follows it (exec'd, the same PID) inside it. Removed afterwards."""
    group = _own_memory_cgroup() / f"dune-oom-test-{os.getpid()}"
    group.mkdir()
    try:
        v1 = (group / "memory.limit_in_bytes").exists()
        (group / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(str(limit))
        if v1:
            # Without swap accounting a v1 limit could page the job out instead of ending it.
            memsw = group / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text(str(limit))
        yield ["sh", "-c", f'echo $$ > {group / "cgroup.procs"} && exec "$@"', "in-memory-cgroup"]
    finally:
        group.rmdir()


def _no_outputs(run, jobdir: Path) -> None:
    assert not (jobdir / "model.keras").exists() and not (jobdir / "metrics.json").exists()
    assert run.report["executor"][-1]["name"] == "payload"
    assert run.report["executor"][-1]["statusOK"] is False


def test_the_kernels_oom_killer_ends_a_training_whose_batch_exceeds_the_jobs_memory_cgroup(
        trf, inputs, batch_events, jobdir, scenario):
    scenario.input(batch_events)
    with memory_cgroup(CGROUP_LIMIT) as wrap:
        run = trf(*TRAIN, f"--inputEventsFile={batch_events}", wrap=wrap, timeout=300)

    expect_failure(run, 81, acronym="TRF_EXEC_OOM", cause="host-oom",
                   mentions=("ran out of host memory", "OOM killer", "memory cgroup allows 700 MiB",
                             "--batchSize", "more memory per job"))
    _no_outputs(run, jobdir)


def test_an_allocation_beyond_the_data_limit_fails_the_payload_with_host_oom(
        trf, inputs, batch_events, jobdir, scenario):
    scenario.input(batch_events)
    # util-linux's prlimit sets the limit on itself, then execs the trf
    run = trf(*TRAIN, f"--inputEventsFile={batch_events}", wrap=["prlimit", f"--data={DATA_LIMIT}", "--"],
              timeout=300)

    report = expect_failure(run, 81, acronym="TRF_EXEC_OOM", cause="host-oom",
                            mentions=("ran out of host memory", "RLIMIT_DATA is 2.0 GiB", "--batchSize",
                                      "more memory per job"))
    # Which allocation crosses the limit first decides how it fails, and each form is seen here
    # with the same inputs (which depends on what else the machine runs): a Python one (numpy)
    # raises MemoryError; TensorFlow's CPU allocator raises ResourceExhaustedError; a C++ `new`
    # in a kernel throws std::bad_alloc and the child aborts, which the trf reads in its last
    # stderr lines. Exactly one of them is named.
    forms = {"MemoryError": "(MemoryError)" in report["exitMsg"],
             "ResourceExhaustedError": "ResourceExhaustedError" in report["exitMsg"],
             "std::bad_alloc": "std::bad_alloc" in report["exitMsgExtra"] and "std::bad_alloc" in run.stderr}
    assert sum(forms.values()) == 1, (forms, report["exitMsg"], report["exitMsgExtra"])
    _no_outputs(run, jobdir)
