"""A bandwidth-limited TCP relay on loopback, for transfers that must still be under way when a fault hits.

The relay forwards bytes both ways between a client and a real server (SeaweedFS), unchanged (an
S3 signature covers the Host header the client sent, which is the relay's, so signing still holds),
but sends at most `rate` bytes per second each way on each connection. It runs in threads of the test
process and is stopped by `close()`.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Optional

CHUNK = 64 << 10


class Throttle:
    """Listen on 127.0.0.1:<port>; relay to `upstream` (host, port), `rate` bytes/s each way."""

    def __init__(self, upstream: tuple, rate: int):
        self.upstream = upstream
        self.rate = rate
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="throttle-accept", daemon=True).start()

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
            threading.Thread(target=self._pump, args=(client, server, self.rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.rate), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: Optional[int]) -> None:
        started, sent = time.monotonic(), 0
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                sink.sendall(data)
                sent += len(data)
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
