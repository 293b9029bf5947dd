"""A TCP relay on loopback between a client and a real server (SeaweedFS), counting what crosses it
and, with a `rate`, slowing it down: transfers that must still be under way when a fault hits, and
proof of how many bytes a job really fetched, whatever the job itself reports. With `cut_at`, the
first `cut_connections` connections are cut once that many bytes have gone to the client: a
response body that breaks off, as a dying link or server leaves it.

Bytes go both ways unchanged (an S3 signature covers the Host header the client sent, which is the
relay's, so signing still holds). It runs in threads of the test process and is stopped by `close()`.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Optional

CHUNK = 64 << 10


class Relay:
    """Listen on 127.0.0.1:<port>; relay to `upstream` (host, port), at most `rate` bytes/s each way
    on each connection (None: as fast as it goes). `connections`, `to_server` and `to_client` count
    what crossed."""

    def __init__(self, upstream: tuple, rate: Optional[int] = None, *, cut_at: Optional[int] = None,
                 cut_connections: int = 1):
        self.upstream = upstream
        self.rate = rate
        self.cut_at = cut_at
        self.cut_connections = cut_connections
        self.cuts = 0
        self.connections = 0
        self.to_server = 0
        self.to_client = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()          # the upstream is gone: as a dead server looks to a client
                continue
            with self._lock:
                self._sockets += [client, server]
                self.connections += 1
                cut = self.cut_at if self.cut_at is not None and self.connections <= self.cut_connections else None
            threading.Thread(target=self._pump, args=(client, server, "to_server"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "to_client", cut), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counter: str, cut: Optional[int] = None) -> None:
        rate = self.rate
        started, sent = time.monotonic(), 0
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if cut is not None and sent + len(data) >= cut:
                    sink.sendall(data[:max(0, cut - sent)])
                    with self._lock:
                        self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
