"""HTTP(S) inputs and uploads against loopback servers this test starts: retries, resume, tokens, TLS."""
from __future__ import annotations

import dataclasses
import subprocess
import zlib

import pytest

from tests.support.samples import files_under, payload
from wrapper import exitcodes
from wrapper.errors import InputFileError, OutputFileError
from wrapper.staging import publish_outputs, stage_inputs

MiB = 1 << 20
TOKEN = "eyJhbGciOiJFUzI1NiJ9.dune-test-token-PAYLOAD-0042.sig-QWERTY"


def assert_input_failure(err: InputFileError, cause: str, workdir) -> None:
    assert err.cause == cause, err.message
    assert f": {cause}:" in err.message
    assert err.exit_code == exitcodes.INPUT_FILE_ERROR == 9
    assert files_under(workdir) == set(), files_under(workdir)


def test_download_reuses_connections(clean_env, http_server, options, workdir):
    blobs = {f"/data/ev{i}.h5": payload(200_000, seed=i) for i in range(6)}
    urls = [http_server.add(path, data) for path, data in blobs.items()]
    staged = stage_inputs(urls, dataclasses.replace(options, threads=2))
    assert [s.local_path.read_bytes() for s in staged] == list(blobs.values())
    assert all(s.source == "https" and s.attempts == 1 for s in staged)
    connections = {r.client_port for r in http_server.records}
    assert len(http_server.records) == 12 and len(connections) <= 4   # a HEAD and a GET per file


def test_500_then_success_reports_the_retries(clean_env, http_server, options):
    data = payload(100_000)
    url = http_server.add("/flaky.h5", data, fail_first=3)
    (staged,) = stage_inputs([url], dataclasses.replace(options, retries=3))
    assert staged.local_path.read_bytes() == data
    seen = [(r.method, r.status) for r in http_server.records]
    assert seen == [("HEAD", 500)] * 3 + [("HEAD", 200), ("GET", 200)]
    assert staged.attempts == 4


def test_500_during_get_is_retried_and_counted(clean_env, http_server, options):
    data = payload(100_000)
    url = http_server.add("/flaky.h5", data, fail_first=2, fail_methods=("GET",))
    (staged,) = stage_inputs([url], dataclasses.replace(options, retries=3))
    assert staged.local_path.read_bytes() == data
    assert [(r.method, r.status) for r in http_server.records] == [("HEAD", 200), ("GET", 500), ("GET", 500),
                                                                   ("GET", 200)]
    assert staged.attempts == 3


def test_500_forever_gives_up_with_a_count(clean_env, http_server, options, workdir):
    url = http_server.add("/broken.h5", b"never served", fail_first=-1)
    with pytest.raises(InputFileError) as info:
        stage_inputs([url], dataclasses.replace(options, retries=2))
    assert_input_failure(info.value, "server-error", workdir)
    assert "HTTP 500" in info.value.message and "after 3 attempts" in info.value.message
    assert len(http_server.records) == 3


def test_dropped_connection_resumes_with_range(clean_env, http_server, options, workdir):
    data = payload(3 * MiB)
    url = http_server.add("/big.h5", data, drop_once_at=MiB + 123)
    (staged,) = stage_inputs([url], options)
    assert staged.local_path.read_bytes() == data
    assert staged.attempts == 2 and staged.bytes_transferred == len(data)
    gets = [r for r in http_server.records if r.method == "GET"]
    assert len(gets) == 2 and gets[0].range is None and gets[1].status == 206
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= MiB + 123          # from what had reached the disk, not from zero
    assert files_under(workdir) == {"big.h5"}


def test_truncated_body_is_size_mismatch(clean_env, http_server, options, workdir):
    url = http_server.add("/short.h5", payload(500_000), truncate_at=200_000)
    with pytest.raises(InputFileError) as info:
        stage_inputs([url], dataclasses.replace(options, retries=2))
    assert_input_failure(info.value, "size-mismatch", workdir)
    assert "after 3 attempts" in info.value.message


def test_not_found_and_checksum(clean_env, http_server, options, workdir):
    http_server.add("/present.h5", b"abc")
    with pytest.raises(InputFileError) as info:
        stage_inputs([http_server.url("/absent.h5")], options)
    assert_input_failure(info.value, "not-found", workdir)
    with pytest.raises(InputFileError) as info:
        stage_inputs([http_server.url("/present.h5") + "#ad:00000001"], options)
    assert_input_failure(info.value, "checksum-mismatch", workdir)
    good = f"{zlib.adler32(b'abc'):08x}"
    (staged,) = stage_inputs([http_server.url("/present.h5") + f"#ad:{good}"], options)
    assert staged.adler32 == good


def test_messages_name_the_urls_own_scheme(clean_env, http_server, https_server, options):
    for url, label in ((http_server.url("/absent.h5"), "http"), (https_server.url("/absent.h5"), "https"),
                       (http_server.url("/a/..%2Fescape.h5"), "http")):
        with pytest.raises(InputFileError) as info:
            stage_inputs([url], options)
        assert f"{url} ({label}): " in info.value.message
    (staged,) = stage_inputs([http_server.add("/present.h5", b"abc")], options)
    assert staged.source == "https"          # the report keeps its one name for the reader


@pytest.mark.parametrize("path", ["/a/..%2F..%2Fescape.h5", "/a/%2E%2E", "/a/escape%E2%88%95x.h5",
                                  "/a/nul%00.h5", "/a/.hidden.h5"])
def test_hostile_url_paths_never_write_outside(clean_env, http_server, options, workdir, tmp_path, path):
    before = files_under(tmp_path)
    with pytest.raises(InputFileError) as info:
        stage_inputs([http_server.url(path)], options)
    assert_input_failure(info.value, "hostile-name", workdir)
    assert files_under(tmp_path) == before
    assert http_server.records == []


def test_bearer_token_from_file_over_tls(https_server, clean_env, tmp_path, options):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    clean_env.setenv("BEARER_TOKEN_FILE", str(token_file))
    data = payload(10_000)
    url = https_server.add("/secure/ev.h5", data, token=TOKEN)
    (staged,) = stage_inputs([url], options)
    assert staged.local_path.read_bytes() == data
    assert all(r.authorized for r in https_server.records)


def test_missing_token_is_permission(https_server, clean_env, options, workdir):
    url = https_server.add("/secure/ev.h5", b"x", token=TOKEN)
    with pytest.raises(InputFileError) as info:
        stage_inputs([url], options)
    assert_input_failure(info.value, "permission", workdir)
    assert "HTTP 401" in info.value.message


def test_token_is_never_sent_in_clear(clean_env, http_server, options):
    clean_env.setenv("BEARER_TOKEN", TOKEN)
    http_server.add("/open.h5", b"public")
    stage_inputs([http_server.url("/open.h5")], options)
    assert not any(r.authorized for r in http_server.records)


def test_ca_directory_from_x509_cert_dir(tls_files, clean_env, tmp_path, options):
    from tests.support import httpd

    cadir = tmp_path / "certificates"
    cadir.mkdir()
    (cadir / "loopback.pem").write_bytes(open(tls_files[0], "rb").read())
    subprocess.run(["openssl", "rehash", str(cadir)], check=True, capture_output=True)
    clean_env.setenv("X509_CERT_DIR", str(cadir))
    server = httpd.LoopbackHTTP(tls=tls_files).start()
    try:
        (staged,) = stage_inputs([server.add("/ev.h5", b"over tls")], options)
        assert staged.local_path.read_bytes() == b"over tls"
    finally:
        server.stop()


def test_untrusted_certificate_is_refused(tls_files, clean_env, options, workdir):
    from tests.support import httpd

    server = httpd.LoopbackHTTP(tls=tls_files).start()
    try:
        with pytest.raises(InputFileError) as info:
            stage_inputs([server.add("/ev.h5", b"x")], options)
        assert_input_failure(info.value, "permission", workdir)
        assert "TLS verification failed" in info.value.message
    finally:
        server.stop()


def test_disk_full_while_writing_an_unsized_body(clean_env, http_server, small_disk, options):
    job = small_disk / "job"
    job.mkdir()
    url = http_server.add("/unsized.h5", payload(3 * MiB), no_length=True, head_allowed=False,
                          range_allowed=False)
    with pytest.raises(InputFileError) as info:
        stage_inputs([url], dataclasses.replace(options, workdir=job))
    assert_input_failure(info.value, "disk-full", job)


def test_size_from_a_ranged_get_where_head_is_refused(clean_env, http_server, small_disk, options):
    job = small_disk / "job"
    job.mkdir()
    url = http_server.add("/presigned.h5", payload(3 * MiB), head_allowed=False)
    with pytest.raises(InputFileError) as info:
        stage_inputs([url], dataclasses.replace(options, workdir=job))
    assert_input_failure(info.value, "disk-full", job)
    assert [(r.method, r.range) for r in http_server.records] == [("HEAD", None), ("GET", "bytes=0-0")]


def test_put_upload_is_verified(clean_env, http_server, options, workdir):
    (workdir / "pred.h5").write_bytes(b"predictions")
    http_server.behaviour.clear()
    (out,) = publish_outputs([workdir / "pred.h5"], dataclasses.replace(
        options, output_prefix=http_server.url("/outputs/")))
    assert out.url == http_server.url("/outputs/pred.h5")
    assert http_server.uploads["/outputs/pred.h5"] == b"predictions"
    assert out.adler32 == f"{zlib.adler32(b'predictions'):08x}" and out.size == 11


def test_put_upload_failing_forever_is_output_error(clean_env, http_server, options, workdir):
    (workdir / "pred.h5").write_bytes(b"predictions")
    http_server.add("/outputs/pred.h5", b"", fail_first=-1, fail_status=503)
    with pytest.raises(OutputFileError) as info:
        publish_outputs([workdir / "pred.h5"], dataclasses.replace(
            options, output_prefix=http_server.url("/outputs")))
    assert info.value.cause == "server-error" and info.value.exit_code == exitcodes.OUTPUT_FILE_ERROR == 11
    assert "after 3 attempts" in info.value.message
