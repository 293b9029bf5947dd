"""The payload's configs and result types: what a caller passes in and what a step returns.

Plain frozen dataclasses with no imports from the rest of `payload`, so every payload module can
use them without importing the modules that implement the steps. `payload.api` re-exports them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional


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
class StepConfig:
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
class TrainConfig(StepConfig):
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
class ServerSpec:
    """Where the network runs when an inference server runs it (payload.remote): a Triton server's
    gRPC address and model, how many requests are in flight, and how long and how often each one
    may be tried. Holds no credential: a bearer token is passed apart, so a config can be logged."""

    url: str                             # grpc://HOST:PORT or grpcs://HOST:PORT (TLS)
    model: str
    version: str = ""                    # "": the version the server has ready
    concurrency: int = 4                 # requests in flight
    timeout_s: float = 60.0              # one request, from sending to the whole answer
    retries: int = 4                     # further tries of a request the server could not answer
    fallback: bool = False               # run the rest in process when the server is gone
    ca_file: Optional[str] = None        # grpcs: the CA bundle (PEM); None: the system's


@dataclass(frozen=True)
class InferConfig(StepConfig):
    output_format: str = "scores"        # scores (float16 [N,320,320,3]) | classes (uint8)
    server: Optional[ServerSpec] = None  # None: the network runs in process


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
    inference: Mapping[str, object] = field(default_factory=dict)  # where the network ran (infer, evaluate)
