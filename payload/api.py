"""The payload's API for job wrappers: train, infer, evaluate.

Callers pass plain paths and frozen configs (defined in `payload.config`, re-exported here); the
payload writes exactly the output paths it is given (a wrapper hands it temporary names and renames
them on success) and reports progress through a callback. Frameworks are imported inside the functions, never at module import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from payload.config import (
    FileCount, InferConfig, Progress, ProgressFn, Provenance, StepConfig, StepResult, StopFn, TrainConfig,
)

__all__ = [
    "FileCount", "InferConfig", "Progress", "ProgressFn", "Provenance", "StepConfig", "StepResult", "StopFn",
    "TrainConfig", "evaluate", "infer", "inspect_inputs", "train",
]


# The functions below are the whole API. Their bodies live in payload.training, payload.inference
# and payload.events; these thin wrappers import them on first call, so importing this module
# never imports a framework.


def train(inputs: Sequence[Path], output_model: Path, config: TrainConfig, *,
          init_model: Optional[Path] = None, output_metrics: Optional[Path] = None,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          on_checkpoint: Optional[Callable[[Path], None]] = None) -> StepResult:
    """Train the network on labelled event files; see payload.training.train."""
    from payload import training

    return training.train(inputs, output_model, config, init_model=init_model,
                          output_metrics=output_metrics, output_plot=output_plot, provenance=provenance,
                          progress=progress, should_stop=should_stop, on_checkpoint=on_checkpoint)


def infer(inputs: Sequence[Path], model: Path, output_pred: Path, config: InferConfig, *,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> StepResult:
    """Write per-pixel predictions for event files; see payload.inference.infer."""
    from payload import inference

    return inference.infer(inputs, model, output_pred, config, output_plot=output_plot,
                           provenance=provenance, progress=progress, should_stop=should_stop)


def evaluate(inputs: Sequence[Path], model: Path, config: InferConfig, *,
             output_metrics: Optional[Path] = None, output_pred: Optional[Path] = None,
             output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
             progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> StepResult:
    """Measure the network against truth labels; see payload.inference.evaluate."""
    from payload import inference

    return inference.evaluate(inputs, model, config, output_metrics=output_metrics,
                              output_pred=output_pred, output_plot=output_plot, provenance=provenance,
                              progress=progress, should_stop=should_stop)


def inspect_inputs(inputs: Sequence[Path], *, require_labels: bool) -> tuple:
    """Cheap schema check with h5py only (no framework import): a FileCount per input file.
    Raises EventFileError naming the file and the problem."""
    from payload import events

    return events.inspect_inputs(inputs, require_labels=require_labels)
