"""Training checkpoints: their layout and names, writing one, finding the latest, reading it back.

    ckpt-e<epoch, 4 digits>-s<step, 7 digits>/model.npz, optimizer.npz, state.json

A checkpoint holds all model variables (weights, batch-norm statistics, dropout generator states),
the optimizer state and the run state (epoch, step within it, history, schedule). The payload
writes and reads these folders (payload.training); the wrapper copies them to and from a task-wide
store and adds a MANIFEST.json there (wrapper.checkpoints), taking the names from here through
payload.api. See docs/design.md, 'File formats'.

numpy is imported inside the functions that move arrays: the wrapper imports the names through
payload.api and never needs it.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Tuple

from payload.errors import ModelFileError

NAME_RE = re.compile(r"^ckpt-e(\d{4})-s(\d{7})$")
KEEP = 2                                  # newest checkpoints kept, locally and under the prefix


@dataclass
class RunState:
    """What a checkpoint must hold, besides variables, to continue a run exactly."""

    model_config: str
    learning_rate: float
    class_weights: Optional[list] = None
    epoch: int = 0                      # epochs completed
    step: int = 0                       # batches completed in the current epoch
    loss_sum: float = 0.0               # sum of their losses
    best: float = math.inf              # best monitored loss so far
    epochs_since_best: int = 0          # for early stopping
    epochs_since_lr_change: int = 0     # for reduce-on-plateau
    stopped_early: bool = False
    history: dict = field(default_factory=dict)


def checkpoint_name(epoch: int, step: int) -> str:
    """The folder name of the checkpoint taken after `step` batches of epoch `epoch`."""
    return f"ckpt-e{epoch:04d}-s{step:07d}"


def parse_name(name: str) -> Optional[Tuple[int, int]]:
    """(epoch, step) of a checkpoint folder name, or None when `name` is not one."""
    match = NAME_RE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def latest_checkpoint(directory: Optional[Path]) -> Optional[Path]:
    """The newest complete checkpoint in `directory`, or None. A checkpoint is written under a
    temporary name and renamed when complete, so a half-written one is never picked."""
    if directory is None or not Path(directory).is_dir():
        return None
    complete = [p for p in Path(directory).iterdir()
                if NAME_RE.match(p.name) and (p / "state.json").is_file()]
    return max(complete, key=lambda p: p.name, default=None)


def save_checkpoint(directory: Path, model, state: RunState) -> Path:
    """Write model variables, optimizer state and `state` to a new checkpoint in `directory`
    (atomically), keep the newest KEEP and return its path."""
    import numpy as np
    from keras import ops

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(state.epoch, state.step)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt-", suffix=".tmp", dir=directory))
    try:
        np.savez(tmp / "model.npz", *[ops.convert_to_numpy(v) for v in model.variables])
        np.savez(tmp / "optimizer.npz", *[ops.convert_to_numpy(v) for v in model.optimizer.variables])
        (tmp / "state.json").write_text(json.dumps(asdict(state)))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    older = sorted(p for p in directory.iterdir() if NAME_RE.match(p.name))[:-KEEP]
    for path in older:
        shutil.rmtree(path, ignore_errors=True)
    return final


class Checkpointer:
    """Writes a run's checkpoints into `directory` (none when it is None) and hands each to
    `on_checkpoint`; `due()` once `every_s` seconds have passed since the last one (or the start)."""

    def __init__(self, directory: Optional[Path], every_s: float, model,
                 on_checkpoint: Optional[Callable[[Path], None]] = None):
        self.directory, self.every_s, self.model, self.on_checkpoint = directory, every_s, model, on_checkpoint
        self.last = time.monotonic()

    def due(self) -> bool:
        """Whether a checkpoint within the epoch is due."""
        return self.directory is not None and time.monotonic() - self.last >= self.every_s

    def save(self, state: RunState) -> None:
        """Write the checkpoint of `state` now."""
        if self.directory is None:
            return
        path = save_checkpoint(self.directory, self.model, state)
        self.last = time.monotonic()
        if self.on_checkpoint is not None:
            self.on_checkpoint(path)


def read_run_state(path: Path, model_config: str) -> RunState:
    """The run state of checkpoint `path`, which must be of the `model_config` network."""
    path = Path(path)
    try:
        state = RunState(**json.loads((path / "state.json").read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise ModelFileError(f"checkpoint {path} is unreadable: {err}", path=str(path)) from None
    if state.model_config != model_config:
        raise ModelFileError(f"checkpoint {path} is of the {state.model_config!r} network, not "
                             f"{model_config!r}: use another checkpoint directory", path=str(path),
                             mismatch=True)
    return state


def restore_variables(path: Path, model) -> None:
    """Load the model and optimizer variables of checkpoint `path` into `model` (compiled, its
    optimizer built)."""
    _assign_all(model.variables, Path(path) / "model.npz", "model variables")
    _assign_all(model.optimizer.variables, Path(path) / "optimizer.npz", "optimizer variables")


def _assign_all(variables, path: Path, what: str) -> None:
    import numpy as np

    try:
        with np.load(path) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError) as err:
        raise ModelFileError(f"checkpoint {path.parent}: its {what} are unreadable: {err}",
                             path=str(path)) from None
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise ModelFileError(f"checkpoint {path.parent}: its {what} do not fit this network", path=str(path),
                             mismatch=True)
    for variable, value in zip(variables, values):
        variable.assign(value)
