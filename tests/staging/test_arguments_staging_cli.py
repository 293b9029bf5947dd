"""The staging arguments reach the transfers, seen at the server: --stagingThreads bounds the requests
in flight, --s3Endpoint and --s3PathStyle decide where an S3 request goes and what it asks for.

Each job runs the real trf (`python -m wrapper`). Its inputs are not HDF5, so a job ends with exit
9 once everything is staged, before any framework loads: what matters is what the server saw.
The registry naming these tests per argument is tests/spine/test_arguments_reach.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_HDF5 = b"not an event file, " * 64


class Gate:
    """Counts the requests in flight. Each one waits (at most `hold_s`) for a second to arrive, so
    a client that transfers in parallel is seen doing so however fast the transfers are."""

    def __init__(self, hold_s: float = 0.5):
        self.hold_s = hold_s
        self.in_flight = self.most = self.requests = 0
        self._changed = threading.Condition()

    def __enter__(self):
        with self._changed:
            self.in_flight += 1
            self.requests += 1
            self.most = max(self.most, self.in_flight)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.in_flight >= 2, timeout=self.hold_s)

    def __exit__(self, *exc):
        with self._changed:
            self.in_flight -= 1


def serve(handler_class) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def gated_file_server(gate: Gate, files: dict) -> ThreadingHTTPServer:
    """An HTTP server on loopback serving `files` ({path: bytes}), every request through `gate`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            with gate:
                self._answer(body=False)

        def do_GET(self):
            with gate:
                self._answer(body=True)

        def _answer(self, body: bool):
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            if body and data:
                self.wfile.write(data)

    return serve(Handler)


def recording_proxy(seen: list) -> ThreadingHTTPServer:
    """An HTTP proxy on loopback that records each request's absolute URL and answers it itself, as
    an S3 store holding nothing would: the host names it is asked for never need to resolve."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _no_such_key(self, body: bool):
            seen.append((self.command, self.path, self.headers.get("Host")))
            text = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if body:
                self.wfile.write(text)

        def do_HEAD(self):
            self._no_such_key(body=False)

        def do_GET(self):
            self._no_such_key(body=True)

    return serve(Handler)


def trf(jobdir: Path, *args: str, env: dict) -> dict:
    """Run the trf in `jobdir`; its jobReport.json."""
    jobdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "wrapper", *args], cwd=jobdir, env=env, capture_output=True,
                          text=True, timeout=120)
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert report["exitCode"] == done.returncode, done.stdout + done.stderr
    return report


def clean_env(**extra: str) -> dict:
    """Ours, without credentials, endpoints or proxies of the machine running the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "S3_", "BEARER_TOKEN")) and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@pytest.mark.parametrize("threads", [None, "1"])
def test_staging_threads_bound_the_transfers_in_flight_at_the_server(threads, tmp_path):
    """Four files: the default (16) has several requests in flight at once, --stagingThreads=1 one."""
    gate = Gate()
    server = gated_file_server(gate, {f"/ev.{n}.h5": NOT_HDF5 for n in range(4)})
    try:
        urls = ",".join(f"http://127.0.0.1:{server.server_address[1]}/ev.{n}.h5" for n in range(4))
        report = trf(tmp_path / "job", "--mode=infer", f"--inputEventsFile={urls}", "--modelFile=model.keras",
                     "--outputPredFile=pred.h5", *([f"--stagingThreads={threads}"] if threads else []),
                     env=clean_env())
    finally:
        server.shutdown()
        server.server_close()

    assert report["exitCode"] == 9 and report["errorCause"] == "corrupt", report
    assert gate.requests >= 8                                  # a HEAD and a GET per file
    assert (gate.most == 1 if threads == "1" else 2 <= gate.most <= 4), (gate.most, gate.requests)


S3_ENV = {"AWS_ACCESS_KEY_ID": "AKIDARGUMENTSTEST", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-0123",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
          "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@pytest.mark.parametrize("path_style,url,host", [
    (False, "http://dune-events.store.test:7480/run1/ev.h5", "dune-events.store.test:7480"),
    (True, "http://store.test:7480/dune-events/run1/ev.h5", "store.test:7480")])
def test_s3_endpoint_and_path_style_shape_the_request(path_style, url, host, tmp_path):
    """Against a host name (not an IP, where botocore always uses the path), the bucket goes into
    the host name unless --s3PathStyle puts it into the path. The endpoint comes from --s3Endpoint
    alone: the environment names none, and a proxy answers for store.test."""
    seen: list = []
    proxy = recording_proxy(seen)
    env = clean_env(**S3_ENV, HTTP_PROXY=f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        report = trf(tmp_path / "job", "--mode=infer", "--inputEventsFile=s3://dune-events/run1/ev.h5",
                     "--s3Endpoint=http://store.test:7480", *(["--s3PathStyle"] if path_style else []),
                     "--modelFile=model.keras", "--outputPredFile=pred.h5", env=env)
    finally:
        proxy.shutdown()
        proxy.server_close()

    assert report["exitCode"] == 9 and report["errorCause"] == "not-found", report
    assert url in [path for _, path, _ in seen], seen                 # the object (a bucket HEAD may follow)
    assert {got for _, _, got in seen} == {host}, seen
    assert path_style == all(urlsplit(path).path.startswith("/dune-events") for _, path, _ in seen), seen
