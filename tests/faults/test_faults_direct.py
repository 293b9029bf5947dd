"""Direct access (`--accessMode=direct`) through the CLI: events read in place from S3 by ranged GETs.

The control shows the path works end to end (nothing copied into the job directory); the fault
kills the S3 server while the job is reading events through a bandwidth-limited relay, so the
reads are surely under way, and expects exit 9 naming the input and the cause.
"""
from __future__ import annotations

import numpy as np

from tests.faults.harness import expect_failure, size_of
from tests.support.relay import Relay
from tests.support import seaweed

MiB = 1 << 20
INFER = ("--mode=infer", "--modelConfig=tiny", "--outputPredFile=pred.h5", "--accessMode=direct")


def test_direct_access_through_the_cli_reads_in_place(trf, inputs, s3, jobdir, scenario):
    scenario.control()    # a job meant to succeed: the fault below needs this path to work
    uri = s3.put("direct/ev.h5", inputs.events.read_bytes())
    scenario.s3_input(s3.client, s3.bucket, "direct/ev.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}", env=s3.env)

    assert run.rc == 0, run.stderr[-3000:]
    (entry,) = run.report["files"]["input"][0]["subFiles"]
    assert (entry["source"], entry["access"], entry["nentries"]) == ("s3", "direct", 4)
    assert entry["direct"]["bytes_fetched"] > 0
    assert not (jobdir / "ev.h5").exists()
    assert run.report["files"]["output"][0]["subFiles"][0]["nentries"] == 4


def _incompressible_events(path, events: int):
    """Valid events whose pixels are noise, so the file is as large as its arrays (~0.5 MiB an event)."""
    from payload.events import write_events

    rng = np.random.default_rng(7)
    images = rng.random((events, 320, 320), dtype=np.float32)
    labels = rng.integers(0, 3, (events, 320, 320), dtype=np.uint8)
    write_events(path, images, labels, np.arange(events, dtype=np.int64))
    return path


def test_s3_server_dies_while_direct_access_reads(trf, inputs, tmp_path, secrets, jobdir):
    private = seaweed.start(tmp_path / "doomed", access_key=secrets.access_key, secret_key=secrets.secret_key)
    host, port = private.endpoint.rsplit("/", 1)[-1].split(":")
    relay = Relay((host, int(port)), rate=MiB)
    stopped = False
    try:
        client = private.client()
        client.create_bucket(Bucket="doomed")
        body = _incompressible_events(tmp_path / "noise.h5", 96).read_bytes()
        client.put_object(Bucket="doomed", Key="run/noise.h5", Body=body)
        running = trf.start(*INFER, "--inputEventsFile=s3://doomed/run/noise.h5", f"--modelFile={inputs.model}",
                            env={**private.env(), "AWS_ENDPOINT_URL": relay.endpoint})
        running.wait_for(lambda: "inference:" in running.stdout()
                         and any(p.name.startswith(".tmp.") and size_of(p) > 0 for p in jobdir.iterdir()),
                         "predictions of events read in place", poll=0.05)
        seaweed.stop(private, kill=True)
        stopped = True
        # the relay's upstream stays dead: its port is held, so the relay's every new connection is
        # refused (and it closes the client's) instead of reaching another test's server
        with seaweed.hold_dead(private):
            run = running.finish(timeout=240)
    finally:
        relay.close()
        if not stopped:
            seaweed.stop(private, kill=True)

    # as its in-process twin (tests/staging/test_staging_direct.py): the connection broke off
    expect_failure(run, 9, cause="connection",
                   mentions=("s3://doomed/run/noise.h5", f"connection to {relay.endpoint} broke off"))
    assert not (jobdir / "noise.h5").exists()
