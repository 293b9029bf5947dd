"""One job, top to bottom: spec → platform and build → staging → payload → outputs → report.

What is cheap and can fail comes first: reserved or existing output names, the packages the job
needs, the platform and the build (a `--requireGPU` job on a CPU node ends here, before a byte is
staged). Each step is recorded in the report with its timing; each module it calls is testable alone.
`wrapper.main` turns what this raises into the exit code and the reports.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from payload.api import StepResult, network_in_file
from wrapper.args.reserved import check_output_names, trf_file
from wrapper.args.spec import JobSpec
from wrapper.builds import selection as builds
from wrapper.builds.selection import Selection
from wrapper.causes import Cause
from wrapper.checkpoints import resume as checkpoints
from wrapper.cluster import distribution as dist
from wrapper.cluster.workers import ClusterSpec
from wrapper.console import log, stdout_to_devnull
from wrapper.errors import JobStopped, OutputFileError, TimeLimitError, TrfError
from wrapper.platform.cpu_share import cpu_share
from wrapper.platform.describe import format_platform
from wrapper.platform.detect import Platform, detect_platform, with_usability
from wrapper.platform.probe import detect_platform_apart
from wrapper.platform.requirements import check_requirements
from wrapper.report.jobreport import JobReport, abridged
from wrapper.report.outputs import OutputPlan
from wrapper.report.progress import ProgressPrinter
from wrapper.signals import StopState
from wrapper.staging import (StagedInput, StagingOptions, publish_outputs, report_entry, resolve_one,
                             stage_inputs)
from wrapper.step.request import entries_by_output, inspect_staged, step_request
from wrapper.step.supervisor import ChildOutcome, run_supervised


# Events per request to an inference server when --batchSize is not given: a server's dynamic
# batcher merges requests of several jobs, so small ones keep the round trip short.
SERVER_BATCH = 4


@dataclass(frozen=True)
class JobContext:
    """What every step of one job shares."""

    spec: JobSpec
    report: JobReport
    outputs: OutputPlan
    stop: StopState
    cluster: ClusterSpec
    options: StagingOptions
    printer: ProgressPrinter
    deadline: Optional[float]            # time.monotonic() of --timeLimit, None without one

    def stop_requested(self) -> bool:
        return self.stop.requested() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def stop_reason(self) -> Optional[TrfError]:
        """Why a stop was requested: a signal, or the time limit."""
        if self.stop.signum is not None:
            return JobStopped(self.stop.signum)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return TimeLimitError(f"--timeLimit={self.spec.time_limit:g} s reached; partial outputs "
                                  "removed. Give more time or fewer events per job")
        return None


@dataclass(frozen=True)
class BuildChoice:
    """What the platform step chose: the node, the build, and how the payload runs on it. With
    the network on an inference server and no fallback, no build: `selection` is None."""

    platform: Platform
    selection: Optional[Selection]
    batch_size: int
    precision: str
    gpus: int
    threads: int                         # the job's CPU share (wrapper.platform.cpu_share)


def run_job(spec: JobSpec, report: JobReport, outputs: OutputPlan, stop: StopState) -> None:
    """Run the job `spec` describes, recording each step in `report`; raises TrfError on failure."""
    report.section("spec", abridged(spec.explicit()))
    outputs.lfns = spec.outputs()
    if spec.container_image:
        log(f"--containerImage {spec.container_image} ignored: the pilot, not the trf, runs the container")
    if spec.show_platform:
        show_platform(spec, report)
        return
    cluster = dist.job_cluster(spec)
    if not cluster.is_chief:
        # Only the chief's outputs and reports reach the pilot; the others keep theirs aside.
        report.workdir = outputs.workdir = dist.worker_workdir(cluster, report.workdir)
        log(f"worker {cluster.rank} of {cluster.size}: the chief writes the job's outputs and report; "
            f"this worker's own go to {report.workdir}")
    if dist.idle_worker(spec, cluster):
        log(f"worker {cluster.rank} of {cluster.size}: {spec.mode} runs on the chief alone")
        return
    check_outputs(spec, outputs)
    if spec.dry_run:
        dry_run(spec, report, outputs)
        return
    deadline = time.monotonic() + spec.time_limit if spec.time_limit else None
    with ProgressPrinter() as printer:
        job = JobContext(spec, report, outputs, stop, cluster, staging_options(spec, report.workdir, deadline),
                         printer, deadline)
        check_packages(spec)
        choice = platform_step(job)
        staged = stage_in(job)
        try:
            result = run_payload(job, choice, staged)
        finally:
            _close_inputs(staged)
        stage_out(job, result)


def check_outputs(spec: JobSpec, outputs: OutputPlan) -> None:
    """Before any work: no output may take a reserved name or one already in the job directory."""
    inputs = (*spec.input_events, spec.model_file, spec.build_manifest)
    check_output_names(outputs.lfns, [u for u in inputs if u], trf_file())
    outputs.check()


def check_packages(spec: JobSpec) -> None:
    """The packages this job's mode and URIs need are importable (exit 69 naming them)."""
    uris = (*spec.input_events, spec.model_file, spec.output_prefix, spec.build_manifest,
            spec.checkpoint_prefix)
    check_requirements(spec.mode, uris=[u for u in uris if u], plots=bool(spec.output_plot),
                       server=bool(spec.inference_server), fallback=runs_network_here(spec))


def staging_options(spec: JobSpec, workdir: Path, deadline: Optional[float] = None) -> StagingOptions:
    """StagingOptions for this job; transfers stop at `deadline` (--timeLimit)."""
    return StagingOptions(workdir=workdir, s3_endpoint=spec.s3_endpoint,
                          s3_path_style=spec.s3_path_style, access_mode=spec.access_mode,
                          threads=spec.staging_threads, output_prefix=spec.output_prefix,
                          deadline=deadline)


def detect_and_select_build(spec: JobSpec, workdir: Path) -> tuple[Platform, Selection]:
    """Detect the platform, read the manifest (or derive one from --modelFile) and select a build;
    records nothing (`--showPlatform` shows it, `platform_step` sizes the job's run on it).

    The manifest is the one input fetched before the choice: it is small, and the choice needs it.
    """
    platform = detect_platform_apart()
    if spec.build_manifest:
        staged = resolve_one(spec.build_manifest, staging_options(spec, workdir))
        manifest = builds.load_manifest(staged.local_path)
    else:
        manifest = builds.default_manifest(spec.model_file, spec.model_config, spec.batch_size or 4)
    selection = builds.select_build(platform, manifest, build_name=spec.build, device=spec.device,
                                    require_gpu=spec.require_gpu)
    return platform, selection


def runs_network_here(spec: JobSpec) -> bool:
    """Whether the job may run the network in its own process: always without an inference
    server, and with one only as `--inferenceFallback=local`."""
    return not spec.inference_server or spec.inference_fallback == "local"


def platform_step(job: JobContext) -> BuildChoice:
    """The job's platform step: the node and build (`detect_and_select_build`), then the run's batch
    size, precision, GPUs and CPU share, each recorded in the report (fails fast)."""
    spec, report = job.spec, job.report
    step = report.step("platform")
    share = cpu_share(spec.n_threads)
    report.section("cpu", share.to_report())
    if spec.inference_server:
        report.section("inference", {"where": "server", "server": spec.inference_server,
                                     "model": spec.inference_model, "fallback": spec.inference_fallback})
    if not runs_network_here(spec):
        # The server runs the network: the node needs no build and no framework (not even a probe).
        platform = with_usability(detect_platform(probe_framework=False))
        report.section("platform", platform.to_report())
        log(f"network on {spec.inference_server} (model {spec.inference_model}); no framework in this job")
        step.finish(True)
        return BuildChoice(platform, None, spec.batch_size or SERVER_BATCH, "float32", 0, share.threads)
    platform, selection = detect_and_select_build(spec, report.workdir)
    report.section("platform", platform.to_report())
    report.section("build", selection.to_report())
    batch_size = spec.batch_size or selection.build.batch_size
    precision = selection.build.precision if spec.precision == "auto" else spec.precision
    gpus = dist.local_gpus(spec, selection)
    report.section("distribution", dist.distribution_report(spec, job.cluster, gpus, batch_size))
    log(f"build {selection.build.name} on {selection.device} ({precision}, batch {batch_size})")
    step.finish(True)
    return BuildChoice(platform, selection, batch_size, precision, gpus, share.threads)


def network_of(model_config: Optional[str], model: Optional[Path]) -> Optional[str]:
    """The network a job runs: the one named, else the model file's, else `small` for a training
    from scratch. None when the file names none: loading it then reports what is wrong with it."""
    if model_config is not None:
        return model_config
    if model is None:
        return "small"
    return network_in_file(model)


def show_platform(spec: JobSpec, report: JobReport) -> None:
    """`--showPlatform`: print what this node is and which build a job would get."""
    platform, selection = detect_and_select_build(spec, report.workdir)
    report.section("platform", platform.to_report())
    report.section("build", selection.to_report())
    print(format_platform(platform, selection), flush=True)


def dry_run(spec: JobSpec, report: JobReport, outputs: OutputPlan) -> None:
    """`--dryRun`: print the resolved job and the plan; touch nothing, import no framework."""
    plan = {
        "mode": spec.mode,
        "inputs": [{"uri": uri, "source": _source_kind(uri, report.workdir)} for uri in spec.input_events],
        "model": spec.model_file,
        "outputs": {name: str(report.workdir / lfn) for name, lfn in outputs.lfns.items()},
        "uploadTo": spec.output_prefix,
        "arguments": spec.explicit(),
    }
    shown = report.section("plan", plan)
    try:
        print(json.dumps(shown, indent=1, default=str), flush=True)
        log("dry run: nothing staged, nothing run")
    except BrokenPipeError:  # `--dryRun | head`: the reader has what it wanted
        stdout_to_devnull()


def _source_kind(uri: str, workdir: Path) -> str:
    if "://" in uri:
        return uri.split("://", 1)[0]
    if (workdir / Path(uri).name).exists() and "/" not in uri:
        return "staged"
    return "local"


def stage_in(job: JobContext) -> tuple[StagedInput, ...]:
    """Stage the event files and check their schema (h5py only: a corrupt file fails in a second)."""
    spec, report = job.spec, job.report
    step = report.step("stage-in")
    job.printer.stage(f"staging {len(spec.input_events)} input(s)")
    staged = stage_inputs(spec.input_events, job.options)
    report.set_inputs([report_entry(s) for s in staged])
    try:
        inspect_staged(_inputs_here(staged), require_labels=spec.mode in ("train", "evaluate"))
    except BaseException:
        _close_inputs(staged)
        raise
    step.finish(True)
    return staged


def run_payload(job: JobContext, choice: BuildChoice, staged: tuple[StagedInput, ...]) -> StepResult:
    """Model weights, checkpoints, then the payload step in its supervised child process."""
    spec, report = job.spec, job.report
    build = choice.selection.build if choice.selection else None
    step = report.step("payload")
    weights = None if build is None else build.weights_uri if spec.build_manifest else spec.model_file
    model = resolve_one(weights, job.options).local_path if weights else None
    # A manifest's build names its own network; without one the build carries --modelConfig. With
    # neither, the model file's own network runs (a contradiction is refused when the file loads).
    network = network_of(build.model_config, model) if build else spec.model_config
    training = spec.mode == "train"
    if training:
        resumed = checkpoints.resume_checkpoint(spec.checkpoint_prefix, report.workdir, job.options,
                                                network, spec.resume)
        if resumed:
            report.section("resume", resumed.to_report())
            log(f"resuming: {resumed.to_report()}")
    sync = (checkpoints.start_sync(spec.checkpoint_prefix, report.workdir, job.options, network)
            if training and job.cluster.is_chief else None)
    request = step_request(
        spec, inputs=_inputs_for_child(staged),
        model=model, outputs={name: job.outputs.temp_path(name) for name in job.outputs.lfns},
        lfns=job.outputs.lfns, build_name=build.name if build else "server", precision=choice.precision,
        batch_size=choice.batch_size, model_config=network,
        checkpoint_dir=checkpoints.local_dir(report.workdir),
        distribution=dist.payload_distribution(spec, job.cluster, choice.gpus),
        report_checkpoints=sync is not None, device=choice.selection.device if build else "cpu",
        workdir=report.workdir, threads=choice.threads)
    job.printer.stage(f"{spec.mode}: {len(staged)} file(s), "
                      + (f"build {build.name}" if build else f"network on {spec.inference_server}"))
    outcome = ChildOutcome()
    try:
        result = run_supervised(request, on_progress=job.printer, stop_requested=job.stop_requested,
                                stop_reason=job.stop_reason, on_checkpoint=sync, outcome=outcome)
    finally:
        _remove_unfinished_checkpoints(checkpoints.local_dir(report.workdir))
        if sync is not None:
            # A stopping job has seconds left before SIGKILL: periodic uploads already hold its state.
            sync.close(0 if job.stop.requested() else 120)
            report.section("checkpointUploads", sync.to_report())
        report.set_inputs([_with_child_reads(report_entry(s), outcome.direct_stats) for s in staged])
    counts = {Path(str(fc.path)).name: fc.events for fc in result.inputs}
    report.set_inputs([{**entry, "nentries": counts.get(entry["name"])} for entry in report.inputs])
    report.processed_events = result.processed_events
    if result.metrics:
        report.section("metrics", dict(result.metrics))
    if result.inference:
        report.section("inference", dict(result.inference))
    step.finish(True)
    return result


def _remove_unfinished_checkpoints(directory: Path) -> None:
    """A payload process that died while writing a checkpoint leaves its temporary directory
    (complete checkpoints are renamed into place in one step, and stay)."""
    for unfinished in directory.glob(".ckpt-*.tmp"):
        shutil.rmtree(unfinished, ignore_errors=True)


def _with_child_reads(entry: dict, direct_stats: dict) -> dict:
    """A direct-access input's report entry with the reads the payload's process made added."""
    child = direct_stats.get(entry["name"])
    if not child or "direct" not in entry:
        return entry
    direct = dict(entry["direct"])
    for key, value in child.items():
        if key == "peak_cached_bytes":
            direct[key] = max(direct.get(key, 0), value)
        elif isinstance(value, (int, float)):
            direct[key] = direct.get(key, 0) + value
    fetched, seconds = direct["bytes_fetched"], direct["fetch_seconds"]
    return {**entry, "direct": direct, "bytes_transferred": fetched,
            "rate_mib_s": round(fetched / (1 << 20) / seconds, 2) if seconds > 0 else 0.0}


def stage_out(job: JobContext, result: StepResult) -> None:
    """Give the outputs their final names, upload them if asked, and list them in the report."""
    spec, report, outputs = job.spec, job.report, job.outputs
    step = report.step("stage-out")
    entries = entries_by_output(result, outputs.pending())
    committed = [outputs.commit(name, entries.get(name, 0)) for name in list(outputs.pending())]
    missing = set(outputs.lfns) - {c.arg_name for c in committed}
    if missing:
        raise OutputFileError(f"the payload wrote no {', '.join(sorted(missing))}", cause=Cause.MISSING)
    urls = {}
    if spec.output_prefix:
        try:
            urls = {p.path.name: p.url for p in publish_outputs([c.path for c in committed], job.options)}
        except BaseException:
            # a failed or stopped job leaves nothing under a final name: a rerun here would meet it
            for c in committed:
                c.path.unlink(missing_ok=True)
            raise
    for c in committed:
        entry = c.to_report()
        if c.path.name in urls:
            entry["url"] = urls[c.path.name]
        report.add_output(c.arg_name, entry)
        log(f"output {c.path.name}: {c.file_size} bytes, {c.nentries} entries, ad:{c.adler32}")
    step.finish(True)


def _inputs_here(staged: tuple[StagedInput, ...]) -> tuple:
    """The inputs as this process reads them (the schema check): a local path, or the direct-access
    file object staging opened."""
    return tuple(s.handle if s.handle is not None else s.local_path for s in staged)


def _inputs_for_child(staged: tuple[StagedInput, ...]) -> tuple:
    """The inputs as they cross to the payload's process: a local path, or the DirectSource that
    opens the direct-access file again there."""
    return tuple(s.direct_source if s.direct_source is not None else s.local_path for s in staged)


def _close_inputs(staged: tuple[StagedInput, ...]) -> None:
    for item in staged:
        if item.handle is not None:
            item.handle.close()
