"""The payload's API for job wrappers: train, infer, evaluate, and what a wrapper needs around them.

Callers pass plain paths and frozen configs (defined in `payload.config`, re-exported here); the
payload writes exactly the output paths it is given (a wrapper hands it temporary names and renames
them on success) and reports progress through the `on_progress` callback. Also here, for a wrapper
that reaches the payload only through this module: the exceptions the functions raise (`errors`),
the checkpoint folder names, what a model file holds, and the distribution plan. Frameworks are
imported inside the functions, never at module import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from payload import __version__, errors
from payload.checkpoints import KEEP as KEEP_CHECKPOINTS, NAME_RE as CHECKPOINT_NAME_RE
from payload.checkpoints import parse_name as parse_checkpoint_name
from payload.config import (
    FileCount, InferConfig, Progress, ProgressFn, Provenance, ServerSpec, StepConfig, StepResult, StopFn,
    TrainConfig,
)
from payload.modelinfo import is_reference, network_in_file, reference_model
from payload.serving_contract import parse_model, parse_server_url
from payload.serving import ServeConfig, ServedModel, ServerStartError

__all__ = [
    "CHECKPOINT_NAME_RE", "FileCount", "InferConfig", "KEEP_CHECKPOINTS", "Progress", "ProgressFn", "Provenance",
    "StepConfig", "StepResult", "StopFn", "TrainConfig", "__version__", "errors", "evaluate", "infer",
    "inspect_inputs", "is_reference", "network_in_file", "parse_checkpoint_name", "parse_model",
    "parse_server_url", "plan_distribution", "reference_model", "ServerSpec", "train",
    "ServeConfig", "ServedModel", "ServerStartError", "serving",
]


# The functions below are thin wrappers over payload.training, payload.inference, payload.events
# and payload.distribute that import them on first call, so importing this module never imports a
# framework (nor numpy).


def train(inputs: Sequence[Path], output_model: Path, config: TrainConfig, *,
          init_model: Optional[Path] = None, output_metrics: Optional[Path] = None,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          on_checkpoint: Optional[Callable[[Path], None]] = None) -> StepResult:
    """Train the network on labelled event files; see payload.training.train."""
    from payload import training

    return training.train(inputs, output_model, config, init_model=init_model,
                          output_metrics=output_metrics, output_plot=output_plot, provenance=provenance,
                          on_progress=on_progress, should_stop=should_stop, on_checkpoint=on_checkpoint)


def infer(inputs: Sequence[Path], model: Optional[Path], output_pred: Path, config: InferConfig, *,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          server_token: Optional[Callable[[], Optional[str]]] = None) -> StepResult:
    """Write per-pixel predictions for event files, the network in process or on the server
    `config.server` names; see payload.inference.infer."""
    from payload import inference

    return inference.infer(inputs, model, output_pred, config, output_plot=output_plot,
                           provenance=provenance, on_progress=on_progress, should_stop=should_stop,
                           server_token=server_token)


def evaluate(inputs: Sequence[Path], model: Optional[Path], config: InferConfig, *,
             output_metrics: Optional[Path] = None, output_pred: Optional[Path] = None,
             output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
             on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
             server_token: Optional[Callable[[], Optional[str]]] = None) -> StepResult:
    """Measure the network against truth labels; see payload.inference.evaluate."""
    from payload import inference

    return inference.evaluate(inputs, model, config, output_metrics=output_metrics,
                              output_pred=output_pred, output_plot=output_plot, provenance=provenance,
                              on_progress=on_progress, should_stop=should_stop, server_token=server_token)


def inspect_inputs(inputs: Sequence[Path], *, require_labels: bool) -> tuple:
    """Cheap schema check with h5py only (no framework import): a FileCount per input file.
    Raises EventFileError naming the file and the problem."""
    from payload import events

    return events.inspect_inputs(inputs, require_labels=require_labels)


def serving(config: ServeConfig):
    """Serve one network on a Triton server until the context ends (a context manager yielding the
    ServedModel once it is ready); see payload.serving.serving."""
    from payload import serving as server

    return server.serving(config)


def plan_distribution(gpus: int, cluster: Optional[Mapping], *, timeout_s: float):
    """The payload.distribute.DistributionPlan a step with `gpus` local GPUs, the TF_CONFIG `cluster`
    and a collective timeout of `timeout_s` runs under (its `to_report()` and `global_batch()`
    describe it); imports no framework."""
    from payload import distribute

    return distribute.plan_distribution(gpus, cluster, timeout_s=timeout_s)
