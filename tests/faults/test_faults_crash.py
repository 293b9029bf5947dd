"""Fault scenarios: the payload step's process dies under the trf (segfault, abort, SIGKILL, OOM).

The payload runs in a child process of the trf (wrapper/step/supervisor.py). Each scenario kills that
child with a real signal while it trains or infers; the trf must survive it, name the cause, exit
with its code, write both reports and leave no output under a final name and no partial file.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import expect_failure
from tests.outputs_on_disk import assert_outputs_on_disk
from wrapper import exitcodes as ec

TRAIN = ("--mode=train", "--modelConfig=tiny", "--batchSize=2", "--outputModelFile=trained.keras",
         "--outputMetricsFile=metrics.json", "--epochs=1000", "--validationSplit=0")
INFER = ("--mode=infer", "--modelConfig=tiny", "--batchSize=1", "--outputPredFile=pred.h5")


def payload_child(trf_pid: int) -> int:
    """The PID of the trf's payload-step process (its child running wrapper.step.child)."""
    for task in Path(f"/proc/{trf_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"wrapper.step.child" in cmdline:
                return int(pid)
    raise LookupError("no payload child")


def _has_child(running) -> bool:
    try:
        payload_child(running.proc.pid)
        return True
    except (LookupError, FileNotFoundError):
        return False


@pytest.fixture(scope="module")
def many_events(data) -> Path:
    """Enough events that inference is still running when the signal comes."""
    from payload.simulate import simulate_events

    path = data.directory / "many.h5"
    if not path.exists():
        simulate_events(96, 31, path=path)
    return path


def _crashed(run, signum: int) -> dict:
    name = signal.Signals(signum).name
    report = expect_failure(run, ec.EXEC_CRASH, acronym="TRF_EXEC_CRASH", cause="payload-crashed",
                            mentions=("the payload step crashed", f"killed by {name}"))
    assert report["executor"][-1]["name"] == "payload" and report["executor"][-1]["statusOK"] is False
    return report


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL],
                         ids=["SIGSEGV", "SIGABRT", "SIGKILL"])
def test_payload_killed_mid_training(trf, inputs, jobdir, signum):
    running = trf.start(*TRAIN, f"--inputEventsFile={inputs.events}")
    running.wait_for_output("train epoch 2/1000")
    os.kill(payload_child(running.proc.pid), signum)

    run = running.finish(timeout=120)

    _crashed(run, signum)
    assert not (jobdir / "trained.keras").exists() and not (jobdir / "metrics.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL],
                         ids=["SIGSEGV", "SIGABRT", "SIGKILL"])
def test_payload_killed_mid_inference(trf, inputs, many_events, jobdir, scenario, signum):
    scenario.input(many_events)
    running = trf.start(*INFER, f"--inputEventsFile={many_events}", f"--modelFile={inputs.model}")
    running.wait_for_output(" events (")                # the first inference progress tick
    os.kill(payload_child(running.proc.pid), signum)

    run = running.finish(timeout=120)

    _crashed(run, signum)
    assert not (jobdir / "pred.h5").exists()


def test_sigterm_reaches_the_payload_child_and_the_trf_still_reports(trf, inputs, jobdir):
    # The pilot signals the trf (here: the trf alone, not its group): the child must stop too.
    running = trf.start(*TRAIN, f"--inputEventsFile={inputs.events}")
    running.wait_for_output("train epoch 2/1000")
    child = payload_child(running.proc.pid)
    os.kill(running.proc.pid, signal.SIGTERM)

    run = running.finish(timeout=60)

    expect_failure(run, 143, acronym="TRF_SIG_TERM", mentions=("job stopped by SIGTERM",))
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists(), "the payload child outlived the trf"


def test_time_limit_stops_the_payload_child(trf, inputs, jobdir):
    run = trf(*TRAIN, f"--inputEventsFile={inputs.events}", "--timeLimit=60", timeout=240)

    expect_failure(run, 67, acronym="TRF_EXEC_TIMEOUT", mentions=("--timeLimit=60",))
    assert not (jobdir / "trained.keras").exists()


def test_direct_access_inputs_are_reopened_by_the_payload_child(trf, inputs, many_events, s3, scenario):
    # The staged handle lives in the trf; the payload's process opens the object again from its
    # description, and the report counts the bytes both processes read.
    scenario.control()    # a job meant to succeed: no fault is injected
    uri = s3.put("direct/many.h5", many_events.read_bytes())
    scenario.s3_input(s3.client, s3.bucket, "direct/many.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}", "--accessMode=direct",
              env=s3.env)

    assert run.rc == 0, run.stderr[-3000:]
    assert assert_outputs_on_disk(run.jobdir, run.report) == ["pred.h5"]
    entry = run.report["files"]["input"][0]["subFiles"][0]
    assert entry["access"] == "direct" and entry["nentries"] == 96
    assert entry["bytes_transferred"] >= many_events.stat().st_size // 2, entry
    assert not (run.jobdir / "many.h5").exists()
