"""Whole GETs are verified and renamed on their own transfer threads, with the outcomes the main
thread gave when it settled every file itself (wrapper.staging.s3.S3._whole_settled)."""
from __future__ import annotations

import zlib

import pytest

from tests.support.samples import files_under, payload
from wrapper.errors import InputFileError
from wrapper.staging import stage_inputs


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_many_small_objects_are_checked_on_their_threads(s3env, s3, bucket, options, workdir):
    blobs = {f"ev{i:02d}.h5": payload(50_000 + i, seed=i) for i in range(12)}
    for name, data in blobs.items():
        s3.put_object(Bucket=bucket, Key=name, Body=data)
    uris = [f"s3://{bucket}/{name}#ad:{adler(data)}" for name, data in blobs.items()]
    staged = stage_inputs(uris, options)
    assert [s.local_path.name for s in staged] == list(blobs)
    assert [s.adler32 for s in staged] == [adler(d) for d in blobs.values()]
    assert files_under(workdir) == set(blobs)

    uris[7] = f"s3://{bucket}/ev07.h5#ad:1a2b3c4d"
    for name in blobs:
        (workdir / name).unlink()
    with pytest.raises(InputFileError) as info:
        stage_inputs(uris, options)
    assert info.value.cause == "checksum-mismatch" and "ev07.h5" in info.value.message
    assert files_under(workdir) == set(blobs) - {"ev07.h5"}        # no .part left, the others staged


def test_a_rename_that_raises_is_raised_as_it_was(s3env, s3, bucket, options, workdir, monkeypatch):
    """Not a named input failure: an OSError of the rename itself reaches the caller unchanged."""
    from wrapper.staging import s3 as transfers

    s3.put_object(Bucket=bucket, Key="ev.h5", Body=b"fresh")
    broken = OSError(5, "rename refused")

    def refuse(part, final):
        raise broken

    monkeypatch.setattr(transfers, "finalize", refuse)
    with pytest.raises(OSError) as info:
        stage_inputs([f"s3://{bucket}/ev.h5"], options)
    assert info.value is broken
    assert files_under(workdir) == set()
