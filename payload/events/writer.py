"""Writing event files: an incremental writer, and whole files from arrays.

`OutputFile` is the base of every HDF5 output here: a file that exists only when complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import h5py
import numpy as np

from payload.events.schema import BASE_ATTRS, COMPRESSION, IMAGE_SHAPE, N_CLASSES


def set_attrs(obj, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, Mapping):
            value = json.dumps(dict(value), sort_keys=True, default=str)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
            value = np.array([os.fspath(v) for v in value], dtype=h5py.string_dtype())
        obj.attrs[key] = value


def _as_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2:
        images = images[None]
    if images.shape[1:] != IMAGE_SHAPE or images.dtype.kind not in "fiu":
        raise ValueError(f"images must be numeric [B, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}], got "
                         f"{images.dtype} {list(images.shape)}")
    if not np.isfinite(images).all():
        raise ValueError("images hold NaN or infinite values")
    return images.astype(np.float32, copy=False)


def _as_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.shape != (n, *IMAGE_SHAPE) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer [{n}, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}], got "
                         f"{labels.dtype} {list(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"labels must lie in 0..{N_CLASSES - 1}")
    return labels.astype(np.uint8, copy=False)


def as_event_ids(event_ids, n: int, first: int) -> np.ndarray:
    if event_ids is None:
        return np.arange(first, first + n, dtype=np.int64)
    event_ids = np.asarray(event_ids)
    if event_ids.shape != (n,) or event_ids.dtype.kind not in "iu":
        raise ValueError(f"event_ids must be {n} integers, got {event_ids.dtype} {list(event_ids.shape)}")
    return event_ids.astype(np.int64, copy=False)


def _os_error(path, doing: str, err: Exception) -> OSError:
    """A one-line OSError for a failed create/write/close that keeps the errno (ENOSPC, EFBIG...)."""
    errno = getattr(err, "errno", None)
    error = OSError(f"{path}: {doing} failed ({os.strerror(errno) if errno else err})")
    error.errno = errno
    return error


class OutputFile:
    """An HDF5 output that exists only when complete: removed if its context exits with an error."""

    def __init__(self, path):
        self.path = Path(path)
        self._file: Optional[h5py.File] = None

    def _create(self) -> h5py.File:
        try:
            # No chunk cache: every chunk is written whole anyway, and without one a failed
            # write (disk full) raises in the write call instead of later in a destructor, where
            # h5py can only print it, and closing the file afterwards cannot crash the process.
            self._file = h5py.File(self.path, "w", rdcc_nbytes=0)
        except OSError as err:
            raise _os_error(self.path, "creating the file", err) from None
        return self._file

    def _write(self, key: str, first: int, end: int, data: np.ndarray) -> None:
        try:
            self._file[key][first:end] = data
        except OSError as err:
            raise _os_error(self.path, "writing", err) from None

    def _finish(self) -> None:
        """Checks before the file counts as complete; raise to have it removed."""

    def __enter__(self):
        self._create()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._discard()
            return False
        try:
            self._finish()
            try:
                self._file.close()
            except (OSError, RuntimeError) as err:
                raise _os_error(self.path, "completing the file", err) from None
        except BaseException:
            self._discard()
            raise
        return False

    def _discard(self) -> None:
        try:
            self._file.close()
        except (OSError, RuntimeError):
            pass  # the file is being thrown away because of the error already being raised
        self.path.unlink(missing_ok=True)


class EventWriter(OutputFile):
    """Write an event file incrementally: `with EventWriter(p, with_labels=True) as w: w.append(...)`.

    Events are appended in calls of any size, so N events never need to be in memory together.
    On an exception inside the context the partial file is removed.
    """

    def __init__(self, path, *, with_labels: bool, attrs: Optional[Mapping[str, Any]] = None):
        super().__init__(path)
        self.with_labels = with_labels
        self.attrs = {**BASE_ATTRS, **(attrs or {})}
        self.n_events = 0

    def _create(self) -> h5py.File:
        f = super()._create()
        for key, dtype in (("images", np.float32), ("labels", np.uint8)):
            if key == "images" or self.with_labels:
                f.create_dataset(key, shape=(0, *IMAGE_SHAPE), maxshape=(None, *IMAGE_SHAPE),
                                 dtype=dtype, chunks=(1, *IMAGE_SHAPE), **COMPRESSION)
        f.create_dataset("event_id", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        set_attrs(f, self.attrs)
        return f

    def append(self, images, labels=None, event_ids=None) -> None:
        """Append events: images [B, 320, 320] (or [B, 320, 320, 1]), labels [B, 320, 320] when
        the file has labels, event_ids [B] (default: the running event number)."""
        images = _as_images(images)
        n = len(images)
        if self.with_labels != (labels is not None):
            raise ValueError("labels must be given exactly when the writer was opened with_labels")
        arrays = {"images": images, "event_id": as_event_ids(event_ids, n, self.n_events)}
        if labels is not None:
            arrays["labels"] = _as_labels(labels, n)
        end = self.n_events + n
        for key, data in arrays.items():
            self._file[key].resize(end, axis=0)
            self._write(key, self.n_events, end, data)
        self.n_events = end


def write_events(path, images, labels=None, event_ids=None, *,
                 attrs: Optional[Mapping[str, Any]] = None) -> None:
    """Write a whole event file from arrays; labels optional, event_ids default 0..N-1."""
    with EventWriter(path, with_labels=labels is not None, attrs=attrs) as writer:
        writer.append(images, labels, event_ids)
