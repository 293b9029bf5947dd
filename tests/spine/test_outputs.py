"""Outputs: written under temporary names, committed to <jobdir>/<LFN> without clobbering, else removed."""
from __future__ import annotations

import os
import threading
import uuid
import zlib

import pytest

from wrapper import exitcodes as ec
from wrapper.errors import OutputFileError
from wrapper.report.outputs import OutputPlan
from wrapper.staging.verify import CHUNK, adler32_of

LFNS = {"outputPredFile": "pred.000042.h5", "outputModelFile": "model.v2.keras",
        "outputMetricsFile": "metrics.json"}


def plan_in(path, lfns=LFNS) -> OutputPlan:
    plan = OutputPlan(path, lfns)
    plan.check()
    return plan


def failure(call) -> OutputFileError:
    with pytest.raises(OutputFileError) as caught:
        call()
    assert caught.value.exit_code == ec.OUTPUT_FILE_ERROR == 11
    return caught.value


def test_temp_names_keep_the_suffix_and_stay_hidden_in_the_job_directory(tmp_path):
    plan = plan_in(tmp_path)
    temps = {name: plan.temp_path(name) for name in LFNS}
    for name, temp in temps.items():
        assert temp.parent == tmp_path and temp.name.startswith(".")
        assert temp.name.endswith(LFNS[name]) and temp.suffix == os.path.splitext(LFNS[name])[1]
        assert not temp.exists() and temp.name != LFNS[name]
    assert len(set(temps.values())) == len(LFNS)
    assert plan.temp_path("outputPredFile") == temps["outputPredFile"]  # stable
    assert plan.pending() == temps


def test_commit_gives_the_final_name(tmp_path):
    plan = plan_in(tmp_path)
    data = os.urandom(5000)
    plan.temp_path("outputPredFile").write_bytes(data)
    out = plan.commit("outputPredFile", nentries=12)
    final = tmp_path / "pred.000042.h5"
    assert out.path == final and final.read_bytes() == data
    assert not plan.temp_path("outputModelFile").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.000042.h5"]
    assert (out.arg_name, out.file_size, out.nentries) == ("outputPredFile", 5000, 12)
    assert out.adler32 == f"{zlib.adler32(data):08x}"
    assert str(uuid.UUID(out.file_guid)).upper() == out.file_guid
    assert out.to_report() == {"name": "pred.000042.h5", "file_guid": out.file_guid, "file_size": 5000,
                               "checksum": "ad:" + out.adler32, "adler32": out.adler32, "nentries": 12}
    assert "outputPredFile" not in plan.pending()


def test_commit_never_clobbers_a_file_that_appeared_meanwhile(tmp_path):
    plan = plan_in(tmp_path)
    plan.temp_path("outputPredFile").write_bytes(b"ours")
    (tmp_path / "pred.000042.h5").write_bytes(b"someone else's")
    err = failure(lambda: plan.commit("outputPredFile", 1))
    assert err.cause == "exists" and "pred.000042.h5" in err.message
    assert (tmp_path / "pred.000042.h5").read_bytes() == b"someone else's"
    assert plan.discard() == ["pred.000042.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.000042.h5"]


def test_empty_output_is_rejected(tmp_path):
    plan = plan_in(tmp_path)
    plan.temp_path("outputMetricsFile").touch()
    err = failure(lambda: plan.commit("outputMetricsFile", 0))
    assert err.cause == "empty" and "metrics.json" in err.message
    assert not (tmp_path / "metrics.json").exists()


def test_output_the_payload_never_wrote(tmp_path):
    plan = plan_in(tmp_path)
    err = failure(lambda: plan.commit("outputModelFile", 0))
    assert err.cause == "missing" and "--outputModelFile" in err.message
    plan.temp_path("outputModelFile")
    assert failure(lambda: plan.commit("outputModelFile", 0)).cause == "missing"


def test_discard_removes_files_side_files_and_directories(tmp_path):
    plan = plan_in(tmp_path)
    plan.temp_path("outputPredFile").write_bytes(b"half")
    side = plan.temp_path("outputPredFile").with_name(plan.temp_path("outputPredFile").name + ".lock")
    side.write_bytes(b"")
    model_dir = plan.temp_path("outputModelFile")
    (model_dir / "variables").mkdir(parents=True)
    (model_dir / "variables" / "data").write_bytes(b"w")
    plan.temp_path("outputMetricsFile")  # planned but never written
    (tmp_path / "unrelated.txt").write_text("keep")
    assert sorted(plan.discard()) == sorted(LFNS.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.txt"]
    assert plan.pending() == {} and plan.discard() == []


def test_discard_keeps_committed_outputs(tmp_path):
    plan = plan_in(tmp_path)
    plan.temp_path("outputPredFile").write_bytes(b"done")
    plan.commit("outputPredFile", 1)
    plan.temp_path("outputMetricsFile").write_bytes(b"{")
    assert plan.discard() == ["metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.000042.h5"]


def test_concurrent_discards_do_not_trip_over_each_other(tmp_path):
    lfns = {f"output{i}File": f"out{i}.h5" for i in range(60)}
    for _ in range(20):
        plan = OutputPlan(tmp_path, lfns)
        for name in lfns:
            plan.temp_path(name).write_bytes(b"x")
        errors, start = [], threading.Barrier(2)

        def discard():
            start.wait()
            try:
                plan.discard()
            except Exception as err:  # the test's subject: any exception is a failure
                errors.append(err)

        threads = [threading.Thread(target=discard) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "symlink", "dangling symlink", "directory"])
def test_existing_final_output_fails_before_any_work(tmp_path, kind):
    final = tmp_path / "metrics.json"
    if kind == "file":
        final.write_text("old")
    elif kind == "directory":
        final.mkdir()
    else:
        target = tmp_path / ("elsewhere" if kind == "symlink" else "absent")
        if kind == "symlink":
            target.write_text("x")
        final.symlink_to(target)
    err = failure(lambda: OutputPlan(tmp_path, LFNS).check())
    assert err.cause == "exists" and "metrics.json" in err.message and "--outputMetricsFile" in err.message
    # left as it was: the link (dangling or not) still a link, the file and the directory still there
    assert final.is_symlink() == kind.endswith("symlink")
    assert final.exists() == (kind != "dangling symlink")


def test_unwritable_job_directory_fails_the_check(readonly_jobdir):
    err = failure(lambda: OutputPlan(readonly_jobdir, LFNS).check())
    assert err.cause == "permission" and str(readonly_jobdir) in err.message


def test_no_outputs_no_check(readonly_jobdir):
    OutputPlan(readonly_jobdir, {}).check()


def test_the_longest_valid_lfn_can_be_written(tmp_path):
    lfns = {"outputPredFile": "p" * 248 + ".h5", "outputPlotFile": "q" * 247 + ".png"}
    assert all(len(lfn) == 251 for lfn in lfns.values())
    plan = plan_in(tmp_path, lfns)
    for name, lfn in lfns.items():
        temp = plan.temp_path(name)
        assert len(temp.name) <= 255 and temp.name.endswith(lfn[-40:])
        temp.write_bytes(b"data")
        assert plan.commit(name, 1).path.name == lfn
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(lfns.values())


def test_adler32_over_several_chunks(tmp_path):
    data = os.urandom(CHUNK + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert adler32_of(path) == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    (tmp_path / "one.bin").write_bytes(b"a")
    assert adler32_of(tmp_path / "one.bin") == "00620062"


# --- through the CLI ----------------------------------------------------------------------------------

def test_cli_existing_output_is_exit_11_before_staging(jobdir, run_cli, assert_failed_with):
    (jobdir / "pred.000042.h5").write_bytes(b"results of an earlier attempt")
    result = run_cli(["--mode=infer", "--inputEventsFile=does-not-exist.h5", "--modelFile=m.keras",
                      "--outputPredFile=pred.000042.h5"], jobdir)
    assert result.rc == 11, result.stderr
    report = assert_failed_with(jobdir, 11)
    assert "pred.000042.h5" in report["exitMsg"] and "already exists" in report["exitMsg"]
    assert (jobdir / "pred.000042.h5").read_bytes() == b"results of an earlier attempt"
    assert report["executor"] == []  # no step started: the input was never looked at
    assert not result.frameworks


def test_cli_dry_run_also_checks_outputs(jobdir, run_cli, assert_failed_with):
    (jobdir / "p.h5").write_text("x")
    result = run_cli(["--mode=infer", "--inputEventsFile=e.h5", "--modelFile=m", "--outputPredFile=p.h5",
                      "--dryRun"], jobdir)
    assert result.rc == 11
    assert_failed_with(jobdir, 11)


@pytest.mark.parametrize("args", [["--mode=infer", "--inputEventsFile=e.h5", "--modelFile=m",
                                   "--outputPredFile=p.h5"], ["--bogus=1"]])
def test_cli_unwritable_job_directory(readonly_jobdir, run_cli, args):
    result = run_cli(args, readonly_jobdir)
    expected = 11 if "--bogus=1" not in args else 7
    assert result.rc == expected
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert any("cannot write" in line and "jobReport.json" in line
               and ("Read-only" in line or "Permission" in line) for line in lines)
    assert lines[0].startswith("dune-payload: error:") and len(lines) <= 2
    assert list(readonly_jobdir.iterdir()) == []
