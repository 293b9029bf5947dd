"""Fault scenarios: inputs from object storage and HTTPS that cannot be had, or not whole.

S3 is a real SeaweedFS on loopback holding the suite's keys; HTTPS is a loopback server with the
suite's certificate that requires the suite's bearer token. Every failure must name the input,
its source and the cause (`errorCause`), and leave no partial file behind.
"""
from __future__ import annotations

import os

from tests.faults.harness import expect_failure, size_of
from tests.support import seaweed

MiB = 1 << 20
INFER = ("--mode=infer", "--modelConfig=tiny", "--outputPredFile=pred.h5")


def _parts(jobdir):
    return [p for p in jobdir.iterdir() if ".part" in p.name]


def test_s3_endpoint_down_is_a_connection_failure_after_the_retries(trf, inputs, jobdir):
    (port,) = seaweed.free_ports(1)

    run = trf(*INFER, "--inputEventsFile=s3://events/run1/ev.h5", f"--modelFile={inputs.model}",
              env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})

    expect_failure(run, 9, cause="connection", mentions=(
        "s3://events/run1/ev.h5 (s3)", f"could not connect to the endpoint http://127.0.0.1:{port}",
        "after 4 attempts"))


def test_s3_server_killed_mid_transfer(trf, inputs, tmp_path, secrets, jobdir):
    private = seaweed.start(tmp_path / "doomed", access_key=secrets.access_key, secret_key=secrets.secret_key)
    stopped = False
    try:
        client = private.client()
        client.create_bucket(Bucket="doomed")
        size = 128 * MiB
        client.put_object(Bucket="doomed", Key="run/big.h5", Body=os.urandom(size))
        running = trf.start(*INFER, "--inputEventsFile=s3://doomed/run/big.h5", f"--modelFile={inputs.model}",
                            env=private.env())
        seen = []

        def bytes_arrived() -> bool:
            seen[:] = [size_of(p) for p in _parts(jobdir)]
            return any(seen)

        running.wait_for(bytes_arrived, "the first bytes of big.h5", poll=0.002)
        seaweed.stop(private, kill=True)
        stopped = True
        # the dead endpoint stays dead: its port is held, so no other test's server can answer there
        with seaweed.hold_dead(private):
            run = running.finish()
    finally:
        if not stopped:
            seaweed.stop(private, kill=True)

    assert 0 < max(seen) < size, "the transfer was not under way when the server died"
    # as its in-process twin (tests/staging/test_staging_s3.py): every retry is refused
    expect_failure(run, 9, cause="connection", mentions=("s3://doomed/run/big.h5 (s3)", private.endpoint))
    assert not (jobdir / "big.h5").exists()


def test_s3_access_denied_is_permission_with_the_status(trf, inputs, s3, scenario):
    uri = s3.put("run1/ev.h5", inputs.events.read_bytes())
    scenario.s3_input(s3.client, s3.bucket, "run1/ev.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}",
              env={**s3.env, "AWS_SECRET_ACCESS_KEY": scenario.secrets.wrong_secret})

    expect_failure(run, 9, cause="permission", mentions=(f"{uri} (s3)", "HTTP 403", "access key"))


def test_s3_missing_object_is_not_found_before_anything_is_fetched(trf, inputs, s3, jobdir):
    uri = s3.put("run1/ev.h5", inputs.events.read_bytes()).replace("ev.h5", "ev2.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}", env=s3.env)

    expect_failure(run, 9, cause="not-found",
                   mentions=(f"{uri} (s3)", f"no such key in bucket '{s3.bucket}'"))
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def test_s3_truncated_object_is_found_corrupt_naming_the_file(trf, inputs, s3, scenario):
    whole = inputs.events.read_bytes()
    uri = s3.put("run1/cut.h5", whole[:100_000])
    scenario.s3_input(s3.client, s3.bucket, "run1/cut.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}", env=s3.env)

    report = expect_failure(run, 9, cause="corrupt", mentions=("cut.h5", "truncated", "100000"))
    assert report["files"]["input"][0]["subFiles"][0]["uri"] == uri


def test_s3_checksum_mismatch_leaves_no_staged_file(trf, inputs, s3, scenario, jobdir):
    uri = s3.put("run1/ev.h5", inputs.events.read_bytes())
    scenario.s3_input(s3.client, s3.bucket, "run1/ev.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}#ad:0badc0de", f"--modelFile={inputs.model}", env=s3.env)

    expect_failure(run, 9, cause="checksum-mismatch", mentions=(f"{uri} (s3)", "expected 0badc0de"))
    assert not (jobdir / "ev.h5").exists()


def test_https_server_error_is_retried_then_the_job_succeeds(trf, inputs, https, jobdir):
    url = https.add("/data/ev.h5", inputs.events.read_bytes(), fail_first=2,
                    token=trf.scenario.secrets.bearer)

    run = trf(*INFER, f"--inputEventsFile={url}", f"--modelFile={inputs.model}")

    assert run.rc == 0, run.stderr[-3000:]
    (entry,) = run.report["files"]["input"][0]["subFiles"]
    assert (entry["source"], entry["attempts"], entry["nentries"]) == ("https", 3, 4)
    assert [r.status for r in https.records][:3] == [500, 500, 200]
    assert all(r.authorized for r in https.records)          # the bearer token went along each time
    assert run.report["files"]["output"][0]["subFiles"][0]["nentries"] == 4


def test_https_server_error_forever_gives_up_after_the_retries(trf, inputs, https, jobdir):
    url = https.add("/data/ev.h5", inputs.events.read_bytes(), fail_first=-1,
                    token=trf.scenario.secrets.bearer)

    run = trf(*INFER, f"--inputEventsFile={url}", f"--modelFile={inputs.model}")

    expect_failure(run, 9, cause="server-error",
                   mentions=("/data/ev.h5 (https)", "HTTP 500", "after 4 attempts"))
    assert len(https.records) == 4 and {r.status for r in https.records} == {500}


def test_https_body_cut_short_every_time_is_a_size_mismatch(trf, inputs, https, jobdir):
    whole = inputs.events.read_bytes()
    url = https.add("/data/ev.h5", whole, truncate_at=len(whole) // 3, token=trf.scenario.secrets.bearer)

    run = trf(*INFER, f"--inputEventsFile={url}", f"--modelFile={inputs.model}")

    expect_failure(run, 9, cause="size-mismatch", mentions=("/data/ev.h5 (https)",))
    assert [r.method for r in https.records] == ["HEAD"] + ["GET"] * 4    # bounded: 1 + 3 retries
    assert not (jobdir / "ev.h5").exists() and not _parts(jobdir)


def test_disk_full_is_found_before_an_s3_download(trf, inputs, s3, tmpfs, scenario):
    jobdir = tmpfs("1m")
    uri = s3.put("run1/big.h5", os.urandom(2 * MiB))
    scenario.s3_input(s3.client, s3.bucket, "run1/big.h5")

    run = trf(*INFER, f"--inputEventsFile={uri}", f"--modelFile={inputs.model}", env=s3.env, jobdir=jobdir)

    expect_failure(run, 9, cause="disk-full", mentions=("2097152 bytes", "--accessMode=direct"))
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def test_disk_full_during_an_https_download_of_unknown_size(trf, inputs, https, tmpfs):
    # no HEAD, no Range, no Content-Length: the size is unknown until the disk fills up
    jobdir = tmpfs("1m")
    url = https.add("/data/big.h5", os.urandom(2 * MiB), head_allowed=False, range_allowed=False,
                    no_length=True, token=trf.scenario.secrets.bearer)

    run = trf(*INFER, f"--inputEventsFile={url}", f"--modelFile={inputs.model}", jobdir=jobdir)

    expect_failure(run, 9, cause="disk-full", mentions=("/data/big.h5 (https)", "no space left"))
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]
