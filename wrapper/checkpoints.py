"""Resume across job retries: checkpoints kept under a task-wide prefix, outside the job directory.

A retried job (new PandaID, same task) gets a fresh job directory, so checkpoints live under
`--checkpointPrefix` (`s3://bucket/dune/task-{taskid}/` or a shared directory; `{taskid}` becomes
the pilot's PanDA_TaskID). Layout under the prefix, one folder per checkpoint the payload wrote:

    <prefix>/ckpt-e0003-s0000000/model.npz, optimizer.npz, state.json
    <prefix>/ckpt-e0003-s0000000/MANIFEST.json      uploaded last: name, sizes, adler32s, config

A checkpoint is complete only when its MANIFEST.json exists, and the manifest is written after every
file it lists, so an upload cut short by SIGKILL is never taken as the latest. At start the newest
complete checkpoint is downloaded, verified, and renamed into the job's local checkpoint directory,
where the payload's own `latest_checkpoint` finds it. During training a background thread uploads
each new checkpoint the payload reports through `on_checkpoint` (hard links taken at once, so the
payload may prune its copy meanwhile); the pilot's 10 s kill grace never has to wait for one.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from wrapper.errors import ArgumentError, InputFileError
from wrapper.progress import log
from wrapper.redact import redact
from wrapper.staging.options import StagingOptions
from wrapper.staging.verify import adler32_of

MANIFEST = "MANIFEST.json"
MANIFEST_VERSION = 1
NAME_RE = re.compile(r"^ckpt-e(\d{4})-s(\d{7})$")
TASK_TOKEN = "{taskid}"
KEEP = 2
LOCAL_DIR = "checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint under the prefix, as its manifest describes it."""

    name: str
    location: str                        # prefix + name + "/"
    epoch: int
    step: int
    model_config: str
    files: tuple                         # ((file name, size, adler32), ...)


@dataclass(frozen=True)
class Resumed:
    """What a job resumed from, for the report and the log."""

    checkpoint: str
    location: str
    epoch: int
    step: int
    skipped: tuple = ()                  # newer checkpoints that failed verification, with why

    @property
    def message(self) -> str:
        return (f"resumed from epoch {self.epoch} (step {self.step}) of checkpoint {self.checkpoint} "
                f"at {self.location}")

    def to_report(self) -> dict:
        return {"resumedFromEpoch": self.epoch, "resumedFromStep": self.step,
                "checkpoint": self.checkpoint, "location": self.location,
                "message": self.message, "skipped": list(self.skipped)}


def resolve_prefix(prefix: str, env: Optional[Mapping[str, str]] = None) -> str:
    """`prefix` with `{taskid}` replaced by PanDA_TaskID and a trailing slash."""
    env = os.environ if env is None else env
    if TASK_TOKEN in prefix:
        task = env.get("PanDA_TaskID", "").strip()
        if not task.isdigit():
            raise ArgumentError(f"--checkpointPrefix={redact(prefix)} names {TASK_TOKEN} but PanDA_TaskID "
                                "is not set to a task number; set it, or give the prefix without "
                                f"{TASK_TOKEN}")
        prefix = prefix.replace(TASK_TOKEN, task)
    return prefix.rstrip("/") + "/"


def local_dir(workdir: Path) -> Path:
    """The job's local checkpoint directory, where the payload reads and writes checkpoints."""
    return Path(workdir) / LOCAL_DIR


# ---------------------------------------------------------------------------------------------
# Stores: a shared directory, or S3


class LocalStore:
    """Checkpoints under a directory (a shared file system)."""

    def __init__(self, root: str):
        self.prefix = root.rstrip("/") + "/"
        self.root = Path(root)

    def names(self) -> dict[str, set]:
        if not self.root.is_dir():
            return {}
        return {p.name: {f.name for f in p.iterdir()} for p in self.root.iterdir()
                if p.is_dir() and NAME_RE.match(p.name)}

    def read(self, name: str, file: str) -> bytes:
        return (self.root / name / file).read_bytes()

    def get(self, name: str, file: str, dest: Path) -> None:
        shutil.copyfile(self.root / name / file, dest)

    def put(self, name: str, files: list[Path]) -> None:
        target = self.root / name
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            tmp = target / f".{path.name}.part"
            shutil.copyfile(path, tmp)
            _fsync(tmp)
            os.replace(tmp, target / path.name)

    def write(self, name: str, file: str, data: bytes) -> None:
        tmp = self.root / name / f".{file}.part"
        tmp.write_bytes(data)
        _fsync(tmp)
        os.replace(tmp, self.root / name / file)

    def delete(self, name: str, files: list[str]) -> None:
        for file in files:
            (self.root / name / file).unlink(missing_ok=True)
        shutil.rmtree(self.root / name, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


class S3Store:
    """Checkpoints under s3://bucket/prefix/, through the staging module's client (retries,
    credentials scrubbed from messages, adler32 recorded and checked on upload)."""

    def __init__(self, uri: str, options: StagingOptions):
        from wrapper.staging.s3 import S3, split_uri

        self.prefix = uri.rstrip("/") + "/"
        self.bucket, self.key = split_uri(self.prefix)
        self.s3 = S3(options)
        self.client = self.s3.client

    def names(self) -> dict[str, set]:
        found: dict[str, set] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key)
        for page in pages:
            for item in page.get("Contents", ()):
                name, _, file = item["Key"][len(self.key):].partition("/")
                if NAME_RE.match(name) and file and "/" not in file:
                    found.setdefault(name, set()).add(file)
        return found

    def read(self, name: str, file: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.key}{name}/{file}")["Body"].read()

    def get(self, name: str, file: str, dest: Path) -> None:
        self.client.download_file(self.bucket, f"{self.key}{name}/{file}", str(dest))

    def put(self, name: str, files: list[Path]) -> None:
        jobs = [(p, f"s3://{self.bucket}/{self.key}{name}/{p.name}", adler32_of(p)) for p in files]
        failures = [r for r in self.s3.upload_all(jobs) if isinstance(r, Exception)]
        if failures:
            raise failures[0]

    def write(self, name: str, file: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.key}{name}/{file}", Body=data,
                               ContentType="application/json")

    def delete(self, name: str, files: list[str]) -> None:
        # the manifest goes first, so a reader never finds a manifest whose files are gone
        for file in sorted(files, key=lambda f: f != MANIFEST):
            self.client.delete_object(Bucket=self.bucket, Key=f"{self.key}{name}/{file}")


def open_store(prefix: str, options: StagingOptions):
    """The store behind a resolved prefix: s3:// or a local directory."""
    if prefix.startswith("s3://"):
        return S3Store(prefix, options)
    if "://" in prefix:
        raise ArgumentError(f"--checkpointPrefix={redact(prefix)}: checkpoints go to s3:// or a "
                            "directory, not " + prefix.split("://", 1)[0] + "://")
    return LocalStore(prefix)


# ---------------------------------------------------------------------------------------------
# Finding and fetching


def complete_checkpoints(store) -> list[Checkpoint]:
    """Complete checkpoints under the store, newest first; half-written ones (no manifest, or a
    manifest that does not list what is there) are left out."""
    found = []
    for name, files in store.names().items():
        if MANIFEST not in files:
            continue
        try:
            manifest = json.loads(store.read(name, MANIFEST))
            listed = tuple((f["name"], int(f["size"]), str(f["adler32"])) for f in manifest["files"])
            checkpoint = Checkpoint(name, f"{store.prefix}{name}/", int(manifest["epoch"]),
                                    int(manifest["step"]), str(manifest["model_config"]), listed)
        except (ValueError, KeyError, TypeError):
            log(f"checkpoint {name}: unreadable manifest, ignored")
            continue
        if not {f for f, _, _ in listed} <= files:
            log(f"checkpoint {name}: manifest lists files that are not there, ignored")
            continue
        found.append(checkpoint)
    return sorted(found, key=lambda c: c.name, reverse=True)


def _fetch(store, checkpoint: Checkpoint, directory: Path) -> Path:
    """Download and verify `checkpoint` into `directory`; it appears under its name only whole."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint.name
    tmp = directory / f".{checkpoint.name}.download"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for file, size, adler32 in checkpoint.files:
            dest = tmp / file
            store.get(checkpoint.name, file, dest)
            if dest.stat().st_size != size:
                raise ValueError(f"{file}: {dest.stat().st_size} bytes, manifest says {size}")
            if adler32_of(dest) != adler32:
                raise ValueError(f"{file}: adler32 {adler32_of(dest)}, manifest says {adler32}")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def restore_latest(prefix: str, directory: Path, options: StagingOptions, model_config: str) -> Optional[Resumed]:
    """Bring the newest complete checkpoint under `prefix` into `directory` for the payload to
    resume from; None when there is none. A checkpoint that fails verification is skipped for the
    next older one. A checkpoint of another network is an error (exit 9): the task's prefix is
    being reused by a different configuration."""
    store = open_store(prefix, options)
    try:
        candidates = complete_checkpoints(store)
    except Exception as err:  # noqa: BLE001 - boto3/OS errors become one input failure
        raise _store_error(store, prefix, err) from None
    skipped = []
    for checkpoint in candidates:
        if checkpoint.model_config != model_config:
            raise InputFileError(f"checkpoint {checkpoint.name} under {redact(prefix)} is of the "
                                 f"{checkpoint.model_config!r} network, but this job trains "
                                 f"{model_config!r}: give the task its own --checkpointPrefix, or "
                                 "--resume=false to start over", cause="model-mismatch",
                                 source=redact(checkpoint.location))
        try:
            _fetch(store, checkpoint, directory)
        except Exception as err:  # noqa: BLE001 - any failed copy: try the next older one
            reason = f"{checkpoint.name}: {redact(str(err))[:200]}"
            log(f"checkpoint {reason}; trying an older one")
            skipped.append(reason)
            continue
        return Resumed(checkpoint.name, redact(checkpoint.location), checkpoint.epoch, checkpoint.step,
                       tuple(skipped))
    if skipped:
        log(f"no usable checkpoint under {redact(prefix)}: training starts over")
    return None


def _store_error(store, prefix: str, err: Exception) -> InputFileError:
    if isinstance(store, S3Store):
        cause, detail = store.s3.classify(err, store.bucket)
        detail = store.s3.scrub(detail)
    else:
        cause, detail = "unreadable", redact(str(err))
    return InputFileError(f"checkpoints under {redact(prefix)} cannot be listed: {cause}: {detail[:300]}",
                          cause=cause, source=redact(prefix))


# ---------------------------------------------------------------------------------------------
# Uploading while training


def manifest_for(checkpoint_dir: Path, model_config: str, files: list[Path]) -> dict:
    """The manifest of a local checkpoint folder written by the payload."""
    match = NAME_RE.match(checkpoint_dir.name)
    if not match:
        raise ValueError(f"{checkpoint_dir.name!r} is not a checkpoint folder name")
    return {"version": MANIFEST_VERSION, "name": checkpoint_dir.name, "epoch": int(match.group(1)),
            "step": int(match.group(2)), "model_config": model_config, "created": time.time(),
            "pandaid": os.environ.get("PANDAID", ""),
            "files": [{"name": p.name, "size": p.stat().st_size, "adler32": adler32_of(p)} for p in files]}


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


# ---------------------------------------------------------------------------------------------
# One line each for the job flow


def resume_checkpoint(prefix: Optional[str], workdir: Path, options: StagingOptions, model_config: str,
                      resume: bool = True) -> Optional[Resumed]:
    """At job start: fetch the newest complete checkpoint of `--checkpointPrefix` into the job's
    local checkpoint directory (where the payload resumes from it). None without a prefix, with
    resume off, or when the prefix holds no complete checkpoint yet."""
    if not prefix or not resume:
        return None
    resumed = restore_latest(resolve_prefix(prefix), local_dir(workdir), options, model_config)
    if resumed is not None:
        log(resumed.message)
    return resumed


def start_sync(prefix: Optional[str], workdir: Path, options: StagingOptions,
               model_config: str) -> Optional[CheckpointSync]:
    """During training: the `on_checkpoint` callback that uploads each new checkpoint under
    `--checkpointPrefix` in the background; None without a prefix. Close it after training."""
    if not prefix:
        return None
    store = open_store(resolve_prefix(prefix), options)
    return CheckpointSync(store, model_config, Path(workdir) / ".checkpoint-upload")
