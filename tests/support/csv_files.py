"""Event pairs in the original dataset's CSV format, for the tests of its conversion (payload.csvformat)."""
from __future__ import annotations

import gzip
import os

import numpy as np

from payload.csvformat import VALUES_PER_EVENT


def write_csv(features_csv, labels_csv, images, labels) -> None:
    """Write events in the original CSV format: images [N, 320, 320] (float32 written exactly,
    with 9 significant digits) and labels [N, 320, 320] as integers, each after a header row.
    A name ending in `.gz` is written through gzip, as the converter reads it."""
    images = np.asarray(images, np.float32).reshape(-1, VALUES_PER_EVENT)
    labels = np.asarray(labels).reshape(-1, VALUES_PER_EVENT)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label arrays")
    header = ",".join(f"pixel{i}" for i in range(VALUES_PER_EVENT)) + "\n"
    for path, rows, fmt in ((features_csv, images, "%.9g"), (labels_csv, labels, "%d")):
        opened = (gzip.open(path, "wt", encoding="ascii", newline="") if os.fspath(path).endswith(".gz")
                  else open(path, "w", encoding="ascii", newline=""))
        with opened as out:
            out.write(header)
            np.savetxt(out, rows, fmt=fmt, delimiter=",")
