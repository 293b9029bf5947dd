"""DUNE event files (HDF5, h5py and numpy only): the format, reading, writing, predictions.

    schema       the format's constants, opening a source, the schema check, file descriptions
    selection    --skipEvents/--maxEvents over the concatenated inputs
    reader       the streaming batch reader with background prefetch; single events
    writer       event files, written incrementally; the complete-or-absent HDF5 output
    predictions  predictions files: written batch by batch, read back

The layouts are described in docs/design.md, 'File formats'. Import from here: the split into
modules is an internal arrangement.
"""
from payload.events.predictions import WRITER_THREAD_NAME, PredictionWriter, Predictions, read_predictions
from payload.events.reader import PREFETCH_THREAD_NAME, Batch, iter_batches, read_event
from payload.events.schema import (
    BASE_ATTRS, CLASS_NAMES, COMPRESSION, FORMAT_VERSION, IMAGE_SHAPE, N_CLASSES, Source, describe_file,
    inspect_inputs, source_name,
)
from payload.events.selection import selected_count, selection_plan
from payload.events.writer import EventWriter, write_events

__all__ = [
    "BASE_ATTRS", "CLASS_NAMES", "COMPRESSION", "FORMAT_VERSION", "IMAGE_SHAPE", "N_CLASSES",
    "PREFETCH_THREAD_NAME", "WRITER_THREAD_NAME", "Batch", "EventWriter", "PredictionWriter",
    "Predictions", "Source", "describe_file", "inspect_inputs", "iter_batches", "read_event",
    "read_predictions", "selected_count", "selection_plan", "source_name", "write_events",
]
