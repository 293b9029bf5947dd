"""Fault scenarios: the job is stopped while it stages, trains or writes, and retried after SIGKILL.

The pilot stops a job with SIGTERM to its process group and SIGKILL 10 s later; here SIGKILL follows
after 2 s (`Running.stop`), so a job that has not written its reports by then fails the scenario:
the exit code would be -9 and the reports missing. The retry scenario kills training outright and
runs the job again in a new job directory with the same checkpoint prefix, as a PanDA retry does.
"""
from __future__ import annotations

import json
import os
import re
import signal
import zlib

import numpy as np

from tests.faults.harness import expect_failure, size_of

MiB = 1 << 20
TRAIN = ("--mode=train", "--modelConfig=tiny", "--batchSize=2", "--outputModelFile=trained.keras",
         "--outputMetricsFile=metrics.json")
CHECKPOINT = re.compile(r"^ckpt-e(\d{4})-s(\d{7})$")


def _stopped_by_sigterm(run, *mentions: str) -> dict:
    report = expect_failure(run, 143, acronym="TRF_SIG_TERM", mentions=("job stopped by SIGTERM", *mentions))
    assert any(step["statusOK"] is False for step in report["executor"])
    return report


def test_sigterm_during_staging_reports_and_leaves_no_partial_input(trf, inputs, https, jobdir):
    # Every body breaks off at 2 MiB: the download resumes, backing off, with a .part on disk.
    token = trf.scenario.secrets.bearer
    urls = [https.add(f"/data/big{i}.h5", os.urandom(3 * MiB), truncate_at=2 * MiB, token=token)
            for i in range(2)]
    running = trf.start("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={','.join(urls)}",
                        f"--modelFile={inputs.model}", "--outputPredFile=pred.h5")
    running.wait_for(lambda: any(p.name.endswith(".part") and size_of(p) > 0 for p in jobdir.iterdir()),
                     "a partial input on disk", poll=0.01)

    run = running.stop(signal.SIGTERM)

    report = _stopped_by_sigterm(run)
    assert [s["name"] for s in report["executor"]] == ["platform", "stage-in"]
    assert not {"big0.h5", "big1.h5"} & {p.name for p in jobdir.iterdir()}


def _complete_checkpoint(directory) -> tuple:
    """(epoch, arrays) of the newest complete checkpoint in `directory`, every file read back."""
    complete = sorted(p for p in directory.iterdir()
                      if CHECKPOINT.match(p.name) and (p / "state.json").is_file())
    assert complete, f"no complete checkpoint in {directory}"
    newest = complete[-1]
    state = json.loads((newest / "state.json").read_text())
    arrays = 0
    for name in ("model.npz", "optimizer.npz"):
        with np.load(newest / name) as saved:
            arrays += sum(np.isfinite(saved[key]).all() for key in saved.files)
    return state["epoch"], arrays


def test_sigterm_during_training_keeps_the_last_complete_checkpoint(trf, inputs, jobdir):
    running = trf.start(*TRAIN, f"--inputEventsFile={inputs.events}", "--epochs=1000")
    running.wait_for_output("train epoch 3/1000")

    run = running.stop(signal.SIGTERM)

    report = _stopped_by_sigterm(run)
    assert report["executor"][-1]["name"] == "payload"
    epoch, arrays = _complete_checkpoint(jobdir / "checkpoints")
    assert epoch >= 2 and arrays > 10
    assert not (jobdir / "trained.keras").exists() and not (jobdir / "metrics.json").exists()


def test_sigterm_while_predictions_are_written_removes_them(trf, inputs, jobdir):
    # the same four events sixty times: long enough to be stopped in the middle of the file
    many = ",".join([str(inputs.events)] * 60)
    running = trf.start("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={many}",
                        f"--modelFile={inputs.model}", "--outputPredFile=pred.h5")
    running.wait_for(lambda: "inference:" in running.stdout()
                     and any(p.name.startswith(".tmp.") and size_of(p) > 0 for p in jobdir.iterdir()),
                     "predictions being written", poll=0.02)

    run = running.stop(signal.SIGTERM)

    _stopped_by_sigterm(run)
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def _store_checkpoints(s3, prefix: str) -> dict:
    """{name: manifest} of the complete checkpoints under `prefix`, each file checked against it."""
    listing = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    found = {}
    for item in listing:
        name, _, file = item["Key"][len(prefix):].partition("/")
        if file == "MANIFEST.json":
            manifest = json.loads(s3.client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read())
            for entry in manifest["files"]:
                key = f"{prefix}{name}/{entry['name']}"
                body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
                assert len(body) == entry["size"], f"{name}/{entry['name']} is not whole"
                assert f"{zlib.adler32(body) & 0xFFFFFFFF:08x}" == entry["adler32"]
            found[name] = manifest
    return found


def test_sigkill_during_training_then_the_retry_resumes_from_the_store(trf, inputs, s3, tmp_path, jobdir):
    env = {**s3.env, "PanDA_TaskID": "4711"}
    args = (*TRAIN, f"--inputEventsFile={inputs.events}", "--epochs=12",
            f"--checkpointPrefix=s3://{s3.bucket}/dune/task-{{taskid}}/")
    first = trf.start(*args, env={**env, "PANDAID": "1001"})
    first.wait_for_output("uploaded to")

    first.kill()                                   # SIGKILL: no handler, no cleanup, no report
    killed = first.finish()

    assert killed.rc == -signal.SIGKILL and killed.report is None
    assert not (jobdir / "trained.keras").exists()
    stored = _store_checkpoints(s3, "dune/task-4711/")
    assert stored, "no complete checkpoint reached the store before SIGKILL"
    newest = max(stored)

    retry_dir = tmp_path / "retry-job"
    retry_dir.mkdir()
    retry = trf(*args, jobdir=retry_dir, env={**env, "PANDAID": "1002"})

    assert retry.rc == 0, retry.stderr[-3000:]
    resumed = retry.report["resume"]
    assert (resumed["checkpoint"], resumed["resumedFromEpoch"]) == (newest, stored[newest]["epoch"])
    assert resumed["resumedFromEpoch"] >= 1 and "resuming: " in retry.stdout
    metrics = json.loads((retry_dir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == resumed["resumedFromEpoch"] and metrics["epochs_run"] == 12
    assert (retry_dir / "trained.keras").stat().st_size > 0
