"""The layout of a training checkpoint: one folder per checkpoint, named for where training stood.

    ckpt-e<epoch, 4 digits>-s<step, 7 digits>/model.npz, optimizer.npz, state.json

The payload writes and reads these folders (payload.training); the wrapper copies them to and from
a task-wide store and adds a MANIFEST.json there (wrapper.checkpoints.resume). Both take the names from
here. See docs/design.md, 'File formats'.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

NAME_RE = re.compile(r"^ckpt-e(\d{4})-s(\d{7})$")
KEEP = 2                                  # newest checkpoints kept, locally and under the prefix


def checkpoint_name(epoch: int, step: int) -> str:
    """The folder name of the checkpoint taken after `step` batches of epoch `epoch`."""
    return f"ckpt-e{epoch:04d}-s{step:07d}"


def parse_name(name: str) -> Optional[Tuple[int, int]]:
    """(epoch, step) of a checkpoint folder name, or None when `name` is not one."""
    match = NAME_RE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
