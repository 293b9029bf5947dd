"""Direct access: a read-only, seekable, block-cached file object over ranged GETs, for h5py.File(obj).

Written here rather than taken from a library: PyPI's h5py wheels are built without the ros3
driver, and s3fs/fsspec pin a botocore older than the boto3 we need. The object is small on
purpose: fixed-size blocks fetched with one ranged GET each, kept in an LRU cache whose size
bounds memory (cache_bytes, readahead included), and a readahead of the next blocks once the
reader goes sequentially, which is how events are read in order.
"""
from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, Optional


@dataclass(frozen=True)
class DirectSource:
    """What opens a direct-access input again, in another process: plain, picklable data (the
    plan's `location` may hold a signature: it is never logged). Credentials come from the
    environment, as for the first open."""

    plan: object                 # wrapper.staging.resolve.Plan
    size: int
    etag: Optional[str]
    options: object              # wrapper.staging.options.StagingOptions, without a progress callback


class BlockCachedFile(io.RawIOBase):
    """A remote file of `size` bytes read through `fetch(start, stop) -> bytes`.

    Close the h5py.File opened on it before this object and before the interpreter exits: h5py
    calls back into Python file objects while closing, which crashes during interpreter teardown.
    """

    def __init__(self, name: str, size: int, fetch: Callable[[int, int], bytes], *,
                 block_size: int, cache_bytes: int, readahead: int):
        super().__init__()
        self.name = name
        self.size = size
        self._fetch = fetch
        self._block = block_size
        self._capacity = max(2, cache_bytes // block_size)
        self._readahead = max(0, min(readahead, self._capacity - 1))
        self._pos = 0
        self._last = -2
        self._cache: "OrderedDict[int, bytes]" = OrderedDict()
        self._pending: Dict[int, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, self._readahead), thread_name_prefix="direct")
        self._counts = {"requests": 0, "bytes_fetched": 0, "fetch_seconds": 0.0, "hits": 0, "waits": 0,
                        "misses": 0, "peak_cached_bytes": 0}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        """Fill `buffer` from the current position; fewer bytes only at the end of the file."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            index, offset = divmod(self._pos, self._block)
            block = self._get(index)
            n = min(len(view) - done, len(block) - offset)
            view[done:done + n] = block[offset:offset + n]
            done += n
            self._pos += n
        return done

    def stats(self) -> dict:
        """Requests, bytes fetched and time spent fetching, cache hits, waits on readahead, misses,
        and peak cached bytes."""
        with self._lock:
            counts = dict(self._counts, block_size=self._block, cache_blocks=self._capacity)
        counts["fetch_seconds"] = round(counts["fetch_seconds"], 3)
        return counts

    def close(self) -> None:
        if not self.closed:
            self._pool.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                self._cache.clear()
        super().close()

    # -- cache ---------------------------------------------------------------------------------

    def _get(self, index: int) -> bytes:
        with self._lock:
            block = self._cache.get(index)
            pending = self._pending.get(index) if block is None else None
            if block is not None:
                self._cache.move_to_end(index)
            self._counts["hits" if block is not None else "waits" if pending else "misses"] += 1
        if block is None:
            block = pending.result() if pending is not None else self._load(index)
        if index == self._last + 1:
            self._prefetch(index)
        self._last = index
        return block

    def _load(self, index: int) -> bytes:
        start = index * self._block
        began = time.monotonic()
        try:
            data = self._fetch(start, min(start + self._block, self.size))
        except BaseException:
            with self._lock:
                self._pending.pop(index, None)
            raise
        with self._lock:
            self._pending.pop(index, None)
            self._counts["requests"] += 1
            self._counts["bytes_fetched"] += len(data)
            self._counts["fetch_seconds"] += time.monotonic() - began
            self._cache[index] = data
            self._cache.move_to_end(index)
            self._evict()
        return data

    def _evict(self) -> None:
        """Keep cached plus in-flight blocks within the capacity (called under the lock)."""
        while self._cache and len(self._cache) + len(self._pending) > self._capacity:
            self._cache.popitem(last=False)
        cached = sum(len(b) for b in self._cache.values())
        self._counts["peak_cached_bytes"] = max(self._counts["peak_cached_bytes"], cached)

    def _prefetch(self, index: int) -> None:
        last_block = (self.size - 1) // self._block
        with self._lock:
            for ahead in range(index + 1, min(index + 1 + self._readahead, last_block + 1)):
                if ahead in self._cache or ahead in self._pending:
                    continue
                self._pending[ahead] = self._pool.submit(self._load, ahead)
            self._evict()
