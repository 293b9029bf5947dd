"""Fault scenarios: job parameters that are huge, or that a task template left unfinished.

The job report goes to the PanDA server as metadata, so a huge argument string must be cut, not
copied, wherever it would appear in the report.
"""
from __future__ import annotations

import json

from tests.faults.harness import expect_failure

REPORT_BOUND = 256 << 10      # a failed job's report stays far below what the server stores


def test_an_enormous_argument_string_is_refused_with_a_bounded_report(trf, inputs, jobdir):
    # 1.4 MB of job parameters in 12 words (each below the kernel's 128 KiB per-argument limit)
    word = "--inputEventsFile=" + ",".join(f"ev.{i:06d}.h5" for i in range(9_000))
    run = trf("--mode=infer", f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", *[word] * 12)

    report = expect_failure(run, 7, acronym="TRF_ARG_ERROR", mentions=("characters long", "--argJSON"))
    assert (jobdir / "jobReport.json").stat().st_size < REPORT_BOUND
    assert report["cmdLine"].endswith("characters in all)") and len(run.stderr) < 4096


def test_a_long_but_legal_input_list_keeps_the_report_bounded(trf, inputs, jobdir):
    names = [f"ev.{i:06d}.h5" for i in range(9_000)]
    run = trf("--mode=infer", f"--modelFile={inputs.model}", "--outputPredFile=pred.h5",
              f"--inputEventsFile={','.join(names)}")

    report = expect_failure(run, 9, cause="not-found", mentions=("ev.000000.h5",))
    assert (jobdir / "jobReport.json").stat().st_size < REPORT_BOUND
    listed = report["spec"]["inputEventsFile"]
    assert listed[:3] == names[:3] and listed[-1] == "... (9000 in all)"
    assert len(report["exitMsg"]) <= 256


def test_a_compact_list_expands_to_more_names_than_the_limit_allows(trf, inputs, jobdir):
    # a JEDI compact list is short on the command line and long once expanded
    items = ",".join(f"{i:05d}" for i in range(20_000))
    run = trf("--mode=infer", f"--modelFile={inputs.model}", "--outputPredFile=pred.h5",
              f"--inputEventsFile=ev.[{items}].h5")

    report = expect_failure(run, 9, cause="not-found", mentions=("ev.00000.h5",))
    assert json.dumps(report["spec"]).count("ev.") <= 101
    assert (jobdir / "jobReport.json").stat().st_size < REPORT_BOUND


def test_an_unexpanded_jedi_placeholder_names_the_task_template(trf, inputs):
    run = trf("--mode=infer", "--inputEventsFile=${IN/L}", f"--modelFile={inputs.model}",
              "--outputPredFile=pred.${SN}.h5")

    report = expect_failure(run, 7, mentions=("${IN/L}", "job parameter template"))
    assert report["executor"] == []
