"""The payload step: turn the JobSpec and the chosen build into payload configs and call it.

This is the only module that calls `payload.api`; payload exceptions become TrfErrors here.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import payload
from payload import errors as perr
from payload.api import InferConfig, Provenance, StepResult, TrainConfig
from wrapper.errors import (ExecutionError, InputFileError, JobInterrupted, NoEventsError,
                            OutputFileError, TimeLimitError, TrfError)
from wrapper.outputs import OutputPlan
from wrapper.spec import JobSpec
from wrapper.staging.scratch import is_disk_full


@dataclass(frozen=True)
class RunContext:
    """Everything the payload step needs besides the spec."""

    inputs: tuple                       # paths or direct-access file objects
    model_config: str                   # the chosen build's network (or --modelConfig)
    model: Optional[Path]
    build_name: str
    precision: str
    batch_size: int
    checkpoint_dir: Path
    progress: Callable
    should_stop: Callable[[], bool]
    on_checkpoint: Optional[Callable[[Path], None]] = None
    distribution: Mapping = field(default_factory=dict)   # RunConfig gpus / cluster / timeout
    threads: Optional[int] = None       # the job's CPU share (wrapper.cpu_share)


def _common(spec: JobSpec, ctx: RunContext) -> dict:
    return dict(model_config=ctx.model_config, batch_size=ctx.batch_size,
                max_events=spec.max_events, skip_events=spec.skip_events,
                seed=spec.random_seed, precision=ctx.precision, **ctx.distribution)


def payload_configs(spec: JobSpec, ctx: RunContext) -> TrainConfig | InferConfig:
    """The payload config for this job's mode."""
    if spec.mode == "train":
        return TrainConfig(**_common(spec, ctx), epochs=spec.epochs, learning_rate=spec.learning_rate,
                           validation_split=spec.validation_split, loss=spec.loss,
                           class_weights=spec.class_weights, early_stopping_patience=spec.early_stopping,
                           checkpoint_dir=ctx.checkpoint_dir, checkpoint_every_s=spec.checkpoint_interval,
                           resume=spec.resume)
    return InferConfig(**_common(spec, ctx), output_format=spec.prediction_format)


@contextlib.contextmanager
def payload_errors(stop_reason: Callable[[], Optional[TrfError]]) -> Iterator[None]:
    """Translate the payload's exceptions into TrfErrors with their exit codes."""
    try:
        yield
    except perr.StopRequested:
        raise stop_reason() or ExecutionError("the payload stopped without a reason") from None
    except perr.EventFileError as err:
        raise InputFileError(str(err), cause="corrupt", source=err.path) from None
    except perr.ModelFileError as err:
        raise InputFileError(str(err), cause="model-mismatch" if err.mismatch else "corrupt",
                             source=err.path) from None
    except perr.NoEventsError as err:
        raise NoEventsError(str(err)) from None
    except perr.CollectiveError as err:
        raise ExecutionError(str(err)) from None
    except perr.TrainingDivergedError as err:
        raise ExecutionError(f"{err} (the trf's options: --learningRate, --precision=float32)") from None


@contextlib.contextmanager
def output_errors(outputs: OutputPlan) -> Iterator[None]:
    """A full disk while the payload writes its outputs or checkpoints is an output error (exit 11)."""
    try:
        yield
    except OSError as err:
        if not is_disk_full(err):
            raise
        pending = outputs.pending()
        named = [f"output {outputs.lfns[name]} (--{name})" for name, tmp in pending.items()
                 if tmp.name in str(err)]
        what = named[0] if named else f"its files in {outputs.workdir}"
        raise OutputFileError(f"no space left in the job directory while the payload wrote {what}; "
                              "ask for more scratch space or fewer events per job",
                              cause="disk-full") from None


def stop_reason_for(signum_of: Callable[[], Optional[int]], deadline: Optional[float],
                    limit: Optional[float]) -> Callable[[], Optional[TrfError]]:
    """Why a stop was requested: a signal, or the time limit."""
    def reason() -> Optional[TrfError]:
        signum = signum_of()
        if signum is not None:
            return JobInterrupted(signum)
        if deadline is not None and time.monotonic() >= deadline:
            return TimeLimitError(f"--timeLimit={limit:g} s reached; partial outputs removed. "
                                  "Give more time or fewer events per job")
        return None
    return reason


def run_payload(spec: JobSpec, ctx: RunContext, outputs: OutputPlan,
                stop_reason: Callable[[], Optional[TrfError]]) -> StepResult:
    """Run the job's mode; outputs are written under the plan's temporary names."""
    from payload import api

    if ctx.threads:
        from wrapper.framework_threads import set_framework_threads
        from wrapper.progress import log

        log(f"framework threads: {set_framework_threads(ctx.threads)}")
    config = payload_configs(spec, ctx)
    provenance = Provenance(build=ctx.build_name, code_version=payload.__version__,
                            model_version=ctx.model.name if ctx.model else "")

    def temp(name: str) -> Optional[Path]:
        return outputs.temp_path(name) if name in outputs.lfns else None

    common = dict(provenance=provenance, progress=ctx.progress, should_stop=ctx.should_stop)
    with payload_errors(stop_reason), output_errors(outputs):
        if spec.mode == "train":
            return api.train(ctx.inputs, temp("outputModelFile"), config, init_model=ctx.model,
                             output_metrics=temp("outputMetricsFile"), output_plot=temp("outputPlotFile"),
                             on_checkpoint=ctx.on_checkpoint, **common)
        if spec.mode == "infer":
            return api.infer(ctx.inputs, ctx.model, temp("outputPredFile"), config, **common)
        return api.evaluate(ctx.inputs, ctx.model, config, output_metrics=temp("outputMetricsFile"),
                            output_pred=temp("outputPredFile"), output_plot=temp("outputPlotFile"),
                            **common)


def entries_by_output(result: StepResult, outputs: OutputPlan) -> dict[str, int]:
    """Number of events held by each output, keyed by argument name."""
    by_path = {str(Path(p)): n for p, n in result.outputs.items()}
    return {name: by_path.get(str(tmp), 0) for name, tmp in outputs.pending().items()}


def input_counts(result: StepResult) -> dict[str, int]:
    return {str(fc.path): fc.events for fc in result.inputs}


def as_sources(staged: Sequence) -> tuple:
    """What the payload reads: a local path, or the direct-access file object."""
    return tuple(s.handle if getattr(s, "handle", None) is not None else s.local_path for s in staged)
