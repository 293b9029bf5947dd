"""The payload step: the job's mode as one picklable request, and running it with `payload.api`.

`step_request` is built in the trf; `run_step` runs in the supervised child process (see
wrapper/step/supervisor.py). This is the only module that calls `payload.api`; payload exceptions become
TrfErrors here.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import payload
from payload import errors as perr
from payload.api import InferConfig, Progress, Provenance, StepResult, TrainConfig
from wrapper.errors import (ExecutionError, InputFileError, NoEventsError, OutputFileError,
                            TrfError, WorkerLostError)
from wrapper.args.spec import JobSpec
from wrapper.staging.scratch import is_disk_full


class StepStopped(Exception):
    """The payload stopped because a stop was requested; the trf knows why (signal, time limit)."""


@dataclass(frozen=True)
class StepRequest:
    """Everything the payload step needs, as plain data that crosses a process boundary.

    `inputs` holds local paths and, for direct access, `DirectSource`s the child reopens;
    `outputs` maps argument names to the temporary paths the payload writes.
    """

    mode: str
    inputs: tuple
    model: Optional[Path]
    outputs: Mapping[str, Path]
    lfns: Mapping[str, str]
    config: TrainConfig | InferConfig
    provenance: Provenance
    report_checkpoints: bool = False
    device: str = "cpu"
    workdir: Path = field(default_factory=Path.cwd)
    threads: Optional[int] = None       # the job's CPU share; the child sizes the framework's pools


def step_request(spec: JobSpec, *, inputs: tuple, model: Optional[Path], outputs: Mapping[str, Path],
                 lfns: Mapping[str, str], build_name: str, precision: str, batch_size: int,
                 model_config: Optional[str], checkpoint_dir: Path, distribution: Mapping,
                 report_checkpoints: bool, device: str, workdir: Path,
                 threads: Optional[int] = None) -> StepRequest:
    """The request for this job's mode, from the spec and what the platform step chose."""
    common = dict(model_config=model_config, batch_size=batch_size, max_events=spec.max_events,
                  skip_events=spec.skip_events, seed=spec.random_seed, precision=precision,
                  **distribution)
    if spec.mode == "train":
        config = TrainConfig(**common, epochs=spec.epochs, learning_rate=spec.learning_rate,
                             validation_split=spec.validation_split, loss=spec.loss,
                             crop_size=spec.crop_size, beam_fraction=spec.beam_fraction,
                             lr_schedule=spec.lr_schedule, warmup_steps=spec.warmup_steps,
                             class_weights=spec.class_weights,
                             early_stopping_patience=spec.early_stopping,
                             checkpoint_dir=checkpoint_dir, checkpoint_every_s=spec.checkpoint_interval,
                             resume=spec.resume)
    else:
        config = InferConfig(**common, output_format=spec.prediction_format)
    provenance = Provenance(build=build_name, code_version=payload.__version__,
                            model_version=model.name if model else "")
    return StepRequest(spec.mode, tuple(inputs), model, dict(outputs), dict(lfns), config, provenance,
                       report_checkpoints, device, Path(workdir), threads)


def run_step(request: StepRequest, inputs: Sequence, *, progress: Callable[[Progress], None],
             should_stop: Callable[[], bool],
             on_checkpoint: Optional[Callable[[Path], None]]) -> StepResult:
    """Run the request's mode on `inputs` (paths or open direct-access files). Raises TrfError, or
    StepStopped when `should_stop` ended it."""
    from payload import api

    out = request.outputs.get
    common = dict(provenance=request.provenance, progress=progress, should_stop=should_stop)
    with payload_errors(), output_errors(request):
        if request.mode == "train":
            return api.train(inputs, out("outputModelFile"), request.config, init_model=request.model,
                             output_metrics=out("outputMetricsFile"), output_plot=out("outputPlotFile"),
                             on_checkpoint=on_checkpoint, **common)
        if request.mode == "infer":
            return api.infer(inputs, request.model, out("outputPredFile"), request.config,
                             output_plot=out("outputPlotFile"), **common)
        return api.evaluate(inputs, request.model, request.config,
                            output_metrics=out("outputMetricsFile"), output_pred=out("outputPredFile"),
                            output_plot=out("outputPlotFile"), **common)


def inspect_staged(sources: Sequence, *, require_labels: bool) -> tuple:
    """The cheap h5py-only schema check of the staged inputs (no framework): a wrong or corrupt
    file fails here, in a second, before the payload step starts."""
    from payload.api import inspect_inputs

    with payload_errors():
        return inspect_inputs(sources, require_labels=require_labels)


@contextlib.contextmanager
def payload_errors() -> Iterator[None]:
    """Translate the payload's exceptions into TrfErrors with their exit codes."""
    try:
        yield
    except perr.StopRequested:
        raise StepStopped() from None
    except perr.EventFileError as err:
        raise InputFileError(str(err), cause="removed" if err.removed else "corrupt", source=err.path) from None
    except perr.ModelFileError as err:
        raise InputFileError(str(err), cause="model-mismatch" if err.mismatch else "corrupt",
                             source=err.path) from None
    except perr.NoEventsError as err:
        raise NoEventsError(str(err)) from None
    except perr.CollectiveError as err:
        raise WorkerLostError(str(err)) from None
    except perr.UnsupportedOptionError as err:
        raise ExecutionError(f"{err} (the trf's option: drop --cropSize)") from None
    except perr.TrainingDivergedError as err:
        raise ExecutionError(f"{err} (the trf's options: --learningRate, --precision=float32)") from None


@contextlib.contextmanager
def output_errors(request: StepRequest) -> Iterator[None]:
    """A full disk while the payload writes its outputs or checkpoints is an output error (exit 11)."""
    try:
        yield
    except OSError as err:
        if not is_disk_full(err):
            raise
        named = [f"output {request.lfns[name]} (--{name})" for name, tmp in request.outputs.items()
                 if Path(tmp).name in str(err)]
        what = named[0] if named else f"its files in {request.workdir}"
        raise OutputFileError(f"no space left in the job directory while the payload wrote {what}; "
                              "ask for more scratch space or fewer events per job",
                              cause="disk-full") from None


def entries_by_output(result: StepResult, pending: Mapping[str, Path]) -> dict[str, int]:
    """Number of events held by each output, keyed by argument name."""
    by_path = {str(Path(p)): n for p, n in result.outputs.items()}
    return {name: by_path.get(str(tmp), 0) for name, tmp in pending.items()}


def error_fields(err: TrfError) -> dict:
    """A TrfError as plain data (its class takes keyword-only arguments, so it does not pickle)."""
    return {"message": err.message, "exit_code": err.exit_code, "extra": err.extra,
            "cause": getattr(err, "cause", ""), "source": getattr(err, "source", "")}


def error_from_fields(fields: Mapping) -> TrfError:
    """The TrfError `error_fields` described, cause included (the report reads `cause`)."""
    err = TrfError(fields["message"], exit_code=fields["exit_code"], extra=fields.get("extra", ""))
    err.cause = fields.get("cause", "")
    err.source = fields.get("source", "")
    return err
