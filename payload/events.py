"""Event files (DESIGN §6): schema checks, a streaming batch reader with background prefetch,
an incremental event writer and the predictions writer. h5py and numpy only.

Event file:
    /images    float32 [N, 320, 320]  one chunk per event, compressed; rows are ticks, columns wires
    /labels    uint8   [N, 320, 320]  0 background, 1 beam, 2 cosmic (training/evaluation files)
    /event_id  int64   [N]
    attrs: detector, plane, classes, normalisation, format_version (+ generator, seed, ...)

Predictions file:
    /scores    float16 [N, 320, 320, 3] class probabilities   or   /classes uint8 [N, 320, 320]
    /event_id  int64   [N]
    attrs: output_format, classes, format_version, created, model_version, build, code_version,
           inputs, ...

A source is a path or a seekable binary file object (read/seek/tell), such as a direct-access
object-store reader; the reader never closes an object it did not open.
"""
from __future__ import annotations

import json
import os
import queue
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from payload.config import FileCount
from payload.errors import EventFileError, NoEventsError, PayloadError

IMAGE_SHAPE = (320, 320)
N_CLASSES = 3
CLASS_NAMES = ("background", "beam", "cosmic")
FORMAT_VERSION = 1

BASE_ATTRS = {
    "detector": "ProtoDUNE-SP",
    "plane": "collection (W) plane of APAs 1-3, 1440 wires x 6000 ticks, max charge per 320x320 bin",
    "classes": CLASS_NAMES,
    "normalisation": "each image divided by its own maximum",
    "format_version": FORMAT_VERSION,
}

# One chunk per event so a batch reads exactly its events. Deflate level 1 without shuffle: every
# HDF5 build reads it, and on these mostly-empty images it is both smaller and faster to decode
# than LZF or any shuffled variant (scripts/bench_events.py measures them).
COMPRESSION = {"compression": "gzip", "compression_opts": 1}

PREFETCH_THREAD_NAME = "dune-events-prefetch"
WRITER_THREAD_NAME = "dune-events-writer"

Source = Union[str, os.PathLike, BinaryIO]


@dataclass(frozen=True)
class Batch:
    """Consecutive events of one file: `first_index` is the index in `source` of the first one."""

    event_id: np.ndarray                 # int64 [B]
    images: np.ndarray                   # float32 [B, 320, 320, 1]
    labels: Optional[np.ndarray]         # uint8 [B, 320, 320], None when not asked for
    source: str
    first_index: int


@dataclass(frozen=True)
class Predictions:
    """Contents of (part of) a predictions file; `classes` is the argmax when scores were stored."""

    event_id: np.ndarray                 # int64 [N]
    classes: np.ndarray                  # uint8 [N, 320, 320]
    scores: Optional[np.ndarray]         # float16 [N, 320, 320, 3] or None
    attrs: Mapping[str, Any]


def source_name(source: Source) -> str:
    """The name shown in messages: the path, or a file object's `name`."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", None) or type(source).__name__)


def _as_sources(sources) -> list:
    if isinstance(sources, (str, os.PathLike)) or hasattr(sources, "read"):
        return [sources]
    return list(sources)


# ---------------------------------------------------------------------------------------------
# Opening and schema


def _from_hdf5(err: BaseException) -> bool:
    """Whether h5py raised `err` for the file's content: it reports HDF5 failures as plain OSError
    (or ValueError/RuntimeError). Anything else was raised by a file object, such as a network
    reader's timeout, and is passed on unchanged for the caller to classify."""
    return type(err) is OSError or isinstance(err, (ValueError, RuntimeError))


def _open_error(name: str, err: Exception) -> EventFileError:
    text = str(err)
    sizes = re.search(r"\beof = (\d+).*stored_eof = (\d+)", text)
    if "signature not found" in text:
        why = ("is not an HDF5 file; an event file is HDF5 (DESIGN §6): convert CSV with "
               "`dune-events convert-csv`, or check that the right file was staged")
    elif "truncated file" in text and sizes:
        why = (f"is truncated: {sizes.group(1)} of its {sizes.group(2)} bytes are there; the "
               "transfer was cut short, fetch it again")
    else:
        why = f"cannot be read as HDF5 ({text}); the file is corrupt, fetch it again"
    return EventFileError(f"{name}: {why}", path=name)


def _file_object_size(obj) -> int:
    here = obj.tell()
    try:
        obj.seek(0, os.SEEK_END)
        return obj.tell()
    finally:
        obj.seek(here)


@contextmanager
def _open(source: Source) -> Iterator[h5py.File]:
    """Open a source read-only, turning every way it can fail to open into an EventFileError."""
    name = source_name(source)
    try:
        if isinstance(source, (str, os.PathLike)):
            size = os.stat(source).st_size
            target = os.fspath(source)
        else:
            size = _file_object_size(source)
            target = source
        if size == 0:
            raise EventFileError(f"{name}: empty file (0 bytes); the transfer probably failed, "
                                 "fetch it again", path=name)
        handle = h5py.File(target, "r")
    except FileNotFoundError:
        raise EventFileError(f"{name}: no such file; check the input name and that it was staged",
                             path=name) from None
    except IsADirectoryError:
        raise EventFileError(f"{name}: is a directory, not an event file", path=name) from None
    except PermissionError:
        raise EventFileError(f"{name}: permission denied", path=name) from None
    except (OSError, ValueError) as err:
        if not _from_hdf5(err):
            raise
        raise _open_error(name, err) from None
    try:
        yield handle
    finally:
        handle.close()


def _dataset(f: h5py.File, key: str, name: str, what: str) -> h5py.Dataset:
    obj = f.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise EventFileError(f"{name}: no /{key} dataset; {what}", path=name)
    return obj


def _check_dataset(ds: h5py.Dataset, name: str, shape: tuple, kinds: str, expected: str) -> None:
    if ds.shape != shape:
        want = "[" + ", ".join("N" if i == 0 else str(s) for i, s in enumerate(shape)) + "]"
        raise EventFileError(f"{name}: {ds.name} has shape {list(ds.shape)}, expected {want} "
                             "(DESIGN §6)", path=name)
    if ds.dtype.kind not in kinds:
        raise EventFileError(f"{name}: {ds.name} has dtype {ds.dtype}, expected {expected} "
                             "(DESIGN §6)", path=name)


def _check_schema(f: h5py.File, name: str, with_labels: bool) -> int:
    """Check datasets, shapes, dtypes and lengths; read the first and last event. Return N."""
    try:
        return _schema_length(f, name, with_labels)
    except (OSError, ValueError, RuntimeError) as err:
        # A damaged object header or datatype message fails when h5py first describes the
        # dataset (its dtype, its shape), not when the file is opened.
        if not _from_hdf5(err):
            raise
        raise EventFileError(f"{name}: its structure is unreadable ({err}); the file is corrupt, "
                             "fetch it again", path=name) from None


def _schema_length(f: h5py.File, name: str, with_labels: bool) -> int:
    images = _dataset(f, "images", name, "an event file holds /images, /event_id and, for "
                      "training or evaluation, /labels (DESIGN §6)")
    if images.ndim != 3:
        raise EventFileError(f"{name}: /images has shape {list(images.shape)}, expected "
                             f"[N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}] (DESIGN §6)", path=name)
    n = images.shape[0]
    _check_dataset(images, name, (n, *IMAGE_SHAPE), "f", "float32")
    event_id = _dataset(f, "event_id", name, "every event file numbers its events (DESIGN §6)")
    _check_dataset(event_id, name, (n,), "iu", "int64")
    checked = [images, event_id]
    if with_labels:
        labels = _dataset(f, "labels", name, "training and evaluation need truth labels: give a "
                          "labelled file, or run inference")
        _check_dataset(labels, name, (n, *IMAGE_SHAPE), "iu", "uint8")
        checked.append(labels)
    for ds in checked:
        for index in {0, n - 1} if n else ():
            try:
                ds[index]
            except (OSError, ValueError, RuntimeError) as err:
                if not _from_hdf5(err):
                    raise
                raise EventFileError(f"{name}: {ds.name} event {index} is unreadable ({err}); the "
                                     "file is corrupt, fetch it again", path=name, event=index) from None
    return n


def inspect_inputs(sources: Sequence[Source], *, require_labels: bool) -> Tuple[FileCount, ...]:
    """Cheap schema check of each source (no framework import); the number of events of each.

    Raises EventFileError naming the file and the problem when a source is missing, empty, not
    HDF5, truncated, lacks a dataset (labels only when `require_labels`) or has a wrong shape,
    dtype or length.
    """
    counts = []
    for source in _as_sources(sources):
        name = source_name(source)
        with _open(source) as f:
            counts.append(FileCount(path=name, events=_check_schema(f, name, require_labels)))
    return tuple(counts)


def describe_file(source: Source) -> dict:
    """Events, datasets (shape, dtype, compression) and attributes of an event or predictions file."""
    name = source_name(source)
    with _open(source) as f:
        datasets = {key: {"shape": list(obj.shape), "dtype": str(obj.dtype),
                          "compression": obj.compression}
                    for key, obj in f.items() if isinstance(obj, h5py.Dataset)}
        return {"path": name, "events": int(f["event_id"].shape[0]) if "event_id" in datasets else None,
                "datasets": datasets, "attrs": _read_attrs(f)}


# ---------------------------------------------------------------------------------------------
# Reading


def _selection(counts: Sequence[FileCount], skip_events: int, max_events: int) -> list:
    """(file number, first, stop) per file for events skip .. skip+max of the concatenation."""
    left = max_events if max_events >= 0 else sum(c.events for c in counts)
    plan, offset = [], 0
    for number, count in enumerate(counts):
        first = max(skip_events - offset, 0)
        stop = min(count.events, first + left)
        if first < stop:
            plan.append((number, first, stop))
            left -= stop - first
        offset += count.events
    return plan


def _validate(name: str, first: int, event_id, images, labels) -> None:
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if bad.any():
        k = int(np.argmax(bad))
        raise EventFileError(f"{name}: event {first + k} (event_id {event_id[k]}): image holds NaN "
                             "or infinite values; the file was written wrongly, regenerate it",
                             path=name, event=first + k)
    if labels is not None and (labels.max() >= N_CLASSES or labels.min() < 0):
        bad = ((labels < 0) | (labels >= N_CLASSES)).reshape(len(labels), -1).any(axis=1)
        k = int(np.argmax(bad))
        raise EventFileError(f"{name}: event {first + k} (event_id {event_id[k]}): labels hold "
                             f"values outside 0..{N_CLASSES - 1}; this is not a DUNE label file",
                             path=name, event=first + k)


def _read_slice(name: str, ds: h5py.Dataset, first: int, stop: int, out: np.ndarray) -> np.ndarray:
    try:
        if ds.dtype == out.dtype:
            ds.read_direct(out, np.s_[first:stop])
        else:
            return ds[first:stop]
    except (OSError, ValueError, RuntimeError) as err:
        if not _from_hdf5(err):
            raise
        raise EventFileError(f"{name}: {ds.name} events {first}..{stop - 1} are unreadable ({err}); "
                             "the file is corrupt, fetch it again", path=name, event=first) from None
    return out


def _read_batches(sources, plan, batch_size, with_labels, validate) -> Iterator[Batch]:
    for number, first, stop in plan:
        source = sources[number]
        name = source_name(source)
        with _open(source) as f:
            images_ds, ids_ds = f["images"], f["event_id"]
            labels_ds = f["labels"] if with_labels else None
            for start in range(first, stop, batch_size):
                end = min(start + batch_size, stop)
                b = end - start
                images = _read_slice(name, images_ds, start, end, np.empty((b, *IMAGE_SHAPE), np.float32))
                event_id = _read_slice(name, ids_ds, start, end, np.empty(b, np.int64))
                labels = None
                if labels_ds is not None:
                    labels = _read_slice(name, labels_ds, start, end, np.empty((b, *IMAGE_SHAPE), np.uint8))
                if validate:
                    _validate(name, start, event_id, images, labels)
                yield Batch(
                    event_id=np.asarray(event_id, np.int64),
                    images=np.asarray(images, np.float32).reshape(b, *IMAGE_SHAPE, 1),
                    labels=None if labels is None else np.asarray(labels, np.uint8),
                    source=name,
                    first_index=start,
                )


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _prefetched(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run `batches` in a thread that keeps up to `depth` batches ready.

    The thread's exceptions are re-raised here; when the consumer stops early (break, close, an
    exception) the thread is told to stop, closes its file and is joined before this returns.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(_Failure(err))
        finally:
            batches.close()

    thread = threading.Thread(target=produce, name=PREFETCH_THREAD_NAME, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def iter_batches(sources: Sequence[Source], batch_size: int, *, skip_events: int = 0,
                 max_events: int = -1, with_labels: bool = False, prefetch: int = 2,
                 validate: bool = True) -> Iterator[Batch]:
    """Stream events of `sources`, in order, as batches of at most `batch_size` events.

    `skip_events` and `max_events` (-1: all) select from the concatenated event sequence. A batch
    never spans two files, so the last batch of each file may be shorter. Only the events of one
    batch are read at a time; with `prefetch` > 0 a background thread reads up to that many
    batches ahead. With `validate`, each batch is checked for NaN/inf images and labels outside
    0..2 (EventFileError naming file and event).

    The schema of every file is checked when this is called, before any batch is read; raises
    EventFileError for a bad file and NoEventsError when the selection holds no event.
    """
    if batch_size < 1 or skip_events < 0 or max_events < -1 or prefetch < 0:
        raise ValueError(f"batch_size must be >= 1, skip_events >= 0, max_events >= -1 and "
                         f"prefetch >= 0 (got {batch_size}, {skip_events}, {max_events}, {prefetch})")
    sources = _as_sources(sources)
    counts = inspect_inputs(sources, require_labels=with_labels)
    plan = _selection(counts, skip_events, max_events)
    if not plan:
        total = sum(c.events for c in counts)
        raise NoEventsError(f"no events selected: {total} event(s) in {len(counts)} file(s), "
                            f"skipEvents={skip_events}, maxEvents={max_events}")
    batches = _read_batches(sources, plan, batch_size, with_labels, validate)
    return _prefetched(batches, prefetch) if prefetch else batches


def read_event(source: Source, index: int) -> Tuple[int, np.ndarray, Optional[np.ndarray]]:
    """(event_id, image float32 [320, 320], labels uint8 [320, 320] or None) of event `index`."""
    name = source_name(source)
    with _open(source) as f:
        with_labels = isinstance(f.get("labels"), h5py.Dataset)
        n = _check_schema(f, name, with_labels)
    if not 0 <= index < n:
        raise EventFileError(f"{name}: has {n} events, no event {index}", path=name, event=index)
    (batch,) = _read_batches([source], [(0, index, index + 1)], 1, with_labels, True)
    labels = None if batch.labels is None else batch.labels[0]
    return int(batch.event_id[0]), batch.images[0, ..., 0], labels


# ---------------------------------------------------------------------------------------------
# Writing


def _set_attrs(obj, attrs: Mapping[str, Any]) -> None:
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


def _read_attrs(obj) -> dict:
    out = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray):
            value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


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


def _as_event_ids(event_ids, n: int, first: int) -> np.ndarray:
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


class _OutputFile:
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


class EventWriter(_OutputFile):
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
        _set_attrs(f, self.attrs)
        return f

    def append(self, images, labels=None, event_ids=None) -> None:
        """Append events: images [B, 320, 320] (or [B, 320, 320, 1]), labels [B, 320, 320] when
        the file has labels, event_ids [B] (default: the running event number)."""
        images = _as_images(images)
        n = len(images)
        if self.with_labels != (labels is not None):
            raise ValueError("labels must be given exactly when the writer was opened with_labels")
        arrays = {"images": images, "event_id": _as_event_ids(event_ids, n, self.n_events)}
        if labels is not None:
            arrays["labels"] = _as_labels(labels, n)
        end = self.n_events + n
        for key, data in arrays.items():
            self._file[key].resize(end, axis=0)
            self._write(key, self.n_events, end, data)
        self.n_events = end


def write_events(path, images, labels=None, event_ids=None, *,
                 attrs: Optional[Mapping[str, Any]] = None) -> None:
    """Write a whole event file from arrays (DESIGN §6); labels optional, event_ids default 0..N-1."""
    with EventWriter(path, with_labels=labels is not None, attrs=attrs) as writer:
        writer.append(images, labels, event_ids)


def _softmax(logits: np.ndarray) -> np.ndarray:
    # Channel by channel: reductions over a trailing axis of 3 are several times slower in numpy.
    channels = [logits[..., k] for k in range(N_CLASSES)]
    peak = np.maximum.reduce(channels)
    e = np.exp(logits - peak[..., None])
    e /= sum(e[..., k] for k in range(N_CLASSES))[..., None]
    return e


def _looks_like_probabilities(values: np.ndarray) -> bool:
    # A sample of pixels decides; float16 softmax outputs sum to 1 only within about 1e-3.
    sample = values[:, ::7, ::7]
    return bool(sample.min() >= 0 and sample.max() <= 1
                and np.allclose(sample.sum(axis=-1), 1.0, rtol=0, atol=1e-2))


class PredictionWriter(_OutputFile):
    """Write a predictions file of exactly `n_events` events, batch by batch.

    `output_format` "scores" stores class probabilities as float16 [N, 320, 320, 3]; "classes"
    stores the most likely class as uint8 [N, 320, 320]. `attrs` carries provenance
    (model_version, build, code_version, inputs, ...); `created` and the format are added.
    The file is written at `path` only (callers rename it when the job succeeds). On an exception
    inside the context, or when fewer than `n_events` events were written, the file is removed.

    With `background` (the default) a thread converts and stores each batch while the caller
    computes the next; at most two batches wait. A failure there (a full disk) is raised by the
    next `write` or when the context closes.
    """

    FORMATS = ("scores", "classes")

    def __init__(self, path, *, n_events: int, output_format: str = "scores",
                 attrs: Optional[Mapping[str, Any]] = None, background: bool = True):
        if output_format not in self.FORMATS:
            raise ValueError(f"output_format must be one of {self.FORMATS}, got {output_format!r}")
        if n_events < 1:
            raise ValueError(f"n_events must be >= 1, got {n_events}")
        super().__init__(path)
        self.n_events = n_events
        self.output_format = output_format
        self.attrs = dict(attrs or {})
        self.written = 0
        self._background = background
        self._jobs: queue.Queue = queue.Queue(maxsize=2)
        self._thread: Optional[threading.Thread] = None
        self._failure: Optional[BaseException] = None
        self._abandon = False

    def _create(self) -> h5py.File:
        f = super()._create()
        if self.output_format == "scores":
            # Float16 probabilities hardly compress (< 15 %) and deflate would cost 20-50 times
            # the write time (scripts/bench_events.py), so scores are stored plain.
            f.create_dataset("scores", shape=(self.n_events, *IMAGE_SHAPE, N_CLASSES), dtype=np.float16,
                             chunks=(1, *IMAGE_SHAPE, N_CLASSES))
        else:
            f.create_dataset("classes", shape=(self.n_events, *IMAGE_SHAPE), dtype=np.uint8,
                             chunks=(1, *IMAGE_SHAPE), **COMPRESSION)
        f.create_dataset("event_id", shape=(self.n_events,), dtype=np.int64)
        _set_attrs(f, {**self.attrs, "output_format": self.output_format, "classes": CLASS_NAMES,
                       "format_version": FORMAT_VERSION,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        if self._background:
            self._thread = threading.Thread(target=self._work, name=WRITER_THREAD_NAME, daemon=True)
            self._thread.start()
        return f

    def write(self, event_ids, outputs, *, from_logits: Optional[bool] = None) -> None:
        """Append the network outputs [B, 320, 320, 3] of events `event_ids` [B].

        `from_logits`: True for logits (softmaxed here), False for probabilities (fastest: apply
        the softmax on the device); None decides by the values (probabilities when they lie in
        0..1 and each pixel's three sum to 1). `outputs` is copied, the caller may reuse it.
        """
        outputs = np.array(outputs, dtype=np.float32)
        b = len(outputs)
        if outputs.shape != (b, *IMAGE_SHAPE, N_CLASSES):
            raise ValueError(f"outputs must be [B, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}, {N_CLASSES}], "
                             f"got {list(outputs.shape)}")
        event_ids = _as_event_ids(event_ids, b, 0)
        end = self.written + b
        if end > self.n_events:
            raise ValueError(f"{self.path}: {end} events written, more than the {self.n_events} announced")
        if self._failure is not None:
            raise self._failure
        job = (self.written, end, event_ids, outputs, from_logits)
        self.written = end
        if self._thread is not None:
            self._jobs.put(job)
        else:
            self._store(*job)

    def _store(self, first: int, end: int, event_ids, outputs, from_logits) -> None:
        if self.output_format == "scores":
            if from_logits is None:
                from_logits = not _looks_like_probabilities(outputs)
            scores = _softmax(outputs) if from_logits else outputs
            # Convert here: HDF5's own float32 -> float16 conversion turns 0.99992 into 0.5.
            self._write("scores", first, end, scores.astype(np.float16))
        else:
            self._write("classes", first, end, outputs.argmax(axis=-1).astype(np.uint8))
        self._write("event_id", first, end, event_ids)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._failure is None and not self._abandon:
                try:
                    self._store(*job)
                except BaseException as err:  # raised in the caller's thread by write/close
                    self._failure = err

    def _stop_worker(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _finish(self) -> None:
        self._stop_worker()
        if self._failure is not None:
            raise self._failure
        if self.written != self.n_events:
            raise PayloadError(f"{self.path}: {self.written} of {self.n_events} events written; "
                               "the predictions file is incomplete and was removed")

    def _discard(self) -> None:
        self._abandon = True
        self._stop_worker()
        super()._discard()


def read_predictions(path, *, start: int = 0, stop: Optional[int] = None,
                     event_id: Optional[int] = None) -> Predictions:
    """Events start..stop of a predictions file (all of it by default: mind the memory), or with
    `event_id` only the event of that id (EventFileError when the file has none)."""
    name = source_name(path)
    with _open(path) as f:
        ids = _dataset(f, "event_id", name, "not a predictions file")
        if event_id is not None:
            matches = np.flatnonzero(ids[:] == event_id)
            if matches.size == 0:
                raise EventFileError(f"{name}: holds no prediction for event_id {event_id}",
                                     path=name)
            start, stop = int(matches[0]), int(matches[0]) + 1
        if isinstance(f.get("scores"), h5py.Dataset):
            scores = f["scores"][start:stop]
            classes = scores.argmax(axis=-1).astype(np.uint8)
        else:
            scores = None
            classes = _dataset(f, "classes", name, "a predictions file holds /scores or /classes")[start:stop]
        return Predictions(event_id=ids[start:stop], classes=classes, scores=scores, attrs=_read_attrs(f))
