"""Direct access: h5py reading real HDF5 event files in place from SeaweedFS and HTTP, in bounded memory."""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import seaweed
from tests.support.samples import files_under, write_events
from wrapper.errors import InputFileError
from wrapper.staging import report_entry, stage_inputs
from wrapper.staging.direct import BlockCachedFile

KiB = 1 << 10


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    return write_events(tmp_path_factory.mktemp("events") / "ev.h5", events=24)


def read_all(source) -> dict:
    with h5py.File(source, "r") as f:
        return {"images": np.concatenate([f["images"][i:i + 4] for i in range(0, len(f["images"]), 4)]),
                "labels": f["labels"][:], "event_id": f["event_id"][:], "attrs": dict(f.attrs)}


def assert_same(a: dict, b: dict) -> None:
    for key in ("images", "labels", "event_id"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["attrs"].keys() == b["attrs"].keys()
    for key, value in a["attrs"].items():
        np.testing.assert_array_equal(value, b["attrs"][key])


def test_h5py_reads_s3_in_place_with_bounded_cache(s3env, s3, bucket, events_file, options, workdir):
    s3.put_object(Bucket=bucket, Key="run1/ev.h5", Body=events_file.read_bytes())
    direct = dataclasses.replace(options, access_mode="direct", block_size=64 * KiB, cache_bytes=256 * KiB,
                                 readahead_blocks=2)
    (staged,) = stage_inputs([f"s3://{bucket}/run1/ev.h5"], direct)
    try:
        assert staged.local_path is None and staged.size == events_file.stat().st_size
        assert_same(read_all(staged.handle), read_all(events_file))
        stats = staged.handle.stats()
        assert 0 < stats["peak_cached_bytes"] <= 256 * KiB
        assert stats["bytes_fetched"] >= staged.size and stats["requests"] > staged.size // (64 * KiB)
        entry = report_entry(staged)
        assert entry["access"] == "direct" and entry["direct"]["requests"] == stats["requests"]
        assert entry["bytes_transferred"] == stats["bytes_fetched"] and entry["rate_mib_s"] > 0
    finally:
        staged.handle.close()
    assert files_under(workdir) == set()


def test_payload_reads_batches_from_the_handle(s3env, s3, bucket, events_file, options):
    events = pytest.importorskip("payload.events")
    s3.put_object(Bucket=bucket, Key="ev.h5", Body=events_file.read_bytes())
    (staged,) = stage_inputs([f"s3://{bucket}/ev.h5"], dataclasses.replace(options, access_mode="direct"))
    try:
        remote = list(events.iter_batches([staged.handle], 5, with_labels=True))
        local = list(events.iter_batches([events_file], 5, with_labels=True))
    finally:
        staged.handle.close()
    assert [b.event_id.tolist() for b in remote] == [b.event_id.tolist() for b in local]
    for r, lo in zip(remote, local):
        np.testing.assert_array_equal(r.images, lo.images)
        np.testing.assert_array_equal(r.labels, lo.labels)


def test_h5py_reads_https_in_place(clean_env, http_server, events_file, options):
    url = http_server.add("/ev.h5", events_file.read_bytes())
    (staged,) = stage_inputs([url], dataclasses.replace(options, access_mode="direct", block_size=64 * KiB,
                                                         cache_bytes=128 * KiB))
    try:
        assert_same(read_all(staged.handle), read_all(events_file))
    finally:
        staged.handle.close()
    assert all(r.range for r in http_server.records if r.method == "GET")


def test_server_gone_mid_read_names_the_cause(clean_env, tmp_path, events_file, options):
    private = seaweed.start(tmp_path / "private")
    try:
        for name, value in private.env().items():
            clean_env.setenv(name, value)
        client = private.client()
        client.create_bucket(Bucket="direct")
        client.put_object(Bucket="direct", Key="ev.h5", Body=events_file.read_bytes())
        run = dataclasses.replace(options, access_mode="direct", block_size=64 * KiB, cache_bytes=128 * KiB,
                                  readahead_blocks=0, retries=1)
        (staged,) = stage_inputs(["s3://direct/ev.h5"], run)
        with h5py.File(staged.handle, "r") as f:
            first = f["images"][0]
            seaweed.stop(private, kill=True)
            with pytest.raises(InputFileError) as info:
                f["images"][-1]
        staged.handle.close()
        assert first.shape == (320, 320)
        assert info.value.cause == "connection" and info.value.exit_code == 9
        assert private.secret_key not in info.value.message
    finally:
        seaweed.stop(private, kill=True)


@settings(max_examples=60, deadline=None)
@given(reads=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 700)), min_size=1, max_size=40),
       block=st.sampled_from([64, 100, 256]), blocks=st.integers(2, 6), readahead=st.integers(0, 3))
def test_block_cache_returns_the_bytes_asked_for(reads, block, blocks, readahead):
    data = bytes(range(256)) * 19 + b"tail"
    fetched = []

    def fetch(start, stop):
        fetched.append((start, stop))
        return data[start:stop]

    handle = BlockCachedFile("x", len(data), fetch, block_size=block, cache_bytes=blocks * block,
                             readahead=readahead)
    try:
        for offset, length in reads:
            handle.seek(offset)
            assert handle.read(length) == data[offset:offset + length]
            assert handle.tell() == min(len(data), offset + length) if offset < len(data) else True
        assert handle.stats()["peak_cached_bytes"] <= blocks * block
        assert all(stop - start <= block and start % block == 0 for start, stop in fetched)
    finally:
        handle.close()


def test_sequential_reads_hit_the_readahead():
    data = bytes(1000) * 64
    handle = BlockCachedFile("x", len(data), lambda a, b: data[a:b], block_size=4000, cache_bytes=16000,
                             readahead=2)
    try:
        while handle.read(1000):
            pass
        stats = handle.stats()
    finally:
        handle.close()
    assert stats["requests"] == 16 and stats["misses"] == 2     # blocks 0 and 1; the rest came ahead
