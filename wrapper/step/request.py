"""The payload step: the job's mode as one picklable request, and running it with `payload.api`.

`step_request` is built in the trf; `run_step` runs in the supervised child process (see
wrapper/step/supervisor.py). This is the only module that calls `payload.api`; payload exceptions become
TrfErrors here.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from payload.api import InferConfig, Progress, Provenance, ServerSpec, StepResult, TrainConfig
from payload.api import __version__ as payload_version, errors as perr, parse_model
from wrapper.causes import Cause
from wrapper.errors import (ExecutionError, InferenceServerError, InputFileError, JobStopped, NoEventsError,
                            OutputFileError, WorkerLostError)
from wrapper.args.spec import JobSpec
from wrapper.staging.scratch import is_disk_full
from wrapper.tokens import bearer_token

# payload.remote's failure kinds as the report's causes.
SERVER_CAUSES = {
    "unreachable": Cause.CONNECTION, "lost": Cause.SERVER_LOST, "not-ready": Cause.NOT_READY,
    "not-found": Cause.NOT_FOUND, "refused": Cause.PERMISSION, "mismatch": Cause.MODEL_MISMATCH,
    "too-large": Cause.TOO_LARGE, "overloaded": Cause.OVERLOADED, "timeout": Cause.TIMEOUT,
    "failed": Cause.SERVER_ERROR,
}


@dataclass(frozen=True)
class StepRequest:
    """Everything the payload step needs, as plain data that crosses a process boundary.

    `inputs` holds local paths and, for direct access, the `DirectSource`s the child opens again;
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
        config = InferConfig(**common, output_format=spec.prediction_format, server=server_spec(spec))
    provenance = Provenance(build=build_name, code_version=payload_version,
                            model_version=model.name if model else "")
    return StepRequest(spec.mode, tuple(inputs), model, dict(outputs), dict(lfns), config, provenance,
                       report_checkpoints, device, Path(workdir), threads)


def server_spec(spec: JobSpec) -> Optional[ServerSpec]:
    """The inference server the job's network runs on, or None (it runs in process)."""
    if not spec.inference_server:
        return None
    name, version = parse_model(spec.inference_model)
    # gRPC takes one PEM bundle (a CA directory, X509_CERT_DIR, it cannot read); unset: its own roots.
    ca_file = next((os.environ[v] for v in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
                    if os.path.isfile(os.environ.get(v, ""))), None)
    return ServerSpec(url=spec.inference_server, model=name, version=version,
                      concurrency=spec.inference_concurrency, timeout_s=spec.inference_timeout,
                      retries=spec.inference_retries, fallback=spec.inference_fallback == "local",
                      ca_file=ca_file)


def run_step(request: StepRequest, inputs: Sequence, *, on_progress: Callable[[Progress], None],
             should_stop: Callable[[], bool],
             on_checkpoint: Optional[Callable[[Path], None]]) -> StepResult:
    """Run the request's mode on `inputs` (paths or open direct-access files). Raises TrfError:
    JobStopped (without a signal) when `should_stop` ended it."""
    from payload import api

    out = request.outputs.get
    common = dict(provenance=request.provenance, on_progress=on_progress, should_stop=should_stop)
    with payload_errors(), output_errors(request):
        if request.mode == "train":
            return api.train(inputs, out("outputModelFile"), request.config, init_model=request.model,
                             output_metrics=out("outputMetricsFile"), output_plot=out("outputPlotFile"),
                             on_checkpoint=on_checkpoint, **common)
        # The token is read again for each request (an agent may renew it) and sent only over TLS.
        token = bearer_token if request.config.server is not None else None
        if request.mode == "infer":
            return api.infer(inputs, request.model, out("outputPredFile"), request.config,
                             output_plot=out("outputPlotFile"), server_token=token, **common)
        return api.evaluate(inputs, request.model, request.config,
                            output_metrics=out("outputMetricsFile"), output_pred=out("outputPredFile"),
                            output_plot=out("outputPlotFile"), server_token=token, **common)


def inspect_staged(sources: Sequence, *, require_labels: bool) -> tuple:
    """The cheap h5py-only schema check of the staged inputs (no framework): a wrong or corrupt
    file fails here, in a second, before the payload step starts."""
    from payload.api import inspect_inputs

    with payload_errors():
        return inspect_inputs(sources, require_labels=require_labels)


@contextlib.contextmanager
def payload_errors() -> Iterator[None]:
    """Translate the payload's exceptions into the trf's TrfErrors, which carry the exit codes."""
    try:
        yield
    except perr.StopRequested:
        raise JobStopped() from None
    except perr.EventFileError as err:
        raise InputFileError(str(err), cause=Cause.REMOVED if err.removed else Cause.CORRUPT,
                             source=err.path) from None
    except perr.ModelFileError as err:
        raise InputFileError(str(err), cause=Cause.MODEL_MISMATCH if err.mismatch else Cause.CORRUPT,
                             source=err.path) from None
    except perr.EmptySelection as err:
        raise NoEventsError(str(err)) from None
    except perr.CollectiveError as err:
        raise WorkerLostError(str(err)) from None
    except perr.InferenceServerError as err:
        raise InferenceServerError(str(err), cause=SERVER_CAUSES[err.kind], server=err.server) from None
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
                              cause=Cause.DISK_FULL) from None


def entries_by_output(result: StepResult, pending: Mapping[str, Path]) -> dict[str, int]:
    """Number of events held by each output, keyed by argument name."""
    by_path = {str(Path(p)): n for p, n in result.outputs.items()}
    return {name: by_path.get(str(tmp), 0) for name, tmp in pending.items()}
