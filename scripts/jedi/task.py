#!/usr/bin/env python3
"""Build, check and (optionally) submit the JEDI task for a DUNE inference campaign or training.

    python -m scripts.jedi.task infer --input-list pfns.txt --output-dataset user.jdoe.dune.pred.v1/ \\
        --model-file https://host/models/dune.model.v3.keras --trf-url https://host/dune-payload.pyz \\
        --files-per-job 5 --gpu nvidia            # prints the task parameters (JSON): --dry-run
    python -m scripts.jedi.task infer ... --expand-sample 7          # job parameters of 7 sample files
    python -m scripts.jedi.task train ... --checkpoint-prefix 's3://ckpt/dune/task-{taskid}/' --submit

The task parameters follow JEDI's taskParamMap (panda-client's `Client.insertTaskParams`):
`jobParameters` is a list of items, `constant` ones copied as they are, `template` ones tied to a
dataset: the input's value holds `${IN/L}` (JEDI puts the job's files there as a comma list), an
output's value ends in its LFN template (`…$JEDITASKID._${SN/P}.pred.h5`), which JEDI turns into the
`${OUTPUT<n>}` placeholder and fills per job.

Inputs come either as a dataset JEDI lists through its DDM (`--dataset`: needs a DDM plug-in that
lists files, i.e. Rucio; the generic VO's GenDDMClient lists none) or as URLs the trf reads itself
(`--input-url`/`--input-list`, JEDI's `pfnList`, as prun's `--pfnList` makes it: s3://, https://).

Files every job needs (the model, a build manifest) must reach the job the way PanDA stages files:
only files of a `template` input item with a dataset are attached to a job and staged by the pilot,
so a bare LFN in a `constant` item is never staged and every job would fail (exit 9). Each is
therefore an s3://, https:// or http:// URI the trf fetches, a packaged `reference:NAME` model, or a
secondary dataset attached to every job (`--model-dataset`: prun's `--secondaryDSs
NAME:1:DATASET` with `--reusableSecondary`); a bare name is refused here. A build manifest is read
here too (for the GPU request), so it is always a URI.

Hardware: `architecture` carries the GPU request (`@base_platform#cpu&gpu[:vram>=N][:uarch=NAME]`,
or its JSON form: the GPUs the task's builds can use, see scripts/jedi/brokerage.py), read by the ATLAS
brokers only. The broker of every other VO (GenJobBroker) reads the task's `processingType`
against each queue's `allowed_processing`/`excluded_processing`: GPU tasks get the processing
types of `GPU_PROCESSING_TYPES`, which a DUNE GPU queue allows and a CPU queue excludes
(docs/pilot.md, "GPU targeting"). `--gpu amd`/`--gpu intel` (with `--gpu-arch` families or code
targets, `--gpu-model` a pattern) ask the ATLAS brokers for that vendor's GPUs and give the task
its vendor's processing types (`VENDOR_PROCESSING_TYPES`); what a broker cannot honour of that is
printed as a warning naming the panda-server function (`hardware_warnings`). `--site` pins the
task to one queue (or a regular expression).
`--image` wraps every job in a container (`container_name` and a `--containerImage` word, never
first: the pilot strips it only after a space; the trf ignores it if it arrives); without it jobs
run on the node's own Python.

Every task is checked before it is printed or sent: required fields, names, the hardware request,
and the template expanded for sample files the way JEDI and the pilot will do it, then parsed by the
trf's own argument parser (wrapper.args.spec.parse_job_args). A template the trf would reject makes this
script exit with the trf's exit code for that error (7, 16, 17, …) and say why.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from scripts.jedi import brokerage
from wrapper.builds.manifest import load_manifest, standard_builds
from wrapper.platform.gpu_record import VENDOR_NAMES
from wrapper.errors import TrfError
from wrapper.args.spec import parse_job_args
from wrapper.jobfiles import LFN_RULE

CPU_ARCHS = ("x86_64", "ppc64le", "aarch64")
GPU_VENDORS = ("nvidia", "amd", "intel", "none")
MODES = ("infer", "train")
SAMPLE_TASK_ID = 4242
DATASET_RULE = re.compile(r"^(?:[A-Za-z0-9_.\-]+:)?[A-Za-z0-9_.\-]+/?$")
LOG_EXCLUDE = r"\.log\.tgz(\.\d+)*$"
# What the trf fetches by itself (wrapper.staging): a task file or input given as one of these
# reaches every job without PanDA staging it.
URI_SCHEMES = ("s3://", "https://", "http://")
PACKAGED_MODEL = "reference:"
EXIT_INVALID = 1      # the task itself is wrong (not a trf argument problem)
EXIT_SUBMIT = 1


def processing_type(mode: str, gpu: bool, vendor: str = "nvidia") -> str:
    """The task's processingType: what GenJobBroker matches against a queue's
    allowed_processing / excluded_processing (GPU tasks have their own, AMD and Intel ones theirs:
    `dune-ml-infer-gpu-amd`; NVIDIA's keep the name queues already list)."""
    if not gpu:
        return f"dune-ml-{mode}"
    return f"dune-ml-{mode}-gpu" + ("" if vendor == "nvidia" else f"-{vendor}")


GPU_PROCESSING_TYPES = tuple(processing_type(mode, True) for mode in MODES)   # NVIDIA's
# {vendor: its GPU processing types}: a queue of that vendor's GPUs allows them, every other queue
# of the site excludes them (GenJobBroker compares whole strings: nothing else keeps them apart).
VENDOR_PROCESSING_TYPES = {vendor: tuple(processing_type(mode, True, vendor) for mode in MODES)
                           for vendor in GPU_VENDORS if vendor != "none"}
ALL_GPU_PROCESSING_TYPES = tuple(t for types in VENDOR_PROCESSING_TYPES.values() for t in types)


class TaskError(Exception):
    """The task parameters are not valid; `exit_code` is the trf's when its parser said so."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class TaskFile:
    """A file every job of the task needs (the model, a build manifest): a URI the trf fetches or
    a packaged model (`value`), or a secondary dataset attached to every job (`dataset`)."""

    argument: str                          # the trf's argument: modelFile, buildManifest
    value: Optional[str] = None
    dataset: Optional[str] = None

    @property
    def stream(self) -> str:
        """The secondary stream's placeholder name in the job parameters."""
        return "MODEL"


@dataclass(frozen=True)
class TaskRequest:
    """What a physicist asks for; `build_task_params` turns it into JEDI's taskParamMap."""

    mode: str                              # infer | train
    output_dataset: str
    trf_url: str
    dataset: Optional[str] = None          # the input dataset JEDI lists, or:
    input_urls: tuple = ()                 # the inputs as URLs the trf reads (JEDI's pfnList)
    image: Optional[str] = None            # a container for every job (none: the node's Python)
    model: Optional[TaskFile] = None       # infer: the trained model; train: a starting point
    manifest: Optional[TaskFile] = None    # the build manifest every job chooses from
    files_per_job: int = 5
    max_files: Optional[int] = None
    cpu_arch: str = "x86_64"
    gpu: str = "nvidia"                    # the vendor: nvidia | amd | intel | none
    gpu_archs: tuple = ()                  # --gpu-arch: microarchitectures or code targets (gfx90a)
    gpu_model: Optional[str] = None        # --gpu-model: a pattern the GPU's model must match
    require_gpu: bool = True               # a GPU task's jobs refuse to run on the CPU (exit 69)
    gpu_memory_mb: Optional[int] = None
    base_platform: Optional[str] = None    # e.g. el9
    vo: str = "dune"
    prod_source_label: str = "user"
    working_group: Optional[str] = None
    site: Optional[str] = None
    cores: Optional[int] = None            # cores per job: coreCount and the trf's --nThreads
    ram_mb: Optional[int] = None
    max_attempt: int = 5
    priority: int = 1000
    model_config: Optional[str] = None     # None: the model file's network (train from scratch: small)
    prediction_format: str = "scores"
    epochs: int = 10
    batch_size: Optional[int] = None
    checkpoint_prefix: Optional[str] = None
    builds: tuple = ()                     # the manifest's builds (default: the standard ones), for brokerage
    inference_server: Optional[str] = None  # infer on this Triton server (grpc://HOST:PORT): CPU queues
    inference_model: Optional[str] = None   # the model there: NAME[:VERSION]
    extra_args: tuple = field(default_factory=tuple)


def task_file(argument: str, value: Optional[str], dataset: Optional[str]) -> Optional[TaskFile]:
    """The TaskFile for `--<argument>` given as a value or as a dataset. Raises TaskError for a
    bare file name, which JEDI would pass to the trf as text without staging the file."""
    if value and dataset:
        raise TaskError(f"--{argument} and its dataset are two sources for one file: give one")
    if dataset:
        if not DATASET_RULE.match(dataset):
            raise TaskError(f"{dataset!r} (for --{argument}) is not a dataset name")
        return TaskFile(argument, dataset=dataset)
    if not value:
        return None
    if value.startswith(URI_SCHEMES) or (argument == "modelFile" and value.startswith(PACKAGED_MODEL)):
        return TaskFile(argument, value=value)
    alternative = ", or the dataset holding it with --model-dataset" if argument == "modelFile" else ""
    raise TaskError(
        f"--{argument} {value!r} is a bare file name: JEDI attaches a file to a job only through a "
        "template input item with a dataset, so the pilot never stages this one and every job would "
        f"fail with the input missing (exit 9). Give its s3://, https:// or http:// URL{alternative}")


# ---------------------------------------------------------------------------------------------
# Building


def _stem(dataset: str) -> str:
    """LFN stem from the output dataset name: its scope and trailing slash dropped."""
    return dataset.split(":")[-1].rstrip("/")


def wants_gpu(request: TaskRequest) -> bool:
    """Whether the task's jobs need a GPU: not when an inference server runs the network."""
    return request.gpu != "none" and not request.inference_server


def architecture(request: TaskRequest) -> str:
    """JEDI's hardware request: base platform, CPU and, for GPU tasks, the GPUs one of the task's
    builds can use (scripts.jedi.brokerage), plus --gpu-memory-mb."""
    gpu = gpu_request(request) if wants_gpu(request) else None
    return brokerage.architecture(request.cpu_arch, gpu, request.base_platform)


def gpu_request(request: TaskRequest) -> brokerage.GpuRequirement:
    """The GPU part of the hardware request, from the task's builds (its manifest's, else the
    standard builds of its model); raises TaskError when no build fits it."""
    model_file = request.model.value if request.model else None
    builds = request.builds or standard_builds(model_file, request.model_config, 1)
    try:
        return brokerage.gpu_requirement(builds, request.gpu_memory_mb, request.gpu, request.gpu_archs,
                                         request.gpu_model)
    except ValueError as err:
        raise TaskError(str(err)) from None


def hardware_warnings(request: TaskRequest) -> list:
    """What PanDA's brokers cannot honour of this GPU request (printed, the task is still made)."""
    if not wants_gpu(request):
        return []
    notes = list(gpu_request(request).warnings)
    if request.gpu != "nvidia":
        mine, label = "|".join(VENDOR_PROCESSING_TYPES[request.gpu]), VENDOR_NAMES[request.gpu]
        notes.append(
            f"GenJobBroker (pandajedi/jedibrokerage/GenJobBroker.py, doBrokerage), the broker of every "
            f"non-ATLAS VO, does not read `architecture`: this task reaches {label} GPUs only "
            f"through processingType {processing_type(request.mode, True, request.gpu)}, compared as a "
            f"whole string with the queues' CRIC catchall (SiteSpec.get_allowed_processing_types): "
            f"the {label} queues need allowed_processing={mine}, and every other queue of their sites "
            f"without an allowed_processing list must name them in excluded_processing (a CPU queue: "
            f"{'|'.join(ALL_GPU_PROCESSING_TYPES)}); a queue excluding only "
            f"{'|'.join(GPU_PROCESSING_TYPES)} takes this task")
        notes.append(
            "ATLAS brokers (AtlasBrokerUtils.JsonSoftwareCheck.check → match_gpu_spec) skip a queue with "
            f"no worker_node_gpus record of an {label} GPU; pilot 3.11.5.1 records NVIDIA GPUs only "
            "(pilot/util/workernode.py, get_workernode_gpu_map), so a queue has them only after the DUNE "
            "pilot plugin (--pilot-user dune) has reported a finished job there")
    return notes


def _output(lfn_template: str, argument: str, dataset: str) -> dict:
    return {"type": "template", "param_type": "output", "value": f"--{argument}={lfn_template}",
            "dataset": dataset, "container": dataset}


def _file_item(file: TaskFile) -> dict:
    if file.dataset:
        # prun --secondaryDSs NAME:1:DATASET --reusableSecondary NAME: one file of the dataset
        # attached to every job, the same file again for each (MiscUtils.makeJediJobParam).
        return {"type": "template", "param_type": "input", "value": f"--{file.argument}=${{{file.stream}}}",
                "dataset": file.dataset, "expand": True, "nFilesPerJob": 1, "reusable": True}
    return {"type": "constant", "value": f"--{file.argument}={file.value}"}


def _input_items(request: TaskRequest, params: dict) -> list:
    if request.input_urls:
        # prun --pfnList: a task without an input dataset whose "files" are the URLs
        # (JEDI's ContentsFeeder and JobGenerator put them in ${IN} by their order here).
        urls = sorted(request.input_urls)
        params.update(noInput=True, pfnList=urls, nFiles=min(request.max_files or len(urls), len(urls)))
        return [{"type": "constant", "value": "--inputEventsFile=${IN/L}"}]
    params["dsForIN"] = request.dataset
    if request.max_files:
        params["nFiles"] = request.max_files
    return [{"type": "template", "param_type": "input", "value": "--inputEventsFile=${IN/L}",
             "dataset": request.dataset, "expand": True, "exclude": LOG_EXCLUDE}]


def _inference_items(request: TaskRequest) -> list:
    """The trf's --inferenceServer and --inferenceModel, when an inference server runs the network."""
    if not request.inference_server:
        return []
    return [{"type": "constant", "value": f"--inferenceServer={request.inference_server}"},
            {"type": "constant", "value": f"--inferenceModel={request.inference_model}"}]


def build_task_params(request: TaskRequest) -> dict:
    """JEDI's taskParamMap for the request (not yet validated)."""
    stem = _stem(request.output_dataset)
    out = request.output_dataset if request.output_dataset.endswith("/") else request.output_dataset + "/"
    log_dataset = f"{stem}.log/"
    gpu = wants_gpu(request)
    params = {
        "taskName": out,
        "uniqueTaskName": True,
        "vo": request.vo,
        "prodSourceLabel": request.prod_source_label,
        "taskType": "anal" if request.prod_source_label == "user" else "prod",
        "processingType": processing_type(request.mode, gpu, request.gpu),
        "taskPriority": request.priority,
        "architecture": architecture(request),
        "transUses": "",
        "transHome": None,
        "transPath": request.trf_url,
        "coreCount": request.cores or 1,
        "maxAttempt": request.max_attempt,
        "nFilesPerJob": request.files_per_job,
        "nMaxFilesPerJob": max(request.files_per_job, 200),
        "respectSplitRule": True,
        "log": {"type": "template", "param_type": "log", "dataset": log_dataset, "container": log_dataset,
                "value": f"{stem}.log.$JEDITASKID.${{SN}}.log.tgz"},
    }
    if request.image:
        params["container_name"] = request.image
    if request.ram_mb:
        params["ramCount"], params["ramCountUnit"] = request.ram_mb, "MBPerCore"
    if request.working_group:
        params["workingGroup"] = request.working_group
    if request.site:
        params["site"] = request.site

    items = [{"type": "constant", "value": f"--mode={request.mode}"}]
    if request.image:
        # Never first: JEDI puts no space before the first item and the pilot strips
        # `--containerImage` only after a space (pilot/info/jobdata.py, extract_container_image).
        items.append({"type": "constant", "value": f"--containerImage {request.image}"})
    items += _input_items(request, params)
    if request.model and request.model.dataset:
        params["reuseSecOnDemand"] = True
    if request.model_config:
        items.append({"type": "constant", "value": f"--modelConfig={request.model_config}"})
    if request.manifest:
        items.append(_file_item(request.manifest))
    if request.model:
        items.append(_file_item(request.model))
    items += _inference_items(request)
    if request.mode == "infer":
        items += [{"type": "constant", "value": f"--predictionFormat={request.prediction_format}"},
                  _output(f"{stem}.$JEDITASKID._${{SN/P}}.pred.h5", "outputPredFile", f"{stem}_pred/")]
    else:
        items += [{"type": "constant", "value": f"--epochs={request.epochs}"},
                  _output(f"{stem}.$JEDITASKID._${{SN/P}}.model.keras", "outputModelFile", f"{stem}_model/"),
                  _output(f"{stem}.$JEDITASKID._${{SN/P}}.metrics.json", "outputMetricsFile",
                          f"{stem}_metrics/")]
        if request.checkpoint_prefix:
            items.append({"type": "constant", "value": f"--checkpointPrefix={request.checkpoint_prefix}"})
    if request.batch_size:
        items.append({"type": "constant", "value": f"--batchSize={request.batch_size}"})
    if request.cores:
        items.append({"type": "constant", "value": f"--nThreads={request.cores}"})
    if gpu and request.require_gpu:
        items.append({"type": "constant", "value": "--requireGPU"})
    items += [{"type": "constant", "value": shlex.quote(word)} for word in request.extra_args]
    params["jobParameters"] = items
    return params


# ---------------------------------------------------------------------------------------------
# What JEDI makes of the template. This follows panda-jedi's code (PanDAWMS/panda-jedi, now also in
# panda-server's pandajedi/): TaskRefinerBase.doBasicRefine builds the template, RefinerUtils.
# extractReplaceOutFileTemplate turns each output's LFN template into its ${OUTPUT<n>} stream, and
# JobGenerator.makeJobParameters fills a job's streams and numbers.


def job_template(params: dict) -> str:
    """JEDI's job parameter template: each non-hidden item's value followed by a space (none with
    `padding: false`), the last character dropped; an output's LFN template (after its last '=')
    replaced by its stream placeholder ${OUTPUT<n>}."""
    text, outputs = "", 0
    for item in params["jobParameters"]:
        if "value" not in item or item.get("hidden") is True:
            continue
        value = item["value"]
        if item.get("type") == "template" and item.get("param_type") == "output":
            lfn_template = value.split("=")[-1].replace("'", "")
            value = value.replace(lfn_template, f"${{OUTPUT{outputs}}}")
            outputs += 1
        text += value + ("" if item.get("padding") is False else " ")
    return text[:-1]


def output_lfn(template: str, serial: int, task_id: int) -> str:
    """An output LFN as JEDI names it: $JEDITASKID, ${SN/P} (6 digits), ${SN}."""
    return (template.replace("$JEDITASKID", str(task_id)).replace("${SN/P}", f"{serial:06d}")
            .replace("${SN}", str(serial)))


def compact_lfns(lfns: Sequence[str]) -> str:
    """Several LFNs in JEDI's compact form (`ev._[000001,000002].h5`), or the comma list when the
    part that differs is not all digits."""
    if len(lfns) == 1:
        return lfns[0]
    stripped = [re.sub(r"\.\d+$", "", lfn) for lfn in lfns]     # attempt numbers
    first, second = stripped[0], stripped[1]
    head = os.path.commonprefix([first, second])
    tail = os.path.commonprefix([first[::-1], second[::-1]])[::-1]
    head, tail = re.sub(r"\d*$", "", head), re.sub(r"^\d*", "", tail)
    middles = [lfn[len(head):len(lfn) - len(tail)] for lfn in stripped]
    if all(re.fullmatch(r"\d+", m) for m in middles):
        return f"{head}[{','.join(middles)}]{tail}"
    return ",".join(lfns)


def _stream_value(decorators: str, lfns: Sequence[str]) -> str:
    if "/L" in decorators:
        quote = "'" if "/A" in decorators else ""
        return (" " if "/S" in decorators else ",").join(f"{quote}{lfn}{quote}" for lfn in lfns)
    return compact_lfns(lfns)


def expand_job(params: dict, files: Sequence[str], serial: int, task_id: int = SAMPLE_TASK_ID) -> str:
    """The jobPars of job `serial` reading `files`, as JEDI generates them."""
    template = job_template(params)
    text = template
    outputs = [i for i in params["jobParameters"]
               if i.get("type") == "template" and i.get("param_type") == "output"]
    streams = {"IN": sorted(files)}
    for item in params["jobParameters"]:
        stream = re.search(r"\$\{(\w+)\}", item.get("value", ""))
        if item.get("param_type") == "input" and stream and stream.group(1) != "IN":
            streams[stream.group(1)] = [secondary_sample(item)]
    for index, item in enumerate(outputs):
        streams[f"OUTPUT{index}"] = [output_lfn(item["value"].split("=")[-1], serial, task_id)]
    for match in re.finditer(r"\$\{([^}]+)\}", template):
        placeholder = match.group(1)
        name = placeholder.split("/")[0]
        if name in streams:
            decorators = placeholder[len(name):]
            text = text.replace(f"${{{placeholder}}}", _stream_value(decorators, streams[name]))
    # FIRSTEVENT and RNDMSEED stay: JEDI fills them only for event-split tasks and tasks with a
    # random-seed template, which these are not (the trf reports a placeholder left in its words).
    for name, value in (("SN", serial), ("SN/P", f"{serial:06d}"), ("MAXEVENTS", 0), ("SKIPEVENTS", 0)):
        text = text.replace(f"${{{name}}}", str(value))
    return text


def secondary_sample(item: dict) -> str:
    """A plausible LFN of a secondary dataset's one file (the model)."""
    return item["dataset"].split(":")[-1].rstrip("/") + "._000001.keras"


def sample_files(params: dict, count: int) -> list[str]:
    """`count` inputs of the task: its first URLs, or plausible LFNs of its dataset (the JEDI
    compact form is exercised when a job gets several)."""
    if params.get("pfnList"):
        return list(params["pfnList"][:count])
    stem = params["dsForIN"].split(":")[-1].rstrip("/")
    return [f"{stem}._{n:06d}.h5" for n in range(1, count + 1)]


def expand_sample(params: dict, files: Sequence[str]) -> list[dict]:
    """Each sample job: its files, jobPars, the words the trf gets and the JobSpec it parses into.
    Raises TaskError with the trf's exit code when the trf would reject the job parameters."""
    per_job = int(params["nFilesPerJob"])
    jobs = []
    for serial, start in enumerate(range(0, len(files), per_job), start=1):
        chunk = list(files[start:start + per_job])
        jobpars = expand_job(params, chunk, serial)
        # The pilot strips a --containerImage word when a space precedes it and the trf ignores
        # one that reaches it, so the trf gets the shell words of the jobPars either way.
        words = shlex.split(jobpars)
        try:
            spec = parse_job_args(words)
        except TrfError as err:
            raise TaskError(f"job {serial}: the trf rejects the job parameters ({err.acronym}, exit "
                            f"{err.exit_code}): {err.message}\n  jobPars: {jobpars}",
                            exit_code=err.exit_code) from None
        jobs.append({"serial": serial, "files": chunk, "jobPars": jobpars, "trfWords": words,
                     "spec": spec.explicit(), "outputs": spec.outputs()})
    return jobs


# ---------------------------------------------------------------------------------------------
# Checking


REQUIRED = ("taskName", "vo", "prodSourceLabel", "taskType", "processingType", "taskPriority",
            "architecture", "transUses", "transHome", "transPath", "jobParameters", "log",
            "nFilesPerJob")


GPU_SPEC_KEYS = {"vendor", "model", "version", "vram", "microarchitecture", "driver_version"}


def check_architecture(text: str) -> None:
    """The task's `architecture` in either form panda-server reads (JediTaskSpec): the shorthand
    `@base#cpu&gpu[:key=value]…` or the JSON object. Raises TaskError."""
    if text.startswith("{"):
        data = json.loads(text)
        unknown = set(data) - {"sw_platform", "base_platform", "cpu_specs", "gpu_spec"}
        cpus = [spec.get("arch") for spec in data.get("cpu_specs", [])]
        if unknown or set(data.get("gpu_spec", {})) - GPU_SPEC_KEYS or not set(cpus) <= set(CPU_ARCHS):
            raise TaskError(f"architecture {text!r} is not a hardware request panda-server reads")
        return
    vendors = "|".join(v for v in GPU_VENDORS if v != "none")
    if not re.fullmatch(r"(@[\w.\-]+)?#(" + "|".join(CPU_ARCHS) + r")(&(" + vendors +
                        r")(:vram>=\d+)?(:uarch=[\w \-]+)?)?", text):
        raise TaskError(f"architecture {text!r} is not @base#cpu[&gpu[:vram>=MB][:uarch=NAME]] with "
                        f"cpu in {', '.join(CPU_ARCHS)}")


def check_inputs(params: dict) -> None:
    """One source of inputs: a dataset with its one ${IN} template item, or a pfnList of URLs the
    trf reads (and a constant ${IN} item). Raises TaskError."""
    master = [i for i in params["jobParameters"] if i.get("value", "").startswith("--inputEventsFile=${IN")]
    if params.get("pfnList"):
        bad = [url for url in params["pfnList"] if not str(url).startswith(URI_SCHEMES)]
        if bad or "dsForIN" in params or not params.get("noInput"):
            raise TaskError(f"a pfnList task reads URLs the trf fetches ({', '.join(URI_SCHEMES)}), with "
                            f"noInput and no dsForIN; got {bad[:3] or 'an input dataset as well'}")
        if len(master) != 1 or master[0].get("type") != "constant":
            raise TaskError("a pfnList task needs exactly one constant --inputEventsFile=${IN/L} item")
        return
    if "dsForIN" not in params or not DATASET_RULE.match(str(params["dsForIN"])):
        raise TaskError(f"input dataset {params.get('dsForIN')!r} is not a dataset name")
    if len(master) != 1 or master[0].get("dataset") != params["dsForIN"]:
        raise TaskError("exactly one input template, holding ${IN/L} and naming dsForIN, is needed")


def validate(params: dict) -> list[dict]:
    """Check the task parameters; returns the sample expansion (two jobs' worth). Raises TaskError."""
    missing = [key for key in REQUIRED if key not in params]
    if missing:
        raise TaskError(f"task parameters lack {', '.join(missing)}")
    if not str(params["transPath"]).startswith(("https://", "http://")):
        raise TaskError(f"transPath {params['transPath']!r} must be the trf's http(s) URL: the pilot "
                        "downloads it")
    if not params["taskName"].endswith("/") or not DATASET_RULE.match(params["taskName"]):
        raise TaskError(f"output dataset {params['taskName']!r} must be scope-less letters, digits, "
                        "'.', '_', '-' and end with '/'")
    check_inputs(params)
    check_architecture(params["architecture"])
    per_job = params["nFilesPerJob"]
    if not isinstance(per_job, int) or per_job < 1:
        raise TaskError(f"nFilesPerJob must be a positive integer, got {per_job!r}")
    for item in [i for i in params["jobParameters"] if i.get("param_type") == "output"] + [params["log"]]:
        lfn = output_lfn(item["value"].split("=")[-1], 999999, SAMPLE_TASK_ID)
        if "${SN" not in item["value"] or not LFN_RULE.fullmatch(lfn):
            raise TaskError(f"output template {item['value']!r} must hold ${{SN}} or ${{SN/P}} and make "
                            f"LFNs the pilot accepts ({LFN_RULE.pattern}); it makes {lfn!r}")
    return expand_sample(params, sample_files(params, min(2 * per_job, 6)))


# ---------------------------------------------------------------------------------------------
# Submitting


def submit(params: dict, verbose: bool = False) -> str:
    """Send the task with panda-client (PANDA_URL_SSL, X509_USER_PROXY or OIDC as panda-client
    reads them); returns the server's message, which carries the jediTaskID."""
    os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")   # no DNS look-up of the cache host at import
    from pandaclient import Client

    status, output = Client.insertTaskParams(params, verbose=verbose)
    if status != 0:
        raise TaskError(f"the PanDA server could not be reached (status {status}): {output}", EXIT_SUBMIT)
    code, message = output
    if code != 0:
        raise TaskError(f"the PanDA server refused the task (code {code}): {message}", EXIT_SUBMIT)
    return str(message)


# ---------------------------------------------------------------------------------------------
# Command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=MODES)
    inputs = p.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--dataset", help="input dataset (or container) of event files, listed by JEDI's "
                        "DDM (Rucio)")
    inputs.add_argument("--input-url", action="append", metavar="URL", dest="input_urls",
                        help="an input event file by URL (s3://, https://), repeatable: JEDI's pfnList")
    inputs.add_argument("--input-list", type=Path, metavar="FILE",
                        help="a file of input URLs, one per line ('#' comments), as prun's --pfnList reads it")
    p.add_argument("--output-dataset", required=True, help="output dataset name, e.g. user.jdoe.dune.v1/")
    p.add_argument("--trf-url", required=True, help="URL of the trf (the zipapp) the pilot downloads")
    p.add_argument("--image", help="container image, e.g. docker://registry/dune:cuda (default: none, "
                   "jobs run on the node's own Python)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model-file", help="infer: the trained model; train: a starting point. An "
                       "s3://, https:// or http:// URI, or reference:NAME")
    model.add_argument("--model-dataset", help="the dataset holding the model, attached to every job")
    p.add_argument("--build-manifest", "--buildManifest", dest="build_manifest", metavar="URI",
                   help="the model builds every job chooses from (s3:// or https://); GPU tasks then ask "
                   "only for GPUs one of its builds can use")
    p.add_argument("--files-per-job", type=int, default=None,
                   help="input files per job (default: 5 for infer, all of them in one job for train)")
    p.add_argument("--max-files", type=int, help="use at most this many input files")
    p.add_argument("--cpu-arch", choices=CPU_ARCHS, default="x86_64")
    p.add_argument("--gpu", "--gpu-vendor", dest="gpu", choices=GPU_VENDORS, default="nvidia",
                   help="GPU request: the vendor (none: CPU queues). amd and intel tasks get their own "
                        "processingType (dune-ml-infer-gpu-amd, …) for GenJobBroker")
    p.add_argument("--gpu-arch", action="append", default=[], metavar="NAME",
                   help="only these GPU microarchitectures (repeatable or comma-separated): a family as "
                        "the pilot plugin reports it ('CDNA 2', 'CDNA 3', 'Xe-HPC', 'Hopper') or a code "
                        "target (gfx90a, gfx942, pvc), which the broker can only ask for as its family")
    p.add_argument("--gpu-model", metavar="REGEX",
                   help="only GPUs whose model matches this regular expression from its start, "
                        "case-insensitive (panda-server's match_gpu_spec), e.g. 'AMD Instinct MI300A'")
    p.add_argument("--gpu-preferred", action="store_true",
                   help="GPU queues, but a job whose node has no GPU the framework can use runs on the "
                        "CPU instead of failing (no --requireGPU)")
    p.add_argument("--gpu-memory-mb", type=int, help="at least this much GPU memory")
    p.add_argument("--base-platform", help="base OS platform, e.g. el9")
    p.add_argument("--vo", default="dune")
    p.add_argument("--prod", action="store_true", help="a production task (prodSourceLabel=managed)")
    p.add_argument("--working-group")
    p.add_argument("--site", help="run at this PanDA queue only (or the queues this regular expression "
                   "matches)")
    p.add_argument("--cores", type=int, help="cores per job: the task's coreCount and the trf's "
                   "--nThreads (default: one-core slots; the trf uses what the batch system gives it)")
    p.add_argument("--ram-mb", type=int, help="memory per core in MB")
    p.add_argument("--max-attempt", type=int, default=5, help="attempts per job (retries resume training)")
    p.add_argument("--priority", type=int, default=1000)
    p.add_argument("--model-config", choices=("tiny", "small", "paper"),
                   help="the network (default: the one saved in the model file; a training from "
                        "scratch: small)")
    p.add_argument("--prediction-format", default="scores", choices=("scores", "classes"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--checkpoint-prefix", help="train: checkpoints, e.g. s3://ckpt/dune/task-{taskid}/")
    _inference_options(p)
    p.add_argument("--trf-arg", action="append", default=[], metavar="WORD",
                   help="another trf argument for every job (repeatable), e.g. --trf-arg=--precision=float32")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dry-run", action="store_true", help="print the task parameters (the default)")
    how.add_argument("--submit", action="store_true", help="submit the task with panda-client")
    how.add_argument("--expand-sample", type=int, metavar="N",
                     help="print the job parameters JEDI makes for N sample files, as the trf parses them")
    p.add_argument("--sample-files", nargs="+", metavar="LFN", help="file names for --expand-sample")
    p.add_argument("--verbose", action="store_true")
    return p


def _inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inference-server", metavar="URL",
                   help="infer: send the events to this Triton server (grpc://HOST:PORT or grpcs://, "
                        "dune-payload-serve); the jobs then run on CPU queues (no GPU request)")
    p.add_argument("--inference-model", metavar="NAME", help="the model on --inference-server: "
                   "NAME or NAME:VERSION (dune-payload-serve's default name: dune-<network>)")


def input_urls(args: argparse.Namespace) -> tuple:
    """The pfnList of the request: --input-url values or the lines of --input-list."""
    if args.input_list is None:
        return tuple(args.input_urls or ())
    try:
        lines = args.input_list.read_text().splitlines()
    except OSError as err:
        raise TaskError(f"--input-list {args.input_list}: {err.strerror}") from None
    urls = tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    if not urls:
        raise TaskError(f"--input-list {args.input_list} holds no URL")
    return urls


def load_builds(uri: str) -> tuple:
    """The builds of the manifest at `uri`, read the way the trf reads it (wrapper.staging)."""
    import tempfile

    from wrapper.staging import StagingOptions, resolve_one

    with tempfile.TemporaryDirectory(prefix="jedi-manifest-") as workdir:
        try:
            staged = resolve_one(uri, StagingOptions(workdir=Path(workdir)))
            return load_manifest(staged.local_path).builds
        except TrfError as err:
            raise TaskError(f"--buildManifest {uri}: {err.message}", exit_code=err.exit_code) from None


def request_from(args: argparse.Namespace) -> TaskRequest:
    """The request the command line describes; raises TaskError for a task PanDA could not run."""
    model = task_file("modelFile", args.model_file, args.model_dataset)
    manifest = task_file("buildManifest", args.build_manifest, None)
    if bool(args.inference_model) != bool(args.inference_server):
        raise TaskError("--inference-server and --inference-model go together: the server, and the "
                        "model's name on it (NAME or NAME:VERSION)")
    if args.inference_server and args.mode != "infer":
        raise TaskError("--inference-server serves inference; a training runs its network itself")
    if args.mode == "infer" and not (model or manifest or args.inference_server):
        raise TaskError("infer tasks need --model-file or --model-dataset (or --build-manifest naming "
                        "the weights, or --inference-server)")
    if (args.gpu_arch or args.gpu_model) and (args.gpu == "none" or args.inference_server):
        raise TaskError("--gpu-arch and --gpu-model narrow a GPU request: this task asks for no GPU")
    if args.gpu_model:
        try:
            re.compile(args.gpu_model)
        except re.error as err:
            raise TaskError(f"--gpu-model {args.gpu_model!r} is not a regular expression: {err}") from None
    files_per_job = args.files_per_job
    if files_per_job is None:
        files_per_job = 5 if args.mode == "infer" else 10000
    return TaskRequest(
        mode=args.mode, dataset=args.dataset, input_urls=input_urls(args), output_dataset=args.output_dataset,
        trf_url=args.trf_url, image=args.image, model=model, manifest=manifest, files_per_job=files_per_job,
        max_files=args.max_files, cpu_arch=args.cpu_arch, gpu=args.gpu, require_gpu=not args.gpu_preferred,
        gpu_archs=tuple(a.strip() for arg in args.gpu_arch for a in arg.split(",") if a.strip()),
        gpu_model=args.gpu_model,
        gpu_memory_mb=args.gpu_memory_mb,
        base_platform=args.base_platform, vo=args.vo, prod_source_label="managed" if args.prod else "user",
        working_group=args.working_group, site=args.site, cores=args.cores, ram_mb=args.ram_mb,
        max_attempt=args.max_attempt, priority=args.priority, model_config=args.model_config,
        prediction_format=args.prediction_format, epochs=args.epochs, batch_size=args.batch_size,
        checkpoint_prefix=args.checkpoint_prefix,
        builds=load_builds(args.build_manifest) if manifest else (),
        extra_args=tuple(args.trf_arg), inference_server=args.inference_server,
        inference_model=args.inference_model)


def main(argv: Sequence[str]) -> int:
    """Print the task's parameters, sample jobs' parameters, or submit it; the exit code."""
    args = parser().parse_args(argv)
    try:
        request = request_from(args)
        params = build_task_params(request)
        validate(params)
        for note in hardware_warnings(request):
            print(f"jedi_task: warning: {note}", file=sys.stderr)
        if args.expand_sample is not None or args.sample_files:
            files = args.sample_files or sample_files(params, args.expand_sample)
            print(json.dumps(expand_sample(params, files), indent=1))
        elif args.submit:
            print(submit(params, verbose=args.verbose))
        else:
            print(json.dumps(params, indent=1))
    except TaskError as err:
        print(f"jedi_task: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
