"""One job's steps in order: stage inputs, detect the platform, choose a build, run, publish.

Each step is recorded in the report with its timing; each module it calls is testable alone.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from wrapper.errors import OutputFileError
from wrapper.outputs import OutputPlan
from wrapper.progress import ProgressPrinter, log
from wrapper.report import JobReport
from wrapper.run import (RunContext, as_sources, entries_by_output, payload_errors, run_payload,
                         stop_reason_for)
from wrapper.spec import JobSpec


def staging_options(spec: JobSpec, workdir: Path):
    """StagingOptions for this job."""
    from wrapper.staging import StagingOptions

    return StagingOptions(workdir=workdir, s3_endpoint=spec.s3_endpoint,
                          s3_path_style=spec.s3_path_style, access_mode=spec.access_mode,
                          threads=spec.staging_threads, output_prefix=spec.output_prefix)


def choose_build(spec: JobSpec, workdir: Path):
    """Detect the platform, read the manifest (or derive one from --modelFile) and select a build."""
    from wrapper import builds
    from wrapper.platform import detect_platform

    platform = detect_platform(probe_framework=True)
    if spec.build_manifest:
        from wrapper.staging import resolve_one

        staged = resolve_one(spec.build_manifest, staging_options(spec, workdir))
        manifest = builds.load_manifest(staged.local_path)
    else:
        manifest = builds.default_manifest(spec.model_file, spec.model_config, spec.batch_size or 4)
    selection = builds.select_build(platform, manifest, build_name=spec.build, device=spec.device,
                                    require_gpu=spec.require_gpu)
    return platform, selection


def network_of(model_config: Optional[str], model: Optional[Path]) -> Optional[str]:
    """The network a job runs: the one named, else the model file's, else `small` for a training
    from scratch. None when the file names none: loading it then reports what is wrong with it."""
    from payload.modelinfo import network_in_file

    if model_config is not None:
        return model_config
    if model is None:
        return "small"
    return network_in_file(model)


def show_platform(spec: JobSpec, report: JobReport) -> None:
    """`--showPlatform`: print what this node is and which build a job would get."""
    from wrapper.platform import format_platform

    platform, selection = choose_build(spec, report.workdir)
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
    print(json.dumps(shown, indent=1, default=str), flush=True)
    log("dry run: nothing staged, nothing run")


def _source_kind(uri: str, workdir: Path) -> str:
    if "://" in uri:
        return uri.split("://", 1)[0]
    if (workdir / Path(uri).name).exists() and "/" not in uri:
        return "staged"
    return "local"


def run_job(spec: JobSpec, report: JobReport, outputs: OutputPlan, stop,
            printer: ProgressPrinter, deadline: Optional[float], job_cluster) -> None:
    """Stage, choose, run and publish one job, recording each step in the report."""
    from wrapper.requirements_check import check_requirements
    from wrapper.staging import report_entry

    uris = (*spec.input_events, spec.model_file, spec.output_prefix, spec.build_manifest,
            spec.checkpoint_prefix)
    check_requirements(spec.mode, uris=[u for u in uris if u], plots=bool(spec.output_plot))
    options = staging_options(spec, report.workdir)
    staged = _stage_in(spec, report, options, printer)
    try:
        ctx = _prepare(spec, report, options, staged, stop, printer, deadline, job_cluster)
        result = _run(spec, report, outputs, ctx, stop, deadline)
    finally:
        # Direct-access readers hold connections; their report entries need the final byte counts.
        entries = [report_entry(s) for s in staged]
        _close_handles(staged)
    counts = {Path(str(fc.path)).name: fc.events for fc in result.inputs}
    report.set_inputs([{**entry, "nentries": counts.get(entry["name"])} for entry in entries])
    _stage_out(spec, report, outputs, options, result)


def _stage_in(spec: JobSpec, report: JobReport, options, printer: ProgressPrinter) -> tuple:
    from payload.api import inspect_inputs
    from wrapper.staging import report_entry, stage_inputs

    step = report.step("stage-in")
    printer.stage(f"staging {len(spec.input_events)} input(s)")
    staged = stage_inputs(spec.input_events, options)
    report.set_inputs([report_entry(s) for s in staged])
    # A wrong or corrupt file fails here, in a second, not after the framework has loaded.
    with payload_errors(lambda: None):
        inspect_inputs(as_sources(staged), require_labels=spec.mode in ("train", "evaluate"))
    step.finish(True)
    return staged


def _prepare(spec: JobSpec, report: JobReport, options, staged, stop, printer, deadline,
             job_cluster) -> RunContext:
    """Platform, build, model weights, devices and checkpoints: everything the payload needs."""
    from wrapper import checkpoints
    from wrapper import cluster as clusters
    from wrapper.staging import resolve_one

    step = report.step("platform")
    platform, selection = choose_build(spec, report.workdir)
    report.section("platform", platform.to_report())
    report.section("build", selection.to_report())
    batch_size = spec.batch_size or selection.build.batch_size
    precision = selection.build.precision if spec.precision == "auto" else spec.precision
    log(f"build {selection.build.name} on {selection.device} ({precision}, batch {batch_size})")
    weights = selection.build.weights_uri if spec.build_manifest else spec.model_file
    model = resolve_one(weights, options).local_path if weights else None
    # A manifest's build names its own network; without one the build carries --modelConfig. With
    # neither, the model file's own network runs (a contradiction is refused when the file loads).
    model_config = network_of(selection.build.model_config, model)
    gpus = clusters.local_gpus(spec, selection)
    report.section("distribution", clusters.distribution_report(spec, job_cluster, gpus, batch_size))
    training = spec.mode == "train"
    if training:
        resumed = checkpoints.resume_checkpoint(spec.checkpoint_prefix, report.workdir, options,
                                                model_config, spec.resume)
        if resumed:
            report.section("resume", resumed.to_report())
            log(f"resuming: {resumed.to_report()}")
    sync = (checkpoints.start_sync(spec.checkpoint_prefix, report.workdir, options, model_config)
            if training and job_cluster.is_chief else None)
    step.finish(True)
    return RunContext(
        inputs=as_sources(staged), model_config=model_config, model=model,
        build_name=selection.build.name,
        precision=precision, batch_size=batch_size,
        checkpoint_dir=checkpoints.local_dir(report.workdir), progress=printer,
        should_stop=lambda: stop.requested() or (deadline is not None and time.monotonic() >= deadline),
        on_checkpoint=sync, distribution=clusters.payload_distribution(spec, job_cluster, gpus))


def _run(spec: JobSpec, report: JobReport, outputs: OutputPlan, ctx: RunContext, stop, deadline):
    step = report.step("payload")
    ctx.progress.stage(f"{spec.mode}: {len(ctx.inputs)} file(s), build {ctx.build_name}")
    try:
        result = run_payload(spec, ctx, outputs, stop_reason_for(lambda: stop.signum, deadline,
                                                                 spec.time_limit))
    finally:
        if ctx.on_checkpoint is not None:
            # A stopping job has seconds left before SIGKILL: periodic uploads already hold its state.
            ctx.on_checkpoint.close(0 if stop.requested() else 120)
            report.section("checkpointUploads", ctx.on_checkpoint.to_report())
    report.processed_events = result.processed_events
    if result.metrics:
        report.section("metrics", dict(result.metrics))
    step.finish(True)
    return result


def _stage_out(spec: JobSpec, report: JobReport, outputs: OutputPlan, options, result) -> None:
    from wrapper.staging import publish_outputs

    step = report.step("stage-out")
    entries = entries_by_output(result, outputs)
    committed = [outputs.commit(name, entries.get(name, 0)) for name in list(outputs.pending())]
    missing = set(outputs.lfns) - {c.arg_name for c in committed}
    if missing:
        raise OutputFileError(f"the payload wrote no {', '.join(sorted(missing))}", cause="missing")
    urls = {}
    if spec.output_prefix:
        urls = {p.path.name: p.url for p in publish_outputs([c.path for c in committed], options)}
    for c in committed:
        entry = c.to_report()
        if c.path.name in urls:
            entry["url"] = urls[c.path.name]
        report.add_output(c.arg_name, entry)
        log(f"output {c.path.name}: {c.file_size} bytes, {c.nentries} entries, ad:{c.adler32}")
    step.finish(True)


def _close_handles(staged) -> None:
    for item in staged:
        if item.handle is not None:
            item.handle.close()
