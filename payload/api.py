"""The payload's API for job wrappers: train, infer, evaluate.

Callers pass plain paths and frozen configs; the payload writes exactly the output paths it is
given (a wrapper hands it temporary names and renames them on success) and reports progress through
a callback. Frameworks are imported inside the functions, never at module import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence


@dataclass(frozen=True)
class Progress:
    """One progress tick: `done` of `total` units (`unit` is "events" or "steps"), free text `stage`."""

    stage: str
    done: int
    total: int
    unit: str = "events"
    metrics: Mapping[str, float] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class RunConfig:
    """What every mode shares. `precision` is a Keras dtype policy name chosen by the caller."""

    model_config: Optional[str] = None   # tiny | small | paper; None: the model file's, else small
    batch_size: int = 4
    max_events: int = -1                 # -1: all
    skip_events: int = 0
    seed: int = 12345
    precision: str = "float32"           # float32 | mixed_float16 | mixed_bfloat16
    prefetch_batches: int = 2
    gpus: int = 0                        # local GPUs to use; more than one runs data-parallel
    cluster: Optional[Mapping] = None    # TF_CONFIG of a multi-worker training (payload.distribute)
    collective_timeout_s: float = 600.0  # a worker waits this long for the others, then fails


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    epochs: int = 5
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    loss: str = "weighted"               # cce | weighted | focal | dice
    class_weights: Optional[tuple] = None  # None: median-frequency weights computed from the data
    early_stopping_patience: int = 0     # 0: off
    reduce_lr_patience: int = 2
    checkpoint_dir: Optional[Path] = None
    checkpoint_every_s: float = 300.0
    resume: bool = True                  # continue from the latest complete checkpoint in checkpoint_dir
    crop_size: int = 0                   # >0: train on one crop of this side per event (payload.sampling)
    beam_fraction: float = 0.5           # share of crops centred on a beam pixel
    lr_schedule: str = "plateau"         # plateau (reduce on plateau) | cosine (warm-up, then cosine decay)
    warmup_steps: int = 0                # cosine: steps of linear warm-up from learning_rate / 20


@dataclass(frozen=True)
class InferConfig(RunConfig):
    output_format: str = "scores"        # scores (float16 [N,320,320,3]) | classes (uint8)


@dataclass(frozen=True)
class Provenance:
    """Attributes written into prediction files and metrics."""

    build: str = "default"
    code_version: str = ""
    model_version: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FileCount:
    path: str
    events: int


@dataclass(frozen=True)
class StepResult:
    """What a mode did: events per input file, events processed, metrics, and the outputs written."""

    mode: str
    processed_events: int
    inputs: tuple                        # tuple[FileCount, ...]
    outputs: Mapping[str, int]           # output path -> number of events (entries) it holds
    metrics: Mapping[str, float] = field(default_factory=dict)
    resumed_from_epoch: Optional[int] = None
    history: Mapping[str, tuple] = field(default_factory=dict)


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
          provenance: Provenance = Provenance(), progress: Optional[ProgressFn] = None,
          should_stop: Optional[StopFn] = None) -> StepResult:
    """Write per-pixel predictions for event files; see payload.inference.infer."""
    from payload import inference

    return inference.infer(inputs, model, output_pred, config, provenance=provenance,
                           progress=progress, should_stop=should_stop)


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
