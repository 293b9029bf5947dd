"""Checkpoints under `--checkpointPrefix`: the stores (a shared directory or S3), the manifest that
makes a checkpoint complete, and the list of complete ones.

Layout under the prefix, one folder per checkpoint the payload wrote (folder names from
payload.checkpoints, through payload.api):

    <prefix>/ckpt-e0003-s0000000/model.npz, optimizer.npz, state.json
    <prefix>/ckpt-e0003-s0000000/MANIFEST.json      uploaded last: name, sizes, adler32s, config

A checkpoint is complete only when its MANIFEST.json exists, and the manifest is written after every
file it lists, so an upload cut short by SIGKILL is never taken as the latest.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from payload.api import CHECKPOINT_NAME_RE as NAME_RE, parse_checkpoint_name as parse_name
from wrapper.errors import ArgumentError
from wrapper.console import log
from wrapper.redact import redact
from wrapper.staging.options import StagingOptions
from wrapper.staging.verify import adler32_of

MANIFEST = "MANIFEST.json"
MANIFEST_VERSION = 1
TASK_TOKEN = "{taskid}"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint under the prefix, as its manifest describes it."""

    name: str
    location: str                        # prefix + name + "/"
    epoch: int
    step: int
    model_config: str
    files: tuple                         # ((file name, size, adler32), ...)


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
        from wrapper.staging.s3 import S3
        from wrapper.staging.s3_client import split_uri

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


def manifest_for(checkpoint_dir: Path, model_config: str, files: list[Path]) -> dict:
    """The manifest of a local checkpoint folder written by the payload."""
    position = parse_name(checkpoint_dir.name)
    if position is None:
        raise ValueError(f"{checkpoint_dir.name!r} is not a checkpoint folder name")
    return {"version": MANIFEST_VERSION, "name": checkpoint_dir.name, "epoch": position[0],
            "step": position[1], "model_config": model_config, "created": time.time(),
            "pandaid": os.environ.get("PANDAID", ""),
            "files": [{"name": p.name, "size": p.stat().st_size, "adler32": adler32_of(p)} for p in files]}
