"""The original dataset's CSV format and its conversion to event files.

Features and labels come in two files, each with one header row and then one event per row of
320 × 320 = 102,400 comma-separated values (row-major: ticks, then wires). Files ending in `.gz`
are read through gzip. Rows are streamed: a file of any size converts in the memory
of `chunk_events` events.
"""
from __future__ import annotations

import gzip
import itertools
import os
from typing import Iterator, Optional, TextIO, Tuple

import numpy as np

from payload.errors import EventFileError
from payload.events import IMAGE_SHAPE, N_CLASSES, EventWriter

VALUES_PER_EVENT = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def _open_text(path, mode: str) -> TextIO:
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="ascii", newline="")
    return open(path, mode, encoding="ascii", newline="")


def _rows(path) -> Iterator[Tuple[int, str]]:
    """(line number, text) of each data row: the header skipped, blank lines ignored."""
    name = os.fspath(path)
    try:
        handle = _open_text(path, "r")
    except FileNotFoundError:
        raise EventFileError(f"{name}: no such file", path=name) from None
    with handle:
        try:
            if handle.readline() == "":
                raise EventFileError(f"{name}: empty file; expected a header row and one event "
                                     "per row", path=name)
            for number, line in enumerate(handle, start=2):
                if line.strip():
                    yield number, line
        except (UnicodeDecodeError, OSError, EOFError) as err:
            raise EventFileError(f"{name}: not a readable CSV text file ({err})", path=name) from None


def _parse(path, number: int, line: str, event: int) -> np.ndarray:
    name = os.fspath(path)
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != VALUES_PER_EVENT:
        raise EventFileError(f"{name}: line {number} (event {event}) has {len(fields)} values, "
                             f"expected {VALUES_PER_EVENT} (one 320x320 event per row)",
                             path=name, event=event)
    try:
        return np.array(fields, dtype=np.float64)
    except ValueError:
        bad = next(f for f in fields if not _is_number(f))
        raise EventFileError(f"{name}: line {number} (event {event}) holds a non-numeric value "
                             f"{bad.strip()[:20]!r}", path=name, event=event) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _labels(path, number: int, values: np.ndarray, event: int) -> np.ndarray:
    if not np.all((values == np.round(values)) & (values >= 0) & (values < N_CLASSES)):
        name = os.fspath(path)
        raise EventFileError(f"{name}: line {number} (event {event}) holds labels other than the "
                             f"integers 0..{N_CLASSES - 1}", path=name, event=event)
    return values.astype(np.uint8)


def _image(path, number: int, values: np.ndarray, event: int, normalise: bool) -> np.ndarray:
    if not np.isfinite(values).all():
        name = os.fspath(path)
        raise EventFileError(f"{name}: line {number} (event {event}) holds NaN or infinite values",
                             path=name, event=event)
    peak = values.max()
    if normalise and peak > 0:
        values = values / peak
    return values.astype(np.float32)


def convert_csv(features_csv, labels_csv, out_path, *, chunk_events: int = 64,
                normalise: bool = True, attrs: Optional[dict] = None) -> int:
    """Convert the original CSV pair into an event file at `out_path`; return the event count.

    Event ids are the row numbers (0 = first data row). With `normalise`, each image is divided by
    its own maximum, as the network expects (a no-op on already normalised data). Raises
    EventFileError naming the file and line for a wrong row length, a non-numeric value, labels
    outside 0..2, or row counts that differ between the two files; no output is left behind then.
    """
    features, labels = _rows(features_csv), _rows(labels_csv)
    provenance = {"converted_from": [os.path.basename(os.fspath(p)) for p in (features_csv, labels_csv)]}
    with EventWriter(out_path, with_labels=True, attrs={**provenance, **(attrs or {})}) as writer:
        images, truths = [], []
        for event, (feature_row, label_row) in enumerate(itertools.zip_longest(features, labels)):
            if feature_row is None or label_row is None:
                short, other = (features_csv, labels_csv) if feature_row is None else (labels_csv, features_csv)
                raise EventFileError(f"{os.fspath(short)}: ends after {event} events but "
                                     f"{os.fspath(other)} has more; the two files must hold the "
                                     "same events, row by row", path=os.fspath(short), event=event)
            images.append(_image(features_csv, feature_row[0],
                                 _parse(features_csv, *feature_row, event), event, normalise))
            truths.append(_labels(labels_csv, label_row[0], _parse(labels_csv, *label_row, event), event))
            if len(images) == chunk_events:
                _append(writer, images, truths)
        _append(writer, images, truths)
        if writer.n_events == 0:
            raise EventFileError(f"{os.fspath(features_csv)}: holds a header but no events",
                                 path=os.fspath(features_csv))
        return writer.n_events


def _append(writer: EventWriter, images: list, truths: list) -> None:
    if images:
        writer.append(np.stack(images).reshape(-1, *IMAGE_SHAPE), np.stack(truths).reshape(-1, *IMAGE_SHAPE))
        images.clear()
        truths.clear()
