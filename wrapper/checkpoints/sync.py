"""Uploading checkpoints while training, from a background thread: training never waits for an
upload, and the pilot's 10 s kill grace never has to.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from pathlib import Path

from payload.api import KEEP_CHECKPOINTS as KEEP
from wrapper.checkpoints.store import MANIFEST, manifest_for
from wrapper.console import log
from wrapper.redact import redact


class CheckpointSync:
    """Uploads each new local checkpoint to the store from a background thread.

    Call it with a checkpoint folder (the payload's `on_checkpoint`): its files are hard-linked
    into a private staging folder at once and queued; the thread uploads the files, then the
    manifest, then prunes older checkpoints under the prefix (keeping `keep`). When several are
    queued only the newest is sent. Upload failures are logged and counted, never raised into
    training: the next checkpoint tries again.
    """

    def __init__(self, store, model_config: str, staging: Path, keep: int = KEEP):
        self.store, self.model_config, self.keep = store, model_config, keep
        self.staging = Path(staging)
        self.uploaded: list[str] = []
        self.failed: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
        self._thread.start()

    def __call__(self, path: Path) -> None:
        path = Path(path)
        copy = self.staging / path.name
        try:
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir(parents=True)
            for file in sorted(path.iterdir()):
                if file.is_file():
                    try:
                        os.link(file, copy / file.name)
                    except OSError:  # another file system: copy instead
                        shutil.copyfile(file, copy / file.name)
        except OSError as err:
            self.failed.append(path.name)
            log(f"checkpoint {path.name}: not queued for upload: {err.strerror or err}")
            shutil.rmtree(copy, ignore_errors=True)
            return
        self._queue.put(copy)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            while not self._queue.empty():   # only the newest matters
                newer = self._queue.get()
                if newer is None:
                    self._queue.put(None)
                    break
                shutil.rmtree(item, ignore_errors=True)
                item = newer
            self._upload(item)

    def _upload(self, copy: Path) -> None:
        started = time.monotonic()
        try:
            files = sorted(p for p in copy.iterdir() if p.is_file())
            manifest = manifest_for(copy, self.model_config, files)
            self.store.put(copy.name, files)
            self.store.write(copy.name, MANIFEST, json.dumps(manifest, indent=1).encode())
            self.uploaded.append(copy.name)
            log(f"checkpoint {copy.name} uploaded to {redact(self.store.prefix)} in "
                f"{time.monotonic() - started:.1f} s")
            self._prune(copy.name)
        except Exception as err:  # noqa: BLE001 - training goes on; the next checkpoint retries
            self.failed.append(copy.name)
            log(f"checkpoint {copy.name}: upload to {redact(self.store.prefix)} failed: "
                f"{redact(str(err))[:300]}")
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def _prune(self, newest: str) -> None:
        names = self.store.names()
        complete = sorted((n for n, files in names.items() if MANIFEST in files), reverse=True)
        doomed = set(complete[self.keep:])
        doomed |= {n for n, files in names.items() if MANIFEST not in files and n < newest}
        for name in sorted(doomed):
            self.store.delete(name, sorted(names[name]))

    def close(self, timeout_s: float = 60.0) -> bool:
        """Finish the queued upload (the final checkpoint) within `timeout_s`; True when done."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def to_report(self) -> dict:
        return {"prefix": redact(self.store.prefix), "uploaded": list(self.uploaded),
                "failed": list(self.failed)}
