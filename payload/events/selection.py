"""Which events a job reads: `--skipEvents` and `--maxEvents` over the concatenated inputs.

The one place that turns skip/max into event counts and per-file ranges; the reader, training's
train/validation split and inference's output size all use it.
"""
from __future__ import annotations

from typing import Sequence

from payload.config import FileCount


def selected_count(total: int, skip_events: int, max_events: int) -> int:
    """How many of `total` events the selection skip/max (-1: all) holds."""
    n = max(total - skip_events, 0)
    return n if max_events < 0 else min(n, max_events)


def selection_plan(counts: Sequence[FileCount], skip_events: int, max_events: int) -> list:
    """(file number, first, stop) per file for events skip .. skip+max of the concatenation."""
    left = selected_count(sum(c.events for c in counts), skip_events, max_events)
    plan, offset = [], 0
    for number, count in enumerate(counts):
        first = max(skip_events - offset, 0)
        stop = min(count.events, first + left)
        if first < stop:
            plan.append((number, first, stop))
            left -= stop - first
        offset += count.events
    return plan
