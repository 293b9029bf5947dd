"""Predictions files: the network's per-pixel output for each event, written batch by batch.

    /scores    float16 [N, 320, 320, 3] class probabilities   or   /classes uint8 [N, 320, 320]
    /event_id  int64   [N]
    attrs: output_format, classes, format_version, created, model_version, build, code_version,
           inputs, ...
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

import h5py
import numpy as np

from payload.errors import EventFileError, PayloadError
from payload.events.schema import (
    CLASS_NAMES, COMPRESSION, FORMAT_VERSION, IMAGE_SHAPE, N_CLASSES, open_source, read_attrs,
    require_dataset, source_name,
)
from payload.events.writer import OutputFile, as_event_ids, set_attrs

WRITER_THREAD_NAME = "dune-events-writer"


@dataclass(frozen=True)
class Predictions:
    """Contents of (part of) a predictions file; `classes` is the argmax when scores were stored."""

    event_id: np.ndarray                 # int64 [N]
    classes: np.ndarray                  # uint8 [N, 320, 320]
    scores: Optional[np.ndarray]         # float16 [N, 320, 320, 3] or None
    attrs: Mapping[str, Any]


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


class PredictionWriter(OutputFile):
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
        # Attributes known only when the last batch is in (where the network ran), written at close.
        self.attrs_at_close: dict = {}
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
            # the write time (scripts/bench/events.py), so scores are stored plain.
            f.create_dataset("scores", shape=(self.n_events, *IMAGE_SHAPE, N_CLASSES), dtype=np.float16,
                             chunks=(1, *IMAGE_SHAPE, N_CLASSES))
        else:
            f.create_dataset("classes", shape=(self.n_events, *IMAGE_SHAPE), dtype=np.uint8,
                             chunks=(1, *IMAGE_SHAPE), **COMPRESSION)
        f.create_dataset("event_id", shape=(self.n_events,), dtype=np.int64)
        set_attrs(f, {**self.attrs, "output_format": self.output_format, "classes": CLASS_NAMES,
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
        event_ids = as_event_ids(event_ids, b, 0)
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
        if self.attrs_at_close:
            set_attrs(self._file, self.attrs_at_close)

    def _discard(self) -> None:
        self._abandon = True
        self._stop_worker()
        super()._discard()


def read_predictions(path, *, start: int = 0, stop: Optional[int] = None,
                     event_id: Optional[int] = None) -> Predictions:
    """Events start..stop of a predictions file (all of it by default: mind the memory), or with
    `event_id` only the event of that id (EventFileError when the file has none)."""
    name = source_name(path)
    with open_source(path) as f:
        ids = require_dataset(f, "event_id", name, "not a predictions file")
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
            classes = require_dataset(f, "classes", name, "a predictions file holds /scores or /classes")[start:stop]
        return Predictions(event_id=ids[start:stop], classes=classes, scores=scores, attrs=read_attrs(f))
