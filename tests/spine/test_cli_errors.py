"""The CLI on bad task definitions: the right exit code, both reports, one line, no framework import."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from wrapper.args.argdefs import ARGS
from wrapper.report.jobreport import CMDLINE_LIMIT

INFER_OK = ["--mode=infer", "--inputEventsFile=ev.[001,002].h5", "--modelFile=model.keras",
            "--outputPredFile=pred.000042.h5"]


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_bogus_argument_in_an_empty_directory(jobdir, run_cli, assert_failed_with):
    result = run_cli(["--bogus=1"], jobdir)
    assert result.rc == 7
    report = assert_failed_with(jobdir, 7)
    assert report["exitAcronym"] == "TRF_ARG_ERROR" and "--bogus" in report["exitMsg"]
    assert report["cmdLine"] == "--bogus=1"
    assert not result.frameworks, f"imported {sorted(result.frameworks)} for an argument error"
    line = one_line(result.stderr)
    assert line.startswith("dune-payload: error:") and "--bogus" in line and "exit 7" in line
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def test_jedi_placeholder_is_reported_and_the_expanded_form_runs(jobdir, tmp_path, run_cli,
                                                                  assert_failed_with):
    result = run_cli(["--mode=infer", "--inputEventsFile=ev.[001,002].h5",
                      "--outputPredFile=pred.${SN}.h5"], jobdir)
    assert result.rc == 7
    report = assert_failed_with(jobdir, 7)
    assert "${SN}" in report["exitMsg"] and "--outputPredFile" in report["exitMsg"]
    assert "task-definition" in report["exitMsg"]
    assert not result.frameworks

    expanded = tmp_path / "expanded"
    expanded.mkdir()
    result = run_cli([*INFER_OK, "--dryRun"], expanded)
    assert result.rc == 0, result.stderr
    assert json.loads((expanded / "jobReport.json").read_text())["exitCode"] == 0


@pytest.mark.parametrize("words,code,needle", [
    (["--mode=train", "--inputEventsFile=e.h5", "--outputModelFile=m.keras", "--epochs=ten"], 4, "--epochs"),
    (["--mode=train", "--inputEventsFile=e.h5", "--outputModelFile=m.keras", "--epochs=0"], 5, "--epochs"),
    (["--mode=train", "--inputEventsFile=e.h5", "--outputModelFile=m.keras", "--lossx=cce"], 7, "--loss"),
    (["--mode=train", "--inputEventsFile=e.h5", "--outputModelFile=../m.keras"], 7, "--outputModelFile"),
    (["--mode=learn", "--inputEventsFile=e.h5"], 16, "--mode"),
    (["--mode=train", "--inputEventsFile=e.h5"], 17, "--outputModelFile"),
    (["--inputEventsFile=e.h5"], 17, "--mode"),
])
def test_each_argument_error_class_through_the_cli(jobdir, run_cli, assert_failed_with, words, code, needle):
    result = run_cli(words, jobdir)
    assert result.rc == code, result.stderr
    report = assert_failed_with(jobdir, code)
    assert needle in report["exitMsg"] and needle in one_line(result.stderr)
    assert not result.frameworks


def test_missing_input_is_exit_9_before_any_framework(jobdir, run_cli, assert_failed_with):
    result = run_cli(INFER_OK, jobdir)
    assert result.rc == 9, result.stderr
    report = assert_failed_with(jobdir, 9)
    assert "ev.001.h5" in report["exitMsg"] and "ev.001.h5" in one_line(result.stderr)
    assert not result.frameworks
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


@pytest.mark.parametrize("words,code,message", [
    (["-x"], 7, "'-x' is not an argument: arguments start with two dashes (--name=value)"),
    (["--"], 7, "a bare '--' is not an argument; remove it"),
    (["-"], 7, "stray word '-': not attached to any argument"),
    ([""], 7, "stray word '': not attached to any argument"),
    (["--mode"], 7, "--mode needs a value: write --mode=VALUE"),
    (["--help=maybe"], 4, "--help='maybe' is not a boolean; use true or false"),
    (["--mode", "infer", "train"], 7, "stray word 'train': not attached to any argument"),
    (["--=1"], 7, "unknown argument --; see --help"),
    (["---mode=infer"], 7, "unknown argument ---mode; did you mean --mode?"),
    (["--mode=infer", "--mode=infer"], 7, "--mode is given more than once; give it once"),
])
def test_usage_errors_never_exit_2(jobdir, run_cli, read_reports, words, code, message):
    """argparse would exit 2 with a usage text (what the pilot reads as a setup time-out, 1378):
    each malformed command line has its own code and says what is wrong."""
    result = run_cli(words, jobdir)
    assert result.rc == code, (result.rc, result.stderr)
    job_report, error_report = read_reports(jobdir)
    assert job_report["exitCode"] == error_report["error_code"] == code
    assert message in error_report["error_diag"] and message in one_line(result.stderr)
    assert "usage:" not in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_the_traceback_in_the_log(jobdir, run_cli):
    result = run_cli(["--bogus=1", "--debug"], jobdir)
    assert result.rc == 7
    assert "Traceback" in result.stdout and "ArgumentError" in result.stdout
    (line,) = result.stderr.strip().splitlines()     # stderr: the one-line error alone
    assert line.startswith("dune-payload: error:")


def test_help_lists_every_argument_without_a_framework(jobdir, run_cli):
    result = run_cli(["--help"], jobdir)
    assert result.rc == 0 and result.stderr == ""
    for arg in ARGS:
        assert f"--{arg.name}" in result.stdout, arg.name
    assert "exit codes:" in result.stdout and "TRF_ARG_ERROR" in result.stdout
    assert not result.frameworks
    assert list(jobdir.iterdir()) == []  # no job ran, so no job report


@pytest.mark.parametrize("words", [["--mode=train", "--help", "--epochs=3"], ["--mode=learn", "-h"],
                                   ["-h", "stray"]])
def test_help_wins_over_other_arguments_even_bad_ones(jobdir, run_cli, words):
    result = run_cli(words, jobdir)
    assert result.rc == 0 and "--inputEventsFile" in result.stdout and list(jobdir.iterdir()) == []


@pytest.mark.parametrize("extra", [["--help"], [*INFER_OK, "--dryRun"]])
def test_a_reader_that_stops_early_is_not_an_error(jobdir, cli_env, extra):
    # `dune-payload --help | head -1`: the pipe closes before the text is written
    proc = subprocess.Popen([sys.executable, "-m", "wrapper", *extra], cwd=jobdir, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_dry_run_prints_the_plan_without_a_framework(jobdir, run_cli, read_reports):
    result = run_cli([*INFER_OK, "--dryRun", "--maxEvents=10"], jobdir)
    assert result.rc == 0, result.stderr
    assert not result.frameworks
    plan, _ = json.JSONDecoder().raw_decode(result.stdout)
    assert plan["mode"] == "infer" and plan["model"] == "model.keras"
    assert [i["uri"] for i in plan["inputs"]] == ["ev.001.h5", "ev.002.h5"]
    assert plan["outputs"] == {"outputPredFile": str(jobdir / "pred.000042.h5")}
    assert plan["arguments"]["maxEvents"] == 10
    report, error = read_reports(jobdir)
    assert report["exitCode"] == 0 and error is None and report["plan"] == plan
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json"]


def test_base64_job_parameters_through_the_cli(jobdir, run_cli, read_reports):
    jobpars = " ".join([*INFER_OK, "--dryRun"])
    result = run_cli([base64.b64encode(jobpars.encode()).decode()], jobdir)
    assert result.rc == 0, result.stderr
    report, _ = read_reports(jobdir)
    assert [i["uri"] for i in report["plan"]["inputs"]] == ["ev.001.h5", "ev.002.h5"]


def test_enormous_argument_string_through_the_cli(jobdir, run_cli, assert_failed_with):
    # Linux limits one word to 128 KiB, so the string comes as several list words
    words = [",".join(f"ev.{w:02d}.{i:06d}.h5" for i in range(7000)) for w in range(11)]
    assert sum(map(len, words)) > 1 << 20
    result = run_cli(["--mode=infer", "--modelFile=m", "--outputPredFile=p.h5", "--inputEventsFile",
                      *words], jobdir)
    assert result.rc == 7
    report = assert_failed_with(jobdir, 7)
    assert "--argJSON" in report["exitMsg"]
    assert len(report["cmdLine"]) < CMDLINE_LIMIT + 100
    assert len(one_line(result.stderr)) < 400
    assert (jobdir / "jobReport.json").stat().st_size < 2 * CMDLINE_LIMIT


def test_secrets_never_reach_reports_or_output(jobdir, run_cli, cli_env, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-3f9c1b7e5a\n")
    env = cli_env(AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  BEARER_TOKEN_FILE=str(token))
    result = run_cli(["--mode=https://alice:hunter2@127.0.0.1:8443/x",
                      "--inputEventsFile=s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
                      "@127.0.0.1/b/k",
                      "--modelFile=tok-3f9c1b7e5a"], jobdir, env=env)
    assert result.rc == 16
    texts = [result.stdout, result.stderr] + [p.read_text() for p in jobdir.iterdir()]
    for secret in ("hunter2", "wJalrXUtnFEMI", "tok-3f9c1b7e5a"):
        assert not any(secret in text for text in texts), secret
    assert "***" in json.loads((jobdir / "jobReport.json").read_text())["exitMsg"]


@pytest.mark.parametrize("name", ["--\x1e", "--a\u2028b", "--x\ny"])
def test_an_argument_with_line_breaking_characters_still_gives_one_line(jobdir, run_cli, read_reports,
                                                                         name):
    result = run_cli([name], jobdir)
    assert result.rc == 7
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert len(read_reports(jobdir)[0]["exitMsg"].splitlines()) == 1
