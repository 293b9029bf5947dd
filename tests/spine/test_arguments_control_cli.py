"""Platform and control arguments reach what they decide, through the real CLI and without a
training: --showPlatform, --device, --multiWorker, --debug, --containerImage, --argJSON.

Each test compares the job with and without the value (or pins the outcome to what this node has),
so it fails if the value is dropped on the way. The registry naming these tests per argument is
tests/spine/test_arguments_reach.py.
"""
from __future__ import annotations

import json

INFER = ["--mode=infer", "--inputEventsFile=ev.h5", "--modelFile=model.keras", "--outputPredFile=pred.h5"]


def test_show_platform_prints_the_platform_and_build_without_a_job(jobdir, run_cli, read_reports):
    shown = run_cli(["--showPlatform"], jobdir)
    assert shown.rc == 0, shown.stderr
    report, _ = read_reports(jobdir)
    assert shown.stdout.startswith("Platform (GPUs from: ")
    assert f"CPU: {report['platform']['cpu']['arch']}" in shown.stdout
    assert f"Build: {report['build']['name']} on " in shown.stdout

    without = run_cli([], jobdir)
    assert without.rc == 17 and "Platform" not in without.stdout


def test_device_restricts_the_build_choice(tmp_path, run_cli, read_reports):
    """Pinned to this node: where the automatic choice runs on the CPU, --device=gpu fails (exit
    69) saying why; where it runs on a GPU, --device=cpu moves the job to the CPU."""
    def show(*words):
        jobdir = tmp_path / f"job{len(list(tmp_path.iterdir()))}"
        jobdir.mkdir()
        result = run_cli(["--showPlatform", *words], jobdir)
        return result, read_reports(jobdir)[0]

    auto, auto_report = show()
    assert auto.rc == 0, auto.stderr
    if auto_report["build"]["device"] == "cpu":
        gpu, gpu_report = show("--device=gpu")
        assert gpu.rc == 69 and "(--device=gpu)" in gpu_report["exitMsg"], gpu.stderr
    else:
        cpu, cpu_report = show("--device=cpu")
        assert cpu.rc == 0 and cpu_report["build"]["device"] == "cpu", cpu.stderr
        assert "excluded by --device=cpu" in json.dumps(cpu_report["build"]["skipped"])


SECOND_OF_TWO = {"SLURM_JOB_ID": "77", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
                 "SLURM_STEP_NODELIST": "node01", "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_LOCALID": "1"}


def test_multi_worker_off_makes_each_launched_copy_a_job_of_its_own(tmp_path, run_cli, cli_env):
    """Rank 1 of a 2-task Slurm step: by default it leaves an inference to the chief and writes
    nothing in the job directory; with --multiWorker=off it is a job like any other."""
    env = cli_env(**SECOND_OF_TWO, TMPDIR=str(tmp_path))
    for words, alone in (([], True), (["--multiWorker=off"], False)):
        jobdir = tmp_path / ("auto" if alone else "off")
        jobdir.mkdir()
        result = run_cli([*INFER, "--dryRun", *words], jobdir, env=env)
        assert result.rc == 0, result.stderr
        assert ("worker 1 of 2: infer runs on the chief alone" in result.stdout) == alone, result.stdout
        assert (jobdir / "jobReport.json").exists() != alone
    plan = json.loads((tmp_path / "off" / "jobReport.json").read_text())["plan"]
    assert plan["arguments"]["multiWorker"] == "off"


def test_debug_from_the_spec_puts_the_traceback_in_the_log(tmp_path, run_cli):
    """A valid command line whose input is missing (exit 9): --debug=true, read into the spec (not
    the bare word the argument errors look for), adds the traceback to the log."""
    for debug in (True, False):
        jobdir = tmp_path / str(debug)
        jobdir.mkdir()
        result = run_cli([*INFER, *(["--debug=true"] if debug else [])], jobdir)
        assert result.rc == 9, result.stderr
        assert ("Traceback" in result.stdout) == debug, result.stdout


def test_container_image_is_logged_and_ignored(jobdir, run_cli):
    result = run_cli([*INFER, "--dryRun", "--containerImage=docker://dune/payload:1"], jobdir)
    assert result.rc == 0, result.stderr
    assert "--containerImage docker://dune/payload:1 ignored" in result.stdout


def test_arg_json_values_reach_the_job_and_the_command_line_wins(jobdir, run_cli, read_reports):
    (jobdir / "args.json").write_text(json.dumps({"maxEvents": 7, "skipEvents": 2}))
    result = run_cli([*INFER, "--dryRun", "--argJSON=args.json", "--skipEvents=3"], jobdir)
    assert result.rc == 0, result.stderr
    arguments = read_reports(jobdir)[0]["plan"]["arguments"]
    assert (arguments["maxEvents"], arguments["skipEvents"]) == (7, 3)
