"""Fault scenarios: `--timeLimit` reached while staging, training and writing predictions.

Each ends with exit 67 (TRF_EXEC_TIMEOUT), both reports, nothing under a final output name and no
partial file; the scenario checks of the suite apply as everywhere. The staging case reads a real
S3 object through a bandwidth-limited relay (tests/support/relay.py), so the transfer is surely
under way when the deadline passes.
"""
from __future__ import annotations

import json
import os

from tests.faults.harness import expect_failure, size_of
from tests.support.relay import Relay

MiB = 1 << 20


def _timed_out(run, step: str) -> dict:
    report = expect_failure(run, 67, acronym="TRF_EXEC_TIMEOUT", mentions=("--timeLimit",))
    failed = [s["name"] for s in report["executor"] if s["statusOK"] is False]
    assert failed == [step], report["executor"]
    return report


def test_time_limit_while_staging_stops_the_transfer(trf, inputs, s3, jobdir):
    uri = s3.put("slow/big.h5", os.urandom(64 * MiB))
    host, port = s3.server.endpoint.rsplit("/", 1)[-1].split(":")
    relay = Relay((host, int(port)), rate=MiB // 2)     # 4 parts at once: 64 MiB take 32 s or more
    try:
        running = trf.start("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={uri}",
                            f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", "--timeLimit=8",
                            env={"AWS_ENDPOINT_URL": relay.endpoint})
        running.wait_for(lambda: any(".part" in p.name and size_of(p) > 0 for p in jobdir.iterdir()),
                         "the first bytes of big.h5", poll=0.01)
        run = running.finish(timeout=120)
    finally:
        relay.close()

    _timed_out(run, "stage-in")
    assert "while staging" in run.report["exitMsg"]
    assert not [p.name for p in jobdir.iterdir() if "big.h5" in p.name]


def test_time_limit_25_on_a_long_training(trf, inputs, jobdir):
    # the done-when: a long training with --timeLimit=25 ends with 67, its report, no output
    run = trf("--mode=train", "--modelConfig=tiny", "--batchSize=2", f"--inputEventsFile={inputs.events}",
              "--epochs=100000", "--validationSplit=0", "--outputModelFile=trained.keras",
              "--outputMetricsFile=metrics.json", "--timeLimit=25", timeout=300)   # a hang guard, not a timing

    _timed_out(run, "payload")
    assert not (jobdir / "trained.keras").exists() and not (jobdir / "metrics.json").exists()


def test_time_limit_while_predictions_are_written(trf, inputs, jobdir, tmp_path):
    # the same four events 1000 times: inference outlasts the limit, whatever the start-up took
    listing = tmp_path / "inputs.json"
    listing.write_text(json.dumps({"inputEventsFile": [str(inputs.events)] * 1000}))

    run = trf("--mode=infer", "--modelConfig=tiny", f"--argJSON={listing}", f"--modelFile={inputs.model}",
              "--outputPredFile=pred.h5", "--timeLimit=60", timeout=400)

    _timed_out(run, "payload")
    assert "inference:" in run.stdout          # predictions were being written when time ran out
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]
