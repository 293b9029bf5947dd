"""Fault scenarios: an `--outputPrefix` upload that fails.

The outputs are written in the job directory first; when their upload fails the job exits 11 and
removes them (a failed job leaves nothing under a final name). Besides the suite's checks, each
scenario lists the real SeaweedFS under the prefix: no multipart upload may be left open there and
no object either (a failed job publishes nothing).
"""
from __future__ import annotations

from tests.faults.harness import expect_failure
from tests.support import seaweed


def test_upload_refused_by_the_store_leaves_nothing_on_s3(trf, inputs, s3, scenario, jobdir):
    scenario.s3_upload_target(s3.client, s3.bucket, "out/")

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", f"--outputPrefix=s3://{s3.bucket}/out/",
              env={**s3.env, "AWS_SECRET_ACCESS_KEY": scenario.secrets.wrong_secret})

    expect_failure(run, 11, cause="permission", mentions=("pred.h5",))
    assert not (jobdir / "pred.h5").exists()


def test_upload_endpoint_down_is_a_connection_failure(trf, inputs, s3, scenario):
    scenario.s3_upload_target(s3.client, s3.bucket, "")      # nothing reached the suite's store either
    (port,) = seaweed.free_ports(1)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", f"--outputPrefix=s3://{s3.bucket}/out/",
              env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})

    expect_failure(run, 11, cause="connection", mentions=("pred.h5",))
