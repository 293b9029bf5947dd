"""The events a training run reads: which ones train and which validate, the training batches of
each epoch (mixed, and cropped when asked), the validation batches and the loss's class weights.

Events are selected by skip/max over the concatenated inputs; the last `validation_split` of them
are the validation set (events in a file are independent, so a tail split is as good as a random
one and reads each event once). Each epoch mixes training events in windows of a few batches, in
an order fixed by (seed, epoch), so a resumed run replays the same batches.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from payload.config import Progress, ProgressFn, TrainConfig
from payload.errors import EmptySelection, EventFileError
from payload.events import iter_batches, inspect_inputs, selected_count, source_name
from payload.losses import class_pixel_counts, median_frequency_weights

SHUFFLE_WINDOW = 8            # batches whose events are mixed together


@dataclass(frozen=True)
class Selection:
    """The events of a run: its inputs, the events each holds, and how many train and validate."""

    inputs: list
    counts: tuple                       # tuple[FileCount, ...]
    n_train: int
    n_val: int


def select_events(inputs: Sequence[Path], config: TrainConfig) -> Selection:
    """Check the inputs (labels required) and split their selected events. Raises EventFileError,
    EmptySelection."""
    inputs = list(inputs)
    counts = inspect_inputs(inputs, require_labels=True)
    return Selection(inputs, counts, *split_events(sum(c.events for c in counts), config))


def split_events(total: int, config: TrainConfig) -> tuple[int, int]:
    """(training, validation) event counts of the selection skip/max over `total` events."""
    selected = selected_count(total, config.skip_events, config.max_events)
    if selected == 0:
        raise EmptySelection(f"no events to train on: {total} event(s) in the inputs, "
                             f"skipEvents={config.skip_events}, maxEvents={config.max_events}")
    n_val = int(round(selected * config.validation_split))
    if config.validation_split > 0 and n_val == 0 and selected > 1:
        n_val = 1
    if n_val >= selected:
        raise EmptySelection(f"validation split {config.validation_split} of {selected} event(s) "
                             "leaves no event to train on")
    return selected - n_val, n_val


def shuffled(batches, batch_size: int, rng: np.random.Generator,
             window: int = SHUFFLE_WINDOW) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-batch a stream of labelled batches into (images, labels) of `batch_size` events, mixed
    within windows of `window` batches in the order drawn from `rng`. Only the last batch may be
    shorter, so the compiled step sees one batch shape (batches of the reader end at file ends)."""
    images, labels, held = [], [], 0
    for batch in batches:
        images.append(batch.images)
        labels.append(batch.labels)
        held += len(batch.images)
        if held >= window * batch_size:
            x, y = np.concatenate(images), np.concatenate(labels)
            order = rng.permutation(held)
            n_out = held - held % batch_size
            for start in range(0, n_out, batch_size):
                pick = order[start:start + batch_size]
                yield x[pick], y[pick]
            images, labels, held = [x[order[n_out:]]], [y[order[n_out:]]], held - n_out
    if held:
        x, y = np.concatenate(images), np.concatenate(labels)
        order = rng.permutation(held)
        for start in range(0, held, batch_size):
            pick = order[start:start + batch_size]
            yield x[pick], y[pick]


def training_batches(events: Selection, config: TrainConfig, epoch: int):
    """(images, labels) of epoch `epoch`, in its order; images are [crops, origins] on crops."""
    batches = iter_batches(events.inputs, config.batch_size, skip_events=config.skip_events,
                           max_events=events.n_train, with_labels=True, prefetch=config.prefetch_batches)
    batches = shuffled(batches, config.batch_size, np.random.default_rng([config.seed, epoch]))
    if not config.crop_size:
        return ((images, labels) for images, labels in batches)
    return (_crop(images, labels, config, np.random.default_rng([config.seed, epoch, step]))
            for step, (images, labels) in enumerate(batches))


def _crop(images, labels, config: TrainConfig, rng: np.random.Generator):
    """([crops, origins], crop labels): one crop per event, drawn by a generator of its own step,
    so a resumed run draws the same crops."""
    from payload.sampling import crop_origins, cut

    origins = crop_origins(labels, config.crop_size, config.beam_fraction, rng)
    return [cut(images, origins, config.crop_size), origins], cut(labels, origins, config.crop_size)


def validation_batches(events: Selection, config: TrainConfig):
    """The labelled batches of the validation events, in file order."""
    return iter_batches(events.inputs, config.batch_size, skip_events=config.skip_events + events.n_train,
                        max_events=events.n_val, with_labels=True, prefetch=config.prefetch_batches)


def class_weights(events: Selection, config: TrainConfig, on_progress: ProgressFn) -> Optional[list]:
    """The weighted loss's class weights: the configured ones, else median-frequency weights
    counted over the training events. None for the other losses."""
    if config.loss != "weighted":
        return None
    if config.class_weights is not None:
        return [float(w) for w in config.class_weights]
    on_progress(Progress("counting classes for the loss weights", 0, events.n_train))
    batches = iter_batches(events.inputs, 64, skip_events=config.skip_events, max_events=events.n_train,
                           with_labels=True, prefetch=config.prefetch_batches)
    return list(median_frequency_weights(*class_pixel_counts(b.labels for b in batches)))


@contextmanager
def inputs_read_again(inputs) -> Iterator[None]:
    """Each epoch reads the inputs again: a file that has gone since they were checked at the start
    was removed while the run went on, not misnamed or never staged. Say so (a workflow manager that
    aborts a job may clean its directory before the job has seen the signal)."""
    try:
        yield
    except EventFileError:
        gone = [source_name(s) for s in inputs if isinstance(s, (str, os.PathLike)) and not os.path.exists(s)]
        if not gone:
            raise
        raise EventFileError(f"{', '.join(gone)}: removed while the job ran (read at its start, gone now); "
                             "another process deleted it, e.g. one cleaning up after a stop signal",
                             path=gone[0], removed=True) from None
