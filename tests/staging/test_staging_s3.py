"""S3 inputs against a real SeaweedFS on loopback: success paths and every bad-input case of issue 4."""
from __future__ import annotations

import dataclasses
import zlib

import pytest

from tests.support import seaweed
from tests.support.samples import files_under, payload
from wrapper import exitcodes
from wrapper.errors import InputFileError
from wrapper.staging import StagingOptions, report_entry, resolve_one, stage_inputs

MiB = 1 << 20


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def assert_input_failure(err: InputFileError, cause: str, workdir, *, name: str = "") -> None:
    """The common contract: named cause, exit 9, nothing left behind, no credential in the text."""
    assert err.cause == cause, err.message
    assert f": {cause}:" in err.message
    assert err.exit_code == exitcodes.INPUT_FILE_ERROR == 9
    assert files_under(workdir) == set(), files_under(workdir)
    assert seaweed.SECRET_KEY not in err.message and seaweed.ACCESS_KEY not in err.message
    if name:
        assert name in err.message


def test_copy_stages_several_files_in_parallel_verified(s3env, s3, bucket, options, workdir):
    blobs = {f"run1/ev{i}.h5": payload(3 * MiB + i, seed=i) for i in range(4)}
    for key, data in blobs.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    uris = [f"s3://{bucket}/{key}" for key in blobs]
    uris[0] += f"#ad:{adler(blobs['run1/ev0.h5'])}"
    small_parts = dataclasses.replace(options, part_size=1 * MiB, threads=3)

    staged = stage_inputs(uris, small_parts)

    assert [s.local_path.name for s in staged] == [f"ev{i}.h5" for i in range(4)]
    for item, data in zip(staged, blobs.values()):
        assert item.local_path.read_bytes() == data
        assert item.source == "s3" and item.size == len(data) and item.bytes_transferred == len(data)
        assert item.attempts == 1
    assert staged[0].adler32 == adler(blobs["run1/ev0.h5"]) and staged[1].adler32 is None
    assert files_under(workdir) == {f"ev{i}.h5" for i in range(4)}
    entry = report_entry(staged[0])
    assert entry["name"] == "ev0.h5" and entry["source"] == "s3" and entry["access"] == "copy"
    assert entry["bytes_transferred"] == len(blobs["run1/ev0.h5"]) and entry["rate_mib_s"] > 0


def test_glob_expands_to_matching_keys_one_level_deep(s3env, s3, bucket, options):
    for key in ("run1/a.h5", "run1/b.h5", "run1/notes.txt", "run1/deeper/c.h5", "run2/d.h5"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    staged = stage_inputs([f"s3://{bucket}/run1/*.h5", f"s3://{bucket}/run2/d.h5"], options)
    assert [s.local_path.name for s in staged] == ["a.h5", "b.h5", "d.h5"]
    assert staged[1].local_path.read_bytes() == b"run1/b.h5"


def test_glob_matching_nothing_is_not_found(s3env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="run1/a.txt", Body=b"x")
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/run1/*.h5"], options)
    assert_input_failure(info.value, "not-found", workdir)


def test_endpoint_option_wins_and_s3_endpoint_url_is_read(seaweed_server, clean_env, s3, bucket, options):
    s3.put_object(Bucket=bucket, Key="m.keras", Body=b"model")
    for name, value in seaweed_server.env().items():
        if name != "AWS_ENDPOINT_URL":
            clean_env.setenv(name, value)
    clean_env.setenv("S3_ENDPOINT_URL", seaweed_server.endpoint)
    assert resolve_one(f"s3://{bucket}/m.keras", options).local_path.read_bytes() == b"model"
    clean_env.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    path_style = dataclasses.replace(options, s3_endpoint=seaweed_server.endpoint, s3_path_style=True)
    assert resolve_one(f"s3://{bucket}/m.keras", path_style).size == 5


def test_checksum_mismatch_leaves_nothing(s3env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="ev.h5", Body=payload(100_000))
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/ev.h5#ad:1a2b3c4d"], options)
    assert_input_failure(info.value, "checksum-mismatch", workdir, name="ev.h5")
    assert "1a2b3c4d" in info.value.message


def test_missing_key_is_not_found_before_any_download(s3env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="present.h5", Body=payload(2 * MiB))
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/present.h5", f"s3://{bucket}/absent.h5"], options)
    assert_input_failure(info.value, "not-found", workdir, name="absent.h5")
    assert f"no such key in bucket {bucket!r}" in info.value.message


def test_missing_bucket_is_named(s3env, options, workdir):
    with pytest.raises(InputFileError) as info:
        stage_inputs(["s3://no-such-bucket-here/ev.h5"], options)
    assert_input_failure(info.value, "not-found", workdir)
    assert "bucket 'no-such-bucket-here' does not exist" in info.value.message


def test_wrong_secret_is_permission(s3env, clean_env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="ev.h5", Body=b"data")
    wrong = "wrong-secret-" + "Q" * 20
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/ev.h5"], options)
    assert_input_failure(info.value, "permission", workdir)
    assert wrong not in info.value.message and "HTTP 403" in info.value.message


def test_no_credentials_goes_unsigned_and_is_denied(seaweed_server, clean_env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="ev.h5", Body=b"data")
    clean_env.setenv("AWS_ENDPOINT_URL", seaweed_server.endpoint)
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/ev.h5"], options)
    assert_input_failure(info.value, "permission", workdir)
    assert "no credentials were found" in info.value.message


def test_session_server_listens_on_loopback_only(seaweed_server):
    addresses = seaweed.listening(seaweed_server.pid)
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses)
    assert {int(a.rsplit(":", 1)[1]) for a in addresses} <= set(seaweed_server.ports)
    assert seaweed_server.endpoint.rsplit(":", 1)[1] in {a.rsplit(":", 1)[1] for a in addresses}


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_endpoint_down_is_connection_with_counted_attempts(s3env, options, workdir, mode):
    (port,) = seaweed.free_ports(1)
    down = dataclasses.replace(options, s3_endpoint=f"http://127.0.0.1:{port}", retries=2, s3_retry_mode=mode)
    with pytest.raises(InputFileError) as info:
        stage_inputs(["s3://events/run1/ev.h5"], down)
    assert_input_failure(info.value, "connection", workdir)
    assert f"127.0.0.1:{port}" in info.value.message
    assert "after 3 attempts" in info.value.message


def test_server_killed_mid_transfer(seaweed_server, clean_env, tmp_path, options, workdir):
    private = seaweed.start(tmp_path / "private")
    try:
        for name, value in private.env().items():
            clean_env.setenv(name, value)
        client = private.client()
        client.create_bucket(Bucket="big")
        client.put_object(Bucket="big", Key="big.h5", Body=payload(48 * MiB))
        killed = []

        def kill_on_first_bytes(uri, received):
            if not killed:
                killed.append(received)
                seaweed.stop(private, kill=True)

        run = dataclasses.replace(options, part_size=4 * MiB, threads=2, retries=1,
                                  progress=kill_on_first_bytes)
        with pytest.raises(InputFileError) as info:
            stage_inputs(["s3://big/big.h5"], run)
        assert killed and killed[0] < 48 * MiB
        assert_input_failure(info.value, "connection", workdir, name="big.h5")
        assert "attempts" in info.value.message
    finally:
        seaweed.stop(private, kill=True)


def test_truncated_object_against_catalogue_size(s3env, s3, bucket, options, workdir):
    whole = payload(300_000)
    s3.put_object(Bucket=bucket, Key="run1/ev.h5", Body=whole[:200_000])
    (workdir / "PoolFileCatalog.xml").write_text(
        '<?xml version="1.0" ?>\n<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory">\n<POOLFILECATALOG>'
        f'<File ID="4a5b"><physical><pfn filetype="ROOT_All" name="s3://{bucket}/run1/ev.h5"/></physical>'
        f'<logical><lfn name="ev.h5"/></logical><metadata att_name="fsize" att_value="{len(whole)}"/>'
        f'<metadata att_name="adler32" att_value="{adler(whole)}"/></File></POOLFILECATALOG>')
    with pytest.raises(InputFileError) as info:
        stage_inputs(["ev.h5"], options)
    assert info.value.cause == "size-mismatch" and "(pfc)" in info.value.message
    assert files_under(workdir) == {"PoolFileCatalog.xml"}


def test_catalogue_turl_with_checksum(s3env, s3, bucket, options, workdir):
    data = payload(50_000)
    s3.put_object(Bucket=bucket, Key="rucio/dune/ab/cd/ev-0001.h5", Body=data)
    (workdir / "PoolFileCatalog.xml").write_text(
        '<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory">\n<POOLFILECATALOG><File ID="g1"><physical>'
        f'<pfn filetype="ROOT_All" name="s3://{bucket}/rucio/dune/ab/cd/ev-0001.h5"/></physical><logical/>'
        f'<metadata att_name="adler32" att_value="ad:{adler(data)}"/></File></POOLFILECATALOG>')
    (staged,) = stage_inputs(["ev-0001.h5"], options)
    assert staged.source == "pfc" and staged.adler32 == adler(data)
    assert staged.local_path == workdir / "ev-0001.h5" and staged.local_path.read_bytes() == data


def test_staged_lfn_needs_no_storage(clean_env, workdir, options):
    (workdir / "ev.h5").write_bytes(b"staged by the pilot")
    (staged,) = stage_inputs([f"ev.h5#ad:{adler(b'staged by the pilot')}"], options)
    assert staged.source == "staged" and staged.attempts == 0 and staged.bytes_transferred == 0
    assert staged.adler32 == adler(b"staged by the pilot")


def test_disk_full_is_found_before_download(s3env, s3, bucket, small_disk, options):
    s3.put_object(Bucket=bucket, Key="big.h5", Body=payload(3 * MiB))
    job = small_disk / "job"
    job.mkdir()
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/big.h5"], dataclasses.replace(options, workdir=job))
    assert_input_failure(info.value, "disk-full", job)
    assert "--accessMode=direct" in info.value.message


@pytest.mark.parametrize("key", ["../../escape.h5", "a/../../../escape.h5", "/etc/escape.h5",
                                 "dir\u2215..\u2215escape.h5", "dir\uff0fescape.h5", "nul\x00.h5",
                                 "dir/..", "dir/.hidden.h5"])
def test_hostile_keys_never_write_outside(s3env, bucket, options, workdir, tmp_path, key):
    before = files_under(tmp_path)
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/{key}"], options)
    assert_input_failure(info.value, "hostile-name", workdir)
    assert files_under(tmp_path) == before
    assert "\x00" not in info.value.message


def test_hostile_keys_from_a_listing_are_refused(s3env, s3, bucket, options, workdir, tmp_path):
    s3.put_object(Bucket=bucket, Key="run1/ok.h5", Body=b"fine")
    s3.put_object(Bucket=bucket, Key="run1/..\u2215..\u2215escape.h5", Body=b"evil")
    before = files_under(tmp_path)
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/run1/*.h5"], options)
    assert_input_failure(info.value, "hostile-name", workdir)
    assert files_under(tmp_path) == before


def test_two_inputs_with_one_name_are_refused(s3env, s3, bucket, options, workdir):
    for key in ("a/ev.h5", "b/ev.h5"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    with pytest.raises(InputFileError) as info:
        stage_inputs([f"s3://{bucket}/a/ev.h5", f"s3://{bucket}/b/ev.h5"], options)
    assert_input_failure(info.value, "duplicate-name", workdir)


def test_resolve_one_copies_even_in_direct_mode(s3env, s3, bucket, options):
    s3.put_object(Bucket=bucket, Key="models/m.keras", Body=b"weights")
    staged = resolve_one(f"s3://{bucket}/models/m.keras", dataclasses.replace(options, access_mode="direct"))
    assert staged.handle is None and staged.local_path.read_bytes() == b"weights"


def test_stale_part_and_final_files_are_replaced(s3env, s3, bucket, options, workdir):
    s3.put_object(Bucket=bucket, Key="ev.h5", Body=b"fresh")
    (workdir / "ev.h5.part").write_bytes(b"stale partial")
    outside = workdir.parent / "target"
    outside.write_bytes(b"must not change")
    (workdir / "ev.h5").symlink_to(outside)
    (staged,) = stage_inputs([f"s3://{bucket}/ev.h5"], options)
    assert staged.local_path.read_bytes() == b"fresh" and not staged.local_path.is_symlink()
    assert outside.read_bytes() == b"must not change"
    assert files_under(workdir) == {"ev.h5"}


def test_unsupported_scheme_is_named(clean_env, options, workdir):
    with pytest.raises(InputFileError) as info:
        stage_inputs(["root://eospublic.cern.ch//eos/dune/ev.h5"], options)
    assert_input_failure(info.value, "unsupported", workdir)


def test_options_reject_unknown_access_mode(workdir):
    with pytest.raises(ValueError, match="access_mode"):
        StagingOptions(workdir=workdir, access_mode="stream")


@pytest.mark.parametrize("cuts, outcome", [(1, "re-read"), (3, "connection")])
def test_a_small_object_whose_body_breaks_off_is_read_again_then_named(s3env, s3, bucket, options, workdir,
                                                                        seaweed_server, cuts, outcome):
    """Below one part an object is a single GetObject (not s3transfer's machinery): a body cut
    mid-way is fetched again from the start, within the retry budget, and then named."""
    from urllib.parse import urlsplit

    from tests.support.relay import Relay

    data = payload(3 * MiB, seed=5)
    s3.put_object(Bucket=bucket, Key="small/ev.h5", Body=data)
    upstream = urlsplit(seaweed_server.endpoint)
    relay = Relay((upstream.hostname, upstream.port), cut_at=MiB, cut_connections=cuts)
    try:
        through = dataclasses.replace(options, s3_endpoint=relay.endpoint)
        assert len(data) < through.part_size
        if outcome == "re-read":
            (staged,) = stage_inputs([f"s3://{bucket}/small/ev.h5"], through)
            assert staged.local_path.read_bytes() == data
            assert staged.attempts == 2 and staged.bytes_transferred == len(data)
            assert files_under(workdir) == {"ev.h5"}
        else:
            with pytest.raises(InputFileError) as info:
                stage_inputs([f"s3://{bucket}/small/ev.h5"], through)
            assert_input_failure(info.value, "connection", workdir, name="ev.h5")
            assert "could not be resumed" in info.value.message and "after 3 attempts" in info.value.message
        assert relay.cuts == cuts
    finally:
        relay.close()


def test_read_again_retries_only_a_body_that_broke_off():
    from botocore.exceptions import EndpointConnectionError, IncompleteReadError
    from s3transfer.exceptions import RetriesExceededError

    from wrapper.staging.s3 import read_again

    calls, breaks = [], []

    def short_twice() -> bytes:
        calls.append(1)
        if len(calls) < 3:
            raise IncompleteReadError(actual_bytes=1, expected_bytes=2)
        return b"ok"

    assert read_again(short_twice, 3, on_break=lambda: breaks.append(1)) == b"ok"
    assert len(calls) == 3 and len(breaks) == 2
    calls.clear()
    with pytest.raises(RetriesExceededError) as info:
        read_again(short_twice, 2)
    assert isinstance(info.value.last_exception, IncompleteReadError) and len(calls) == 2

    def unreachable() -> bytes:
        calls.append(1)
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    calls.clear()
    with pytest.raises(EndpointConnectionError):   # botocore has retried the request already
        read_again(unreachable, 3)
    assert len(calls) == 1
