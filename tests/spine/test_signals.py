"""Stopping on SIGTERM/SIGINT/SIGUSR1: exit 128+N with reports within 2 s, no partial outputs left.

The CLI is stopped while it blocks reading its --argJSON from a FIFO (the spine alone) and while an
input server stalls (with staging); a job whose main thread is stuck in C is covered through
stop_guard with the real report and output plan.

The 2 s bound is part of the pilot contract (SIGTERM, then SIGKILL 10 s later; docs/design.md,
'The pilot contract', and the spine issue), so it is asserted here as correctness, not as a speed goal.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from wrapper.signals import HANDLED, StopSignal, stop_guard

CONTRACT_S = 2.0
STOPS = [(signal.SIGTERM, "TRF_SIG_TERM"), (signal.SIGINT, "TRF_SIG_INT"), (signal.SIGUSR1, "TRF_SIG_USR1")]


def wait_for_reader(fifo: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Open the FIFO's write end once the CLI has opened its read end; the CLI then blocks reading."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        if proc.poll() is not None:
            pytest.fail(f"the CLI ended before reading its arguments: {proc.communicate()}")
        time.sleep(0.01)
    pytest.fail("the CLI never opened its --argJSON file")


def stop_and_time(proc: subprocess.Popen, signum: int, *, group: bool) -> float:
    start = time.monotonic()
    if group:
        os.killpg(proc.pid, signum)  # what the pilot does
    else:
        os.kill(proc.pid, signum)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - start


@pytest.mark.parametrize("signum,acronym", STOPS)
def test_cli_stops_on_signal_with_reports(jobdir, cli_env, signum, acronym):
    # The job reads its arguments from a FIFO that no one fills: a job blocked in I/O, as when an
    # input server hangs, using nothing but the spine itself.
    fifo = jobdir / "args.json"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "wrapper", f"--argJSON={fifo.name}"], cwd=jobdir,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    writer = wait_for_reader(fifo, proc)
    try:
        elapsed = stop_and_time(proc, signum, group=True)
        out, err = proc.communicate()
    finally:
        os.close(writer)
    code = 128 + signum
    assert proc.returncode == code, err
    assert elapsed < CONTRACT_S, f"took {elapsed:.2f} s to stop"
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert (report["exitCode"], report["exitAcronym"]) == (code, acronym)
    assert signal.Signals(signum).name in report["exitMsg"]
    error = json.loads((jobdir / "payload_error_report.json").read_text())
    assert error == {"error_code": code, "error_diag": report["exitMsg"]}
    assert sorted(p.name for p in jobdir.iterdir()) == ["args.json", "jobReport.json",
                                                         "payload_error_report.json"]
    assert "Traceback" not in err and err.strip().splitlines() == [err.strip()]
    assert acronym in err


def test_cli_stops_while_an_input_server_stalls(jobdir, cli_env):
    # A loopback server that takes the connection and never answers: staging waits on the socket.
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(60)
    url = f"https://127.0.0.1:{server.getsockname()[1]}/ev.001.h5"
    proc = subprocess.Popen([sys.executable, "-m", "wrapper", "--mode=infer", f"--inputEventsFile={url}",
                             "--modelFile=model.keras", "--outputPredFile=pred.000042.h5"],
                            cwd=jobdir, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        connection, _ = server.accept()
    except socket.timeout:
        proc.kill()
        pytest.fail(f"the job never connected to its input server: {proc.communicate()}")
    try:
        elapsed = stop_and_time(proc, signal.SIGTERM, group=True)
        _, err = proc.communicate()
    finally:
        connection.close()
        server.close()
    assert proc.returncode == 143, err
    assert elapsed < CONTRACT_S, f"took {elapsed:.2f} s to stop"
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert (report["exitCode"], report["exitAcronym"]) == (143, "TRF_SIG_TERM")
    assert any(s["name"] == "stage-in" and s["statusOK"] is False for s in report["executor"])
    assert json.loads((jobdir / "payload_error_report.json").read_text())["error_code"] == 143
    # no partial download and no temporary output is left behind
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]
    assert "Traceback" not in err


_STUCK = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from wrapper import exitcodes as ec
    from wrapper.errors import JobStopped
    from wrapper.report.outputs import OutputPlan
    from wrapper.report.jobreport import JobReport
    from wrapper.signals import HANDLED, stop_guard

    workdir = Path.cwd()
    report = JobReport.begin(["--mode=train"], workdir)
    plan = OutputPlan(workdir, {"outputModelFile": "model.keras"})
    plan.temp_path("outputModelFile").write_bytes(b"half a model")
    report.step("payload")

    def abandon(signum):  # as wrapper.main's: report, clean up, end the process
        report.fail(JobStopped(signum))
        plan.discard()
        report.write()
        os._exit(ec.for_signal(signum))

    with stop_guard(abandon):
        # The main thread gets stuck in C, like a long framework call that retries on EINTR: it
        # blocks the stop signals and waits on a pipe that nobody writes. Should the handler still
        # run before the call starts, the cleanup hangs the same way: the main thread never unwinds.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        r, w = os.pipe()
        print("stuck", flush=True)
        try:
            os.read(r, 1)
        finally:
            os.read(r, 1)
    print("unreachable", flush=True)
    sys.exit(99)
""")


@pytest.mark.parametrize("signum,acronym", STOPS)
def test_watcher_reports_when_the_main_thread_is_stuck_in_c(jobdir, cli_env, signum, acronym):
    proc = subprocess.Popen([sys.executable, "-c", _STUCK], cwd=jobdir, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "stuck\n"
        elapsed = stop_and_time(proc, signum, group=False)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    assert proc.returncode == 128 + signum, err
    assert elapsed < CONTRACT_S, f"took {elapsed:.2f} s to stop"
    assert "unreachable" not in out
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert (report["exitCode"], report["exitAcronym"]) == (128 + signum, acronym)
    assert report["executor"][0]["name"] == "payload" and report["executor"][0]["statusOK"] is False
    assert json.loads((jobdir / "payload_error_report.json").read_text())["error_code"] == 128 + signum
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


# --- stop_guard in this process (the main thread returns to Python, so it unwinds itself) ----------

def signal_main_thread(signum: int, delay: float = 0.0) -> threading.Timer:
    timer = threading.Timer(delay, signal.pthread_kill, (threading.main_thread().ident, signum))
    timer.start()
    return timer


def never_abandon(signum: int) -> None:
    raise AssertionError(f"the watcher gave up on the main thread after signal {signum}")


@pytest.mark.parametrize("signum", HANDLED)
def test_signal_interrupts_a_waiting_main_thread(signum):
    with stop_guard(never_abandon, grace=60) as state:
        assert not state.requested()
        signal_main_thread(signum, delay=0.05)
        with pytest.raises(StopSignal) as caught:
            time.sleep(30)
    assert caught.value.signum == signum == state.signum and state.requested()


def test_the_handler_raises_even_when_the_watcher_saw_the_signal_first():
    with stop_guard(never_abandon, grace=60) as state:
        # Only the watcher's thread (started by the guard) takes the OS signal; the main thread
        # waits in C until the watcher has recorded it, and only then runs the Python handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            with pytest.raises(StopSignal):
                state.event.wait(10)
                time.sleep(0.05)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
    assert state.signum == signal.SIGTERM


def test_interrupted_passes_through_except_exception():
    swallowed = []
    with stop_guard(never_abandon, grace=60):
        signal_main_thread(signal.SIGTERM, delay=0.05)
        with pytest.raises(StopSignal):
            try:
                threading.Event().wait(30)
            except Exception as err:  # what a library might do around a blocking call
                swallowed.append(err)
    assert swallowed == []


def test_only_the_first_signal_interrupts():
    with stop_guard(never_abandon, grace=60) as state:
        signal_main_thread(signal.SIGTERM, delay=0.05)
        with pytest.raises(StopSignal):
            time.sleep(30)
        signal_main_thread(signal.SIGINT).join()
        time.sleep(0.05)  # the handler runs here, and must not raise
    assert state.signum == signal.SIGTERM


def test_shielded_state_only_records():
    with stop_guard(never_abandon, grace=60) as state:
        state.shield()
        signal_main_thread(signal.SIGUSR1).join()
        time.sleep(0.05)
    assert state.signum == signal.SIGUSR1 and state.requested()


def test_handlers_and_wakeup_fd_are_restored():
    before = {s: signal.getsignal(s) for s in HANDLED}
    with stop_guard(never_abandon, grace=60):
        assert all(signal.getsignal(s) not in (before[s], signal.SIG_DFL) for s in HANDLED)
    assert {s: signal.getsignal(s) for s in HANDLED} == before
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    assert current == -1
