"""Fixtures for staging tests: one real SeaweedFS per session, loopback HTTP(S) servers, small disks."""
from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import httpd
from wrapper.staging import StagingOptions

CREDENTIAL_ENV = ("AWS_", "S3_ENDPOINT_URL", "BEARER_TOKEN", "X509_", "REQUESTS_CA_BUNDLE", "XDG_RUNTIME_DIR")
_buckets = itertools.count()


@pytest.fixture
def clean_env(monkeypatch):
    """No credentials or endpoints from the developer's environment; never ask instance metadata."""
    for name in list(os.environ):
        if name.startswith(CREDENTIAL_ENV):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent-runtime-dir")
    return monkeypatch


@pytest.fixture
def s3env(seaweed_server, clean_env):
    """Only the endpoint and the credentials in the environment, as on a worker node."""
    for name, value in seaweed_server.env().items():
        clean_env.setenv(name, value)
    return seaweed_server


@pytest.fixture
def s3(seaweed_server):
    return seaweed_server.client()


@pytest.fixture
def bucket(s3) -> str:
    """A fresh bucket for one test."""
    name = f"t{os.getpid()}-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.fixture
def options(workdir) -> StagingOptions:
    return StagingOptions(workdir=workdir, retries=2, backoff_s=0.01, timeout_s=10.0)


@pytest.fixture
def http_server():
    server = httpd.LoopbackHTTP().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return httpd.self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(tls_files, clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", tls_files[0])
    server = httpd.LoopbackHTTP(tls=tls_files).start()
    yield server
    server.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs owned by this test, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)

