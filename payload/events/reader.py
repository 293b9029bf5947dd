"""Reading events: a streaming batch reader with background prefetch, and single events.

Only the events of one batch are in memory at a time; a prefetch thread reads the next batches
while the caller computes.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import h5py
import numpy as np

from payload.errors import EmptySelection, EventFileError
from payload.events.schema import (
    IMAGE_SHAPE, N_CLASSES, Source, as_sources, check_schema, from_hdf5, inspect_inputs, open_source,
    source_name,
)
from payload.events.selection import selection_plan

PREFETCH_THREAD_NAME = "dune-events-prefetch"


@dataclass(frozen=True)
class Batch:
    """Consecutive events of one file: `first_index` is the index in `source` of the first one."""

    event_id: np.ndarray                 # int64 [B]
    images: np.ndarray                   # float32 [B, 320, 320, 1]
    labels: Optional[np.ndarray]         # uint8 [B, 320, 320], None when not asked for
    source: str
    first_index: int



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
        if not from_hdf5(err):
            raise
        raise EventFileError(f"{name}: {ds.name} events {first}..{stop - 1} are unreadable ({err}); "
                             "the file is corrupt, fetch it again", path=name, event=first) from None
    return out


def _read_batches(sources, plan, batch_size, with_labels, validate) -> Iterator[Batch]:
    for number, first, stop in plan:
        source = sources[number]
        name = source_name(source)
        with open_source(source) as f:
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
    EventFileError for a bad file and EmptySelection when the selection holds no event.
    """
    if batch_size < 1 or skip_events < 0 or max_events < -1 or prefetch < 0:
        raise ValueError(f"batch_size must be >= 1, skip_events >= 0, max_events >= -1 and "
                         f"prefetch >= 0 (got {batch_size}, {skip_events}, {max_events}, {prefetch})")
    sources = as_sources(sources)
    counts = inspect_inputs(sources, require_labels=with_labels)
    plan = selection_plan(counts, skip_events, max_events)
    if not plan:
        total = sum(c.events for c in counts)
        raise EmptySelection(f"no events selected: {total} event(s) in {len(counts)} file(s), "
                             f"skipEvents={skip_events}, maxEvents={max_events}")
    batches = _read_batches(sources, plan, batch_size, with_labels, validate)
    return _prefetched(batches, prefetch) if prefetch else batches


def read_event(source: Source, index: int) -> Tuple[int, np.ndarray, Optional[np.ndarray]]:
    """(event_id, image float32 [320, 320], labels uint8 [320, 320] or None) of event `index`."""
    name = source_name(source)
    with open_source(source) as f:
        with_labels = isinstance(f.get("labels"), h5py.Dataset)
        n = check_schema(f, name, with_labels)
    if not 0 <= index < n:
        raise EventFileError(f"{name}: has {n} events, no event {index}", path=name, event=index)
    (batch,) = _read_batches([source], [(0, index, index + 1)], 1, with_labels, True)
    labels = None if batch.labels is None else batch.labels[0]
    return int(batch.event_id[0]), batch.images[0, ..., 0], labels
