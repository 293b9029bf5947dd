"""Resume across job retries: checkpoints kept under a task-wide prefix, outside the job directory.

A retried job (new PandaID, same task) gets a fresh job directory, so checkpoints live under
`--checkpointPrefix` (`s3://bucket/dune/task-{taskid}/` or a shared directory; `{taskid}` becomes
the pilot's PanDA_TaskID), where wrapper.checkpoints.store keeps them. At start the newest
complete checkpoint is downloaded, verified, and renamed into the job's local checkpoint directory,
where the payload's own `latest_checkpoint` finds it. During training wrapper.checkpoints.sync
uploads each new checkpoint the payload reports through `on_checkpoint`, in the background.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from wrapper.checkpoints.store import Checkpoint, S3Store, complete_checkpoints, open_store, resolve_prefix
from wrapper.checkpoints.sync import CheckpointSync
from wrapper.causes import Cause
from wrapper.errors import InputFileError
from wrapper.jobfiles import CHECKPOINT_DIR
from wrapper.console import log
from wrapper.redact import redact
from wrapper.staging.options import StagingOptions
from wrapper.staging.verify import adler32_of



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


def local_dir(workdir: Path) -> Path:
    """The job's local checkpoint directory, where the payload reads and writes checkpoints."""
    return Path(workdir) / CHECKPOINT_DIR


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
                                 "--resume=false to start over", cause=Cause.MODEL_MISMATCH,
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
        cause, detail = Cause.UNREADABLE, redact(str(err))
    return InputFileError(f"checkpoints under {redact(prefix)} cannot be listed: {cause}: {detail[:300]}",
                          cause=cause, source=redact(prefix))


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
