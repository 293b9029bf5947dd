"""The event file format: its constants, opening a source, the schema check, file descriptions.

Event file (one per input; see docs/design.md, 'File formats'):
    /images    float32 [N, 320, 320]  one chunk per event, compressed; rows are ticks, columns wires
    /labels    uint8   [N, 320, 320]  0 background, 1 beam, 2 cosmic (training/evaluation files)
    /event_id  int64   [N]
    attrs: detector, plane, classes, normalisation, format_version (+ generator, seed, ...)

A source is a path or a seekable binary file object (read/seek/tell), such as a direct-access
object-store reader; nothing here closes an object it did not open.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Sequence, Tuple, Union

import h5py
import numpy as np

from payload.config import FileCount
from payload.errors import EventFileError

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
# than LZF or any shuffled variant (scripts/bench/events.py measures them).
COMPRESSION = {"compression": "gzip", "compression_opts": 1}


Source = Union[str, os.PathLike, BinaryIO]

# What to do about a file of the wrong layout, said in every schema error.
NOT_AN_EVENT_FILE = ("this is not a DUNE event file: check that the right file was staged, or "
                     "regenerate it (`dune-events convert-csv` converts CSV)")


def source_name(source: Source) -> str:
    """The name shown in messages: the path, or a file object's `name`."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", None) or type(source).__name__)


def as_sources(sources) -> list:
    """One source or several, as a list."""
    if isinstance(sources, (str, os.PathLike)) or hasattr(sources, "read"):
        return [sources]
    return list(sources)


def from_hdf5(err: BaseException) -> bool:
    """Whether h5py raised `err` for the file's content: it reports HDF5 failures as plain OSError
    (or ValueError/RuntimeError). Anything else was raised by a file object, such as a network
    reader's timeout, and is passed on unchanged for the caller to classify."""
    return type(err) is OSError or isinstance(err, (ValueError, RuntimeError))


def _open_error(name: str, err: Exception) -> EventFileError:
    text = str(err)
    sizes = re.search(r"\beof = (\d+).*stored_eof = (\d+)", text)
    if "signature not found" in text:
        why = ("is not an HDF5 file; event files are HDF5: convert CSV with "
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
def open_source(source: Source) -> Iterator[h5py.File]:
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
        if not from_hdf5(err):
            raise
        raise _open_error(name, err) from None
    try:
        yield handle
    finally:
        handle.close()


def require_dataset(f: h5py.File, key: str, name: str, what: str) -> h5py.Dataset:
    obj = f.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise EventFileError(f"{name}: no /{key} dataset; {what}", path=name)
    return obj


def _check_dataset(ds: h5py.Dataset, name: str, shape: tuple, kinds: str, expected: str) -> None:
    if ds.shape != shape:
        want = "[" + ", ".join("N" if i == 0 else str(s) for i, s in enumerate(shape)) + "]"
        raise EventFileError(f"{name}: {ds.name} has shape {list(ds.shape)}, expected {want}; "
                             f"{NOT_AN_EVENT_FILE}", path=name)
    if ds.dtype.kind not in kinds:
        raise EventFileError(f"{name}: {ds.name} has dtype {ds.dtype}, expected {expected}; "
                             f"{NOT_AN_EVENT_FILE}", path=name)


def check_schema(f: h5py.File, name: str, with_labels: bool) -> int:
    """Check datasets, shapes, dtypes and lengths; read the first and last event. Return N."""
    try:
        return _schema_length(f, name, with_labels)
    except (OSError, ValueError, RuntimeError) as err:
        # A damaged object header or datatype message fails when h5py first describes the
        # dataset (its dtype, its shape), not when the file is opened.
        if not from_hdf5(err):
            raise
        raise EventFileError(f"{name}: its structure is unreadable ({err}); the file is corrupt, "
                             "fetch it again", path=name) from None


def _schema_length(f: h5py.File, name: str, with_labels: bool) -> int:
    images = require_dataset(f, "images", name, "an event file holds /images, /event_id and, for "
                      "training or evaluation, /labels: check that the right file was staged")
    if images.ndim != 3:
        raise EventFileError(f"{name}: /images has shape {list(images.shape)}, expected "
                             f"[N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}]; {NOT_AN_EVENT_FILE}", path=name)
    n = images.shape[0]
    _check_dataset(images, name, (n, *IMAGE_SHAPE), "f", "float32")
    event_id = require_dataset(f, "event_id", name, "every event file numbers its events: regenerate the file with the event writer")
    _check_dataset(event_id, name, (n,), "iu", "int64")
    checked = [images, event_id]
    if with_labels:
        labels = require_dataset(f, "labels", name, "training and evaluation need truth labels: give a "
                          "labelled file, or run inference")
        _check_dataset(labels, name, (n, *IMAGE_SHAPE), "iu", "uint8")
        checked.append(labels)
    for ds in checked:
        for index in {0, n - 1} if n else ():
            try:
                ds[index]
            except (OSError, ValueError, RuntimeError) as err:
                if not from_hdf5(err):
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
    for source in as_sources(sources):
        name = source_name(source)
        with open_source(source) as f:
            counts.append(FileCount(path=name, events=check_schema(f, name, require_labels)))
    return tuple(counts)


def describe_file(source: Source) -> dict:
    """Events, datasets (shape, dtype, compression) and attributes of an event or predictions file."""
    name = source_name(source)
    with open_source(source) as f:
        datasets = {key: {"shape": list(obj.shape), "dtype": str(obj.dtype),
                          "compression": obj.compression}
                    for key, obj in f.items() if isinstance(obj, h5py.Dataset)}
        return {"path": name, "events": int(f["event_id"].shape[0]) if "event_id" in datasets else None,
                "datasets": datasets, "attrs": read_attrs(f)}


# ---------------------------------------------------------------------------------------------


def read_attrs(obj) -> dict:
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
