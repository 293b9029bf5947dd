"""The harness's own parts, without running a pilot: safety checks, site data, job definitions."""
from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from scripts.pilot_harness import jobdef, launcher, layout, pilots, run, site

ROOT = Path(run.__file__).resolve().parents[2]


def _library_cfg() -> Path:
    import pilot.util.config as pilot_config

    return Path(pilot_config.__file__).with_name("default.cfg")


def test_sandbox_refuses_to_run_outside_its_namespace(tmp_path):
    paths = layout.RunPaths(tmp_path)
    paths.site.mkdir()
    paths.settings.write_text(json.dumps({"trf_name": "x", "timeout_s": 5, "pilot_options": []}))
    result = subprocess.run([sys.executable, "-m", "scripts.pilot_harness.sandbox", str(tmp_path)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "refusing to run the pilot: not isolated" in result.stderr
    assert not paths.pilot_stdout.exists() and not paths.job_data.exists()


def test_pilot_configuration_names_no_host_but_loopback():
    text = site.loopback_config(_library_cfg(), run.PILOT_SETTINGS)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    hosts = re.compile(r"://([^/:;\s]+)")
    assert "pandaserver.cern.ch" in hosts.findall(_library_cfg().read_text())
    assert set(hosts.findall(text)) == {"127.0.0.1"}
    assert parser.get("Message_broker", "url") == "127.0.0.1"
    assert parser.get("Information", "queues_url").startswith("https://127.0.0.1:9/")
    assert parser.get("Pilot", "checks") == "space,last_heartbeat,threads"
    site.check_loopback_only(parser)


def test_loopback_check_names_a_setting_that_leaves_the_machine():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string("[Pilot]\nrtlogging: logstash;http://127.0.0.1:9\n"
                       "[Rucio]\nhost: https://rucio.example.org:443\n[Message_broker]\nurl: 127.0.0.1\n")
    with pytest.raises(ValueError, match=r"\[Rucio\] host names host rucio.example.org"):
        site.check_loopback_only(parser)


def test_queue_data_uses_mv_for_every_transfer_activity():
    data = site.queue_data("Q", params={"job_maxwalltime": True})
    assert data["copytools"] == {"mv": {"setup": ""}}
    assert set(data["acopytools"]) == {"pr", "pw", "pl", "read_lan", "write_lan"}
    assert all(tools == ["mv"] for tools in data["acopytools"].values())
    assert (data["state"], data["nickname"], data["params"]) == ("ACTIVE", "Q", {"job_maxwalltime": True})


def test_job_inputs_get_size_and_adler32_of_their_replicas(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"abc")
    job = {"PandaID": "1", "transformation": "t", "jobPars": "", "inFiles": "a.h5,b.h5",
           "GUID": "G-A,G-B", "fsize": "0,7", "checksum": "ad:00000000,ad:12345678"}
    filled = jobdef.with_inputs(job, [tmp_path / "a.h5"])
    assert filled["fsize"] == "3,7"
    assert filled["checksum"] == f"ad:{zlib.adler32(b'abc'):08x},ad:12345678" == "ad:024d0127,ad:12345678"
    assert filled["GUID"] == "G-A,G-B"


def test_job_inputs_must_be_named_in_infiles(tmp_path):
    (tmp_path / "c.h5").write_bytes(b"x")
    job = {"PandaID": "1", "transformation": "t", "jobPars": "", "inFiles": "a.h5"}
    with pytest.raises(ValueError, match=r"\['c.h5'\] are not in the job's inFiles"):
        jobdef.with_inputs(job, [tmp_path / "c.h5"])


def test_job_definition_loads_from_panda_job_data_form(tmp_path):
    job = {"PandaID": 7, "transformation": "http://127.0.0.1/trf/x.pyz", "jobPars": "--a=1",
           "outFiles": "out.h5,7.log.tgz", "logFile": "7.log.tgz"}
    path = tmp_path / "pandaJobData.out"
    path.write_text(json.dumps({"7": job}))
    loaded = jobdef.load(path)
    assert loaded["PandaID"] == "7" and jobdef.trf_name(loaded) == "x.pyz"
    assert jobdef.output_lfns(loaded) == ["out.h5"]
    path.write_text(json.dumps({"PandaID": 7, "jobPars": ""}))
    with pytest.raises(ValueError, match="lacks transformation, jobPars"):
        jobdef.load(path)


def test_launcher_builds_the_namespace_the_library_reads():
    args = launcher.parse_args(["-q", "Q", "-z", "--harvester-submit-mode", "PUSH",
                                "--cleanup", "False", "-g", "http://127.0.0.1:1/trf"])
    assert set(launcher.LIBRARY_DEFAULTS) <= set(vars(args))
    assert (args.queue, args.update_server, args.cleanup) == ("Q", False, False)
    assert args.harvester_submitmode == "PUSH" and args.baseurls == "http://127.0.0.1:1/trf"
    with pytest.raises(SystemExit):
        launcher.parse_args(["-q", "Q", "--cleanup", "maybe"])


def test_harness_names_the_package_of_each_missing_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(run.HarnessError) as err:
        run.check_tools()
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2"), ("curl", "curl"), ("ps", "procps")):
        assert f"{tool} (apt-get install {package})" in str(err.value)


def test_missing_pilot3_tarball_names_the_path_and_the_override(monkeypatch, tmp_path):
    monkeypatch.setenv(pilots.TARBALL_ENV, str(tmp_path / "absent.tar.gz"))
    with pytest.raises(run.HarnessError) as err:
        pilots.tarball()
    assert str(tmp_path / "absent.tar.gz") in str(err.value) and "DUNE_PILOT3_TARBALL" in str(err.value)
    monkeypatch.delenv(pilots.TARBALL_ENV)
    assert pilots.tarball() == pilots.ROOT.parent / "shared" / "pilot3" / "pilot3-3.11.5.1.tar.gz"


def test_unpacked_pilot3_runs_its_own_pilot_py_with_a_copied_user_plugin(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("")
    (plugin / "common.py").write_text("MARK = 'copied'\n")
    top = pilots.unpack(tmp_path / "src", plugins={"dunetest": plugin})
    assert (top / "PILOTVERSION").read_text().strip() == "3.11.5.1"
    assert (top / "pilot" / "user" / "dunetest" / "common.py").read_text() == "MARK = 'copied'\n"
    pilot = pilots.pilot3(top, pilot_user="dunetest")
    assert pilot.command == (sys.executable, str(top / "pilot.py")) and pilot.test_id == "pilot-3.11.5.1"
    options = run.pilot_options(layout.RunPaths(tmp_path / "run"), 900, pilot)
    assert options[options.index("--pilot-user") + 1] == "dunetest"
    assert {"-b", "-y", "-k"} <= set(options)
    assert not {"-b", "-y", "-k"} & set(run.pilot_options(layout.RunPaths(tmp_path), 900, pilots.pypi()))
    with pytest.raises(run.HarnessError, match="pilot user plugin 'nosuch' is not in"):
        pilots.pilot3(top, pilot_user="nosuch")


def test_pilot3_configuration_names_no_host_but_loopback(tmp_path):
    pilot = pilots.pilot3(pilots.unpack(tmp_path / "src"))
    text = site.loopback_config(pilot.default_config, run.PILOT_SETTINGS)
    assert "pandaserver.cern.ch" in pilot.default_config.read_text()
    assert set(re.findall(r"://([^/:;\s]+)", text)) == {"127.0.0.1"}


def test_each_pilot_reads_a_payloads_stderr_with_its_own_codes(tmp_path):
    """3.11 fails a payload that exited 0 on a container-runtime message; 3.7.0.36 only one that
    exited non-zero (bar "Singularity/Apptainer is not installed")."""
    pilot3 = pilots.error_codes(pilots.pilot3(pilots.unpack(tmp_path / "src")))
    pypi = pilots.error_codes(pilots.pypi())
    assert pilot3.TRFDOWNLOADFAILURE == pypi.TRFDOWNLOADFAILURE == 1149
    stderr = "FATAL: Failed to create user namespace: operation not allowed\n"
    assert pilot3().resolve_transform_error(0, stderr)[0] == pilot3.SINGULARITYFAILEDUSERNAMESPACE
    assert pypi().resolve_transform_error(0, stderr) == 0
    assert pypi().resolve_transform_error(1, stderr) == pypi.SINGULARITYFAILEDUSERNAMESPACE


def test_run_pilot_local_runs_pilot3_unless_told_otherwise():
    done = subprocess.run([sys.executable, "-m", "scripts.tools.run_pilot_local", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "--pilot-version {3.11.5.1,3.7.0.36}" in done.stdout and "(default: 3.11.5.1)" in done.stdout
