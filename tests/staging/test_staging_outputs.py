"""Publishing outputs and checkpoints to a real SeaweedFS: verified uploads and named failures (exit 11)."""
from __future__ import annotations

import dataclasses
import zlib

import pytest

from tests.support import seaweed
from tests.support.samples import payload
from wrapper import exitcodes
from wrapper.errors import OutputFileError
from wrapper.staging import publish_outputs, report_entry

MiB = 1 << 20


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def assert_output_failure(err: OutputFileError, cause: str) -> None:
    assert err.cause == cause, err.message
    assert f": {cause}:" in err.message
    assert err.exit_code == exitcodes.OUTPUT_FILE_ERROR == 11
    assert seaweed.SECRET_KEY not in err.message and seaweed.ACCESS_KEY not in err.message


def test_outputs_upload_multipart_and_verify(s3env, s3, bucket, options, workdir):
    blobs = {"pred.h5": payload(5 * MiB + 7), "metrics.json": b'{"mean_iou": 0.9}'}
    for name, data in blobs.items():
        (workdir / name).write_bytes(data)
    run = dataclasses.replace(options, output_prefix=f"s3://{bucket}/outputs/task1/", part_size=2 * MiB)
    published = publish_outputs([workdir / name for name in blobs], run)
    for item, (name, data) in zip(published, blobs.items()):
        assert item.url == f"s3://{bucket}/outputs/task1/{name}"
        assert item.size == len(data) and item.adler32 == adler(data)
        stored = s3.get_object(Bucket=bucket, Key=f"outputs/task1/{name}")
        assert stored["Body"].read() == data and stored["Metadata"]["adler32"] == adler(data)
    entry = report_entry(published[0])
    assert entry["url"] == published[0].url and entry["name"] == "pred.h5" and entry["rate_mib_s"] >= 0


def test_without_prefix_outputs_are_reported_in_place(clean_env, options, workdir):
    (workdir / "pred.h5").write_bytes(b"local")
    (item,) = publish_outputs([workdir / "pred.h5"], options)
    assert item.url == (workdir / "pred.h5").resolve().as_uri() and item.adler32 == adler(b"local")


def test_empty_output_is_missing(clean_env, options, workdir):
    (workdir / "pred.h5").write_bytes(b"")
    with pytest.raises(OutputFileError) as info:
        publish_outputs([workdir / "pred.h5"], options)
    assert_output_failure(info.value, "missing")


@pytest.mark.parametrize("name", ["../pred.h5", "sub/pred.h5", ".pred.h5", "pred\u2215x.h5"])
def test_outputs_must_be_lfns_in_the_job_directory(clean_env, options, workdir, name):
    target = workdir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x")
    with pytest.raises(OutputFileError) as info:
        publish_outputs([target], dataclasses.replace(options, output_prefix="s3://bucket/out/"))
    assert_output_failure(info.value, "hostile-name")


def test_wrong_secret_on_upload_is_permission(s3env, clean_env, bucket, options, workdir):
    (workdir / "pred.h5").write_bytes(b"predictions")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + "Z" * 20)
    with pytest.raises(OutputFileError) as info:
        publish_outputs([workdir / "pred.h5"], dataclasses.replace(options, output_prefix=f"s3://{bucket}/o/"))
    assert_output_failure(info.value, "permission")
    assert "not-the-secret" not in info.value.message


def test_endpoint_down_on_upload_is_connection(s3env, options, workdir):
    (workdir / "pred.h5").write_bytes(b"predictions")
    (port,) = seaweed.free_ports(1)
    run = dataclasses.replace(options, output_prefix="s3://out/p/", s3_endpoint=f"http://127.0.0.1:{port}",
                              retries=1)
    with pytest.raises(OutputFileError) as info:
        publish_outputs([workdir / "pred.h5"], run)
    assert_output_failure(info.value, "connection")
    assert "after 2 attempts" in info.value.message


def test_unknown_prefix_scheme_is_refused(clean_env, options, workdir):
    (workdir / "pred.h5").write_bytes(b"predictions")
    with pytest.raises(OutputFileError) as info:
        publish_outputs([workdir / "pred.h5"], dataclasses.replace(options, output_prefix="gsiftp://se/dune/"))
    assert_output_failure(info.value, "bad-uri")


