"""Fault scenarios: a job that cannot run on this node fails before it moves a byte.

The trf talks to the loopback SeaweedFS through a byte-counting TCP proxy (real sockets, real S3
requests): what crossed it is what the trf fetched, whatever the trf itself reports.
"""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import boto3

from tests.faults.harness import expect_failure


class CountingProxy:
    """A loopback TCP proxy to `target` that counts connections and bytes each way."""

    def __init__(self, target: tuple):
        self.target = target
        self.connections = 0
        self.to_server = 0
        self.to_client = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, "to_server"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, "to_client"), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counter: str) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def test_require_gpu_on_a_cpu_node_exits_69_before_fetching_a_byte(trf, inputs, s3, scenario):
    body = inputs.events.read_bytes()
    uri = s3.put("run/ev.h5", body)
    scenario.s3_input(s3.client, s3.bucket, "run/ev.h5")
    target = urlsplit(s3.server.endpoint)
    proxy = CountingProxy((target.hostname, target.port))
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
