"""No credential reaches a log line, an exception message or a report entry, whatever fails.

Recognisable fake secrets sit in the environment (and a real key/secret pair in SeaweedFS); a
series of staging calls that succeed and fail runs with every logger at DEBUG, and all the text
they produced is searched for each secret.
"""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from tests.support import seaweed
from tests.support.samples import payload
from wrapper.errors import TrfError
from wrapper.staging import publish_outputs, report_entry, resolve_one, stage_inputs

BEARER = "FAKEBEARER-dune-0f9e8d7c6b5a"
TOKEN_IN_FILE = "FAKEFILETOKEN-dune-a1b2c3d4e5"
PROXY_CONTENT = "FAKEPROXYCONTENT-dune-5e6f7a8b"
SESSION_TOKEN = "FAKESESSIONTOKEN-dune-9a8b7c6d"
WRONG_SECRET = "FAKEWRONGSECRET-dune-1234abcd"
URL_PASSWORD = "FAKEURLPASSWORD-dune-77"
URL_SIGNATURE = "FAKESIGNATURE0123456789abcdef"


def run_everything(env, bucket, http_server, options, workdir):
    """Staging calls that succeed and fail; returns the text of every error and report entry."""
    texts = []

    def attempt(call):
        try:
            result = call()
        except TrfError as err:
            texts.extend([err.message, str(err), repr(err), getattr(err, "source", "")])
            return
        items = result if isinstance(result, tuple) else (result,)
        texts.extend(json.dumps(report_entry(item), default=str) for item in items)
        for item in items:
            if getattr(item, "handle", None) is not None:
                item.handle.close()

    signed = (f"http://user:{URL_PASSWORD}@127.0.0.1:{http_server.port}/data/ev2.h5?"
              f"X-Amz-Credential=AKIDUNESEAWEEDTEST01%2F20250101&X-Amz-Signature={URL_SIGNATURE}")
    http_server.add("/data/ev2.h5", b"served", fail_first=1)
    attempt(lambda: stage_inputs([f"s3://{bucket}/run1/ev.h5"], options))
    direct = dataclasses.replace(options, access_mode="direct")
    attempt(lambda: stage_inputs([f"s3://{bucket}/run1/ev.h5"], direct))
    attempt(lambda: stage_inputs([f"s3://{bucket}/run1/absent.h5"], options))
    attempt(lambda: stage_inputs([f"s3://{bucket}/../escape.h5"], options))
    attempt(lambda: stage_inputs([signed], options))
    attempt(lambda: stage_inputs([signed.replace("ev2", "absent")], options))
    attempt(lambda: publish_outputs([workdir / "pred.h5"], dataclasses.replace(
        options, output_prefix=f"s3://{bucket}/out/")))
    env.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    env.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    attempt(lambda: resolve_one(f"s3://{bucket}/run1/ev.h5", options))
    attempt(lambda: publish_outputs([workdir / "pred.h5"], dataclasses.replace(
        options, output_prefix=f"s3://{bucket}/out2/")))
    (port,) = seaweed.free_ports(1)
    attempt(lambda: stage_inputs([f"s3://{bucket}/run1/ev.h5"], dataclasses.replace(
        options, s3_endpoint=f"http://127.0.0.1:{port}", retries=1)))
    return texts


def test_no_secret_in_messages_reports_or_logs(s3env, clean_env, s3, bucket, http_server, options, workdir,
                                              tmp_path, caplog, capfd):
    token_file = tmp_path / "bt"
    token_file.write_text(TOKEN_IN_FILE)
    proxy = tmp_path / "x509up_u12345"
    proxy.write_text(PROXY_CONTENT)
    clean_env.setenv("BEARER_TOKEN", BEARER)
    clean_env.setenv("BEARER_TOKEN_FILE", str(token_file))
    clean_env.setenv("X509_USER_PROXY", str(proxy))
    s3.put_object(Bucket=bucket, Key="run1/ev.h5", Body=payload(300_000))   # the test's own client
    (workdir / "pred.h5").write_bytes(b"predictions")
    capfd.readouterr()
    caplog.set_level(logging.DEBUG)

    texts = run_everything(clean_env, bucket, http_server, options, workdir)

    captured = capfd.readouterr()
    logged = [r.getMessage() for r in caplog.records] + [caplog.text, captured.out, captured.err]
    everything = "\n".join(texts + logged)
    assert len(texts) >= 10 and any("botocore" in r.name for r in caplog.records)
    assert any(": permission:" in t for t in texts) and any(": connection:" in t for t in texts)
    for secret in (s3env.access_key, s3env.secret_key, BEARER, TOKEN_IN_FILE, PROXY_CONTENT, str(proxy),
                   SESSION_TOKEN, WRONG_SECRET, URL_PASSWORD, URL_SIGNATURE):
        assert secret not in everything, f"{secret[:12]}… leaked"


def test_redaction_keeps_what_operators_need(s3env, http_server, options):
    signed = f"http://u:{URL_PASSWORD}@127.0.0.1:{http_server.port}/x/absent.h5?X-Amz-Signature={URL_SIGNATURE}"
    with pytest.raises(TrfError) as info:
        stage_inputs([signed], options)
    message = info.value.message
    assert "127.0.0.1" in message and "/x/absent.h5" in message and "not-found" in message
    assert URL_PASSWORD not in message and URL_SIGNATURE not in message
