"""Fault scenarios: names that would steer a write out of the job directory.

Output LFNs come from the task template, S3 keys and URL paths from whoever filled the store; none
may make the trf write anywhere but `<job directory>/<name>`. Each scenario also looks where the
file would have landed (the `scenario` checks resolve `<job directory>/<LFN>`, `..` included).
"""
from __future__ import annotations

import pytest

from tests.faults.harness import expect_failure

HOSTILE_LFNS = {
    "dotdot": "../escape.h5",
    "absolute": "{outside}/absolute.h5",
    "division-slash": "pred\u2215escape.h5",         # looks like pred/escape.h5
    "fullwidth-dots": "\uff0e\uff0e\uff0fescape.h5",   # looks like ../escape.h5
    "zero-width": "pred\u200b.h5",
    "newline": "pred.h5\n",
}


@pytest.mark.parametrize("lfn", HOSTILE_LFNS.values(), ids=HOSTILE_LFNS.keys())
def test_hostile_output_lfn_is_refused_before_any_work(trf, inputs, tmp_path, lfn):
    outside = tmp_path / "outside"
    outside.mkdir()
    lfn = lfn.format(outside=outside)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", f"--outputPredFile={lfn}")

    report = expect_failure(run, 7, acronym="TRF_ARG_ERROR",
                            mentions=("--outputPredFile=", "not a valid output"))
    assert report["executor"] == [] and list(outside.iterdir()) == []
    assert not (tmp_path / "escape.h5").exists()


HOSTILE_KEYS = {
    "dotdot": "../escape.h5",
    "absolute": "/etc/escape.h5",
    "division-slash": "run\u2215..\u2215escape.h5",
    "fullwidth-solidus": "run\uff0f..\uff0fescape.h5",
    "backslash": "run\\..\\escape.h5",
}


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
def test_hostile_s3_key_is_refused(trf, inputs, s3, jobdir, key):
    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile=s3://{s3.bucket}/{key}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", env=s3.env)

    expect_failure(run, 9, cause="hostile-name", mentions=("(s3): hostile-name", "refusing to write it"))
    assert not (jobdir.parent / "escape.h5").exists() and not (jobdir / "escape.h5").exists()


def test_hostile_key_found_by_a_glob_in_the_store_is_refused(trf, inputs, s3, scenario, jobdir):
    # the store itself holds a key a look-alike slash makes hostile; the task only said *.h5
    s3.put("run/ev.h5", inputs.events.read_bytes())
    s3.put("run/x\u2215..\u2215escape.h5", inputs.events.read_bytes())
    scenario.s3_input(s3.client, s3.bucket, "run/ev.h5")

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile=s3://{s3.bucket}/run/*.h5",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", env=s3.env)

    expect_failure(run, 9, cause="hostile-name", mentions=("hostile-name", "non-ASCII"))
    assert not (jobdir / "ev.h5").exists()           # refused before anything was fetched


def test_encoded_traversal_in_an_https_path_is_refused(trf, inputs, https, jobdir):
    https.add("/data/ev.h5", inputs.events.read_bytes(), token=trf.scenario.secrets.bearer)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={https.url('/data/..%2Fescape.h5')}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5")

    expect_failure(run, 9, cause="hostile-name", mentions=("(https): hostile-name",))
    assert https.records == []                        # refused before any request
