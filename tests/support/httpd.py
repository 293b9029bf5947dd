"""A loopback HTTP(S) file server for staging tests, with Range support and scripted failures.

Each path has a behaviour: fail the first N requests (or all) with a status, cut every body short
at a byte offset, drop the connection mid-body once, send no Content-Length, refuse HEAD or
ignore Range. Every request is recorded (method, path, Range, whether it carried a bearer token,
the client's port) so tests can check what the client did.
"""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Behaviour:
    fail_first: int = 0            # this many requests get `fail_status` first
    fail_status: int = 500
    fail_methods: tuple = ("HEAD", "GET", "PUT")   # the requests `fail_first` counts
    truncate_at: Optional[int] = None   # every body stops at this file offset, then the connection drops
    drop_once_at: Optional[int] = None  # the first GET stops at this offset, later ones are whole
    no_length: bool = False        # body delimited by closing the connection
    head_allowed: bool = True
    range_allowed: bool = True
    token: Optional[str] = None    # when set, requests without `Bearer <token>` get 401
    served: int = 0
    bodies: int = 0                # GETs that got as far as sending a body


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    range: Optional[str]
    authorized: bool
    client_port: int
    status: int


@dataclass
class LoopbackHTTP:
    """Serve `files` on 127.0.0.1; `tls` (cert, key) makes it HTTPS."""

    tls: Optional[tuple] = None
    files: Dict[str, bytes] = field(default_factory=dict)
    behaviour: Dict[str, Behaviour] = field(default_factory=dict)
    records: List[Record] = field(default_factory=list)
    uploads: Dict[str, bytes] = field(default_factory=dict)

    def add(self, path: str, data: bytes, **behaviour) -> str:
        self.files[path] = data
        self.behaviour[path] = Behaviour(**behaviour)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def start(self) -> "LoopbackHTTP":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: LoopbackHTTP

    def log_message(self, *args):
        pass

    def _record(self, status: int) -> None:
        behaviour = self.server_owner.behaviour.get(self.path)
        token = behaviour.token if behaviour else None
        header = self.headers.get("Authorization", "")
        self.server_owner.records.append(Record(
            self.command, self.path, self.headers.get("Range"),
            bool(token) and header == f"Bearer {token}", self.client_address[1], status))

    def _refuse(self, status: int) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))   # keep the connection usable
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _gate(self) -> Optional[Behaviour]:
        """The path's behaviour, or None when this request was answered with an error."""
        behaviour = self.server_owner.behaviour.get(self.path)
        if behaviour is None and self.command != "PUT":
            self._refuse(404)
            return None
        behaviour = behaviour or self.server_owner.behaviour.setdefault(self.path, Behaviour())
        if behaviour.token and self.headers.get("Authorization") != f"Bearer {behaviour.token}":
            self._refuse(401)
            return None
        if self.command in behaviour.fail_methods:
            behaviour.served += 1
            if behaviour.fail_first < 0 or behaviour.served <= behaviour.fail_first:
                self._refuse(behaviour.fail_status)
                return None
        return behaviour

    def do_HEAD(self):
        behaviour = self._gate()
        if behaviour is None:
            return
        if not behaviour.head_allowed:
            return self._refuse(405)
        data = self.server_owner.files.get(self.path, self.server_owner.uploads.get(self.path))
        if data is None:
            return self._refuse(404)
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", _etag(data))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        behaviour = self._gate()
        if behaviour is None:
            return
        data = self.server_owner.files[self.path]
        start, stop, status = 0, len(data), 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match and behaviour.range_allowed and self.headers.get("If-Range") in (None, _etag(data)):
            start = int(match.group(1))
            stop = min(len(data), int(match.group(2)) + 1) if match.group(2) else len(data)
            if start >= len(data):
                return self._refuse(416)
            status = 206
        self._record(status)
        self.send_response(status)
        self.send_header("ETag", _etag(data))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        if behaviour.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        behaviour.bodies += 1
        cut = behaviour.truncate_at
        if behaviour.drop_once_at is not None and behaviour.bodies == 1:
            cut = behaviour.drop_once_at
        if cut is not None and cut < stop:
            self.wfile.write(data[start:max(start, cut)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data[start:stop])

    def do_PUT(self):
        behaviour = self._gate()
        if behaviour is None:
            return
        length = int(self.headers.get("Content-Length", "0"))
        self.server_owner.uploads[self.path] = self.rfile.read(length)
        self._record(201)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def self_signed(directory) -> tuple:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    import subprocess

    cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key
