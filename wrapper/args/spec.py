"""JobSpec: the typed, validated, frozen description of one job, built from the trf arguments."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from payload.api import parse_model, parse_server_url
from wrapper.args import grammar
from wrapper.args.argdefs import ARGS, BOOL, BY_NAME, FLOAT, FLOATLIST, INT, LIST, REQUIRED, ArgDef
from wrapper.errors import (ArgumentChoiceError, ArgumentError, ArgumentMissingError,
                            ArgumentRangeError, ArgumentTypeError)
from wrapper.jobfiles import LFN_RULE


@dataclass(frozen=True)
class JobSpec:
    mode: Optional[str] = None
    input_events: tuple = ()
    model_file: Optional[str] = None
    model_config: Optional[str] = None   # None: the network in the model file, else small
    max_events: int = -1
    skip_events: int = 0
    random_seed: int = 12345
    output_pred: Optional[str] = None
    output_model: Optional[str] = None
    output_metrics: Optional[str] = None
    output_plot: Optional[str] = None
    prediction_format: str = "scores"
    output_prefix: Optional[str] = None
    epochs: int = 5
    batch_size: Optional[int] = None
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    loss: str = "weighted"
    crop_size: int = 0
    beam_fraction: float = 0.5
    lr_schedule: str = "plateau"
    warmup_steps: int = 0
    class_weights: Optional[tuple] = None
    early_stopping: int = 0
    checkpoint_prefix: Optional[str] = None
    checkpoint_interval: float = 300.0
    resume: bool = True
    build_manifest: Optional[str] = None
    build: Optional[str] = None
    device: str = "auto"
    require_gpu: bool = False
    gpus: Optional[int] = None
    precision: str = "auto"
    multi_worker: str = "auto"
    worker_port: int = 12345
    worker_timeout: float = 600.0
    n_threads: Optional[int] = None
    show_platform: bool = False
    inference_server: Optional[str] = None
    inference_model: Optional[str] = None
    inference_concurrency: int = 4
    inference_timeout: float = 60.0
    inference_retries: int = 4
    inference_fallback: str = "none"
    s3_endpoint: Optional[str] = None
    s3_path_style: bool = False
    access_mode: str = "copy"
    staging_threads: int = 16
    time_limit: Optional[float] = None
    dry_run: bool = False
    debug: bool = False
    arg_json: Optional[str] = None
    container_image: Optional[str] = None
    help: bool = False

    def outputs(self) -> dict[str, str]:
        """{argName: LFN} of the outputs this job writes."""
        return {a.name: getattr(self, a.field) for a in ARGS
                if a.output and getattr(self, a.field) is not None}

    def explicit(self) -> dict[str, object]:
        """Arguments that differ from their defaults, by trf name (for logs and the dry run)."""
        return {a.name: getattr(self, a.field) for a in ARGS
                if getattr(self, a.field) != a.default and a.name != "help"}


def _convert(arg: ArgDef, values: list) -> object:
    where = f"--{arg.name}"
    if arg.kind == BOOL:
        if not values:
            return True
        if len(values) > 1:
            raise ArgumentError(f"{where} is a flag and takes at most one value (true/false)")
        value = values[0]
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in grammar._BOOL_WORDS:
            raise ArgumentTypeError(f"{where}={value!r} is not a boolean; use true or false")
        return grammar._BOOL_WORDS[word]
    if arg.kind == LIST:
        items = [str(v) for v in values]
        if not items:
            raise ArgumentError(f"{where} needs at least one value")
        return tuple(items)
    if arg.kind == FLOATLIST:
        return tuple(_number(arg, v, float) for v in values) if values else None
    if not values:
        raise ArgumentError(f"{where} needs a value: write {where}=VALUE")
    if len(values) > 1:
        raise ArgumentError(f"{where} takes one value, got {len(values)}: {values[:3]!r}")
    value = values[0]
    if arg.kind == INT:
        return _number(arg, value, int)
    if arg.kind == FLOAT:
        return _number(arg, value, float)
    text = str(value)
    if not text:
        raise ArgumentError(f"{where} is empty; give a value or leave the argument out")
    if arg.choices and text not in arg.choices:
        raise ArgumentChoiceError(f"{where}={text!r} is not one of {', '.join(arg.choices)}")
    return text


def _number(arg: ArgDef, value: object, kind: type) -> float | int:
    where = f"--{arg.name}"
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{where}={value!r} is not a number")
    try:
        if isinstance(value, str) and not value.isascii():
            raise ValueError("non-ASCII digits")  # int() would take look-alikes such as '\u0663'
        number = kind(value) if kind is float or isinstance(value, int) else int(str(value).strip(), 10)
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise ArgumentTypeError(f"{where}={value!r} is not {noun}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ArgumentTypeError(f"{where}={value!r} is not a finite number")
    if arg.minimum is not None and number < arg.minimum:
        raise ArgumentRangeError(f"{where}={number} is below the minimum {arg.minimum:g}")
    if arg.maximum is not None and number > arg.maximum:
        raise ArgumentRangeError(f"{where}={number} is above the maximum {arg.maximum:g}")
    return number


def _validate(spec: JobSpec, given: Mapping[str, list]) -> None:
    if spec.help or spec.show_platform:
        return
    if spec.mode is None:
        raise ArgumentMissingError("--mode is missing: give --mode=train, --mode=infer or --mode=evaluate")
    for need in REQUIRED[spec.mode]:
        names = need if isinstance(need, tuple) else (need,)
        if any(n in given for n in names):
            continue
        if "modelFile" in names and spec.build_manifest:
            continue  # the manifest's build names the weights
        listed = " or ".join(f"--{n}" for n in names)
        raise ArgumentMissingError(f"{listed} is missing: --mode={spec.mode} needs it")
    lfns = spec.outputs()
    for name, lfn in lfns.items():
        if not LFN_RULE.fullmatch(lfn):
            raise ArgumentError(f"--{name}={lfn!r} is not a valid output file name: it must match "
                                f"{LFN_RULE.pattern} (a plain name, no directories)")
    seen: dict[str, str] = {}
    for name, lfn in lfns.items():
        if lfn in seen:
            raise ArgumentError(f"--{name} and --{seen[lfn]} name the same output {lfn!r}")
        seen[lfn] = name
    if spec.class_weights is not None and len(spec.class_weights) != 3:
        raise ArgumentError(f"--classWeights needs 3 values (background,beam,cosmic), got "
                            f"{len(spec.class_weights)}")
    if spec.mode == "train" and spec.crop_size:
        if spec.model_config == "paper":
            raise ArgumentError("--cropSize needs a network with position channels (tiny or small); "
                                "the paper network trains on whole events: drop --cropSize")
        if spec.crop_size % 16:
            raise ArgumentError(f"--cropSize={spec.crop_size} must be a multiple of 16: the small "
                                "network halves a crop four times (the reference model: 128)")
    if spec.require_gpu and spec.device == "cpu":
        raise ArgumentError("--requireGPU contradicts --device=cpu; drop one of them")
    if spec.access_mode == "direct" and spec.mode == "train":
        raise ArgumentError("--accessMode=direct serves inference and evaluation; "
                            "training reads its events several times, so use --accessMode=copy")
    _validate_server(spec, given)


def _validate_server(spec: JobSpec, given: Mapping[str, list]) -> None:
    """The inference-server arguments go together, with infer or evaluate, and parse."""
    server_args = [a.name for a in ARGS if a.group == "inference" and a.name in given]
    if not spec.inference_server:
        if server_args:
            raise ArgumentError(f"--{server_args[0]} needs --inferenceServer=grpc://HOST:PORT")
        return
    if spec.mode == "train":
        raise ArgumentError("--inferenceServer runs infer and evaluate; a training runs in the job: "
                            "drop --inferenceServer")
    if not spec.inference_model:
        raise ArgumentMissingError("--inferenceModel is missing: --inferenceServer needs the name of "
                                   "the model on the server (NAME or NAME:VERSION)")
    try:
        parse_server_url(spec.inference_server)
        parse_model(spec.inference_model)
    except ValueError as err:
        raise ArgumentError(f"--inferenceServer/--inferenceModel: {err}") from None
    if spec.inference_fallback == "local" and not (spec.model_file or spec.build_manifest):
        raise ArgumentMissingError("--inferenceFallback=local runs the network in the job when the "
                                   "server is gone: it needs --modelFile")


def build_spec(found: Mapping[str, list]) -> JobSpec:
    """Convert and validate {argName: raw values} into a JobSpec."""
    values = {}
    for name in found:
        arg = BY_NAME[name]
        values[arg.field] = _convert(arg, grammar.raw_values(found, name))
    spec = JobSpec(**values)
    _validate(spec, found)
    return spec


def parse_job_args(argv: Sequence[str]) -> JobSpec:
    """The trf's whole argument handling: words (or base64 jobPars) → validated JobSpec."""
    return build_spec(grammar.collect(argv))
