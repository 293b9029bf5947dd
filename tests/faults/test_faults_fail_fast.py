"""Fault scenarios: a job that cannot run on this node fails before it moves a byte.

The trf talks to the loopback SeaweedFS through a byte-counting TCP relay (tests/support/relay.py:
real sockets, real S3 requests): what crossed it is what the trf fetched, whatever the trf itself reports.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import boto3

from tests.faults.harness import expect_failure
from tests.support.relay import Relay


def test_require_gpu_on_a_cpu_node_exits_69_before_fetching_a_byte(trf, inputs, s3, scenario):
    body = inputs.events.read_bytes()
    uri = s3.put("run/ev.h5", body)
    scenario.s3_input(s3.client, s3.bucket, "run/ev.h5")
    target = urlsplit(s3.server.endpoint)
    proxy = Relay((target.hostname, target.port))
    try:
        # The proxy counts real S3 traffic: a plain download through it moves the whole object.
        direct = boto3.client("s3", endpoint_url=proxy.endpoint, aws_access_key_id=s3.server.access_key,
                              aws_secret_access_key=s3.server.secret_key, region_name="us-east-1")
        assert direct.get_object(Bucket=s3.bucket, Key="run/ev.h5")["Body"].read() == body
        assert proxy.connections >= 1 and proxy.to_client > len(body)
        before = (proxy.connections, proxy.to_server, proxy.to_client)

        run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={uri}",
                  f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", "--requireGPU",
                  env={"AWS_ENDPOINT_URL": proxy.endpoint})

        report = expect_failure(run, 69, acronym="TRF_EXEC_SETUP_FAIL", mentions=("--requireGPU",))
        assert (proxy.connections, proxy.to_server, proxy.to_client) == before, "the trf talked to S3"
        assert [s["name"] for s in report["executor"]] == ["platform"]
        assert report["files"]["input"] == []
        assert not (run.jobdir / "ev.h5").exists()
    finally:
        proxy.close()
