"""Secrets: credentials in the environment and in the arguments never reach a log, report or message.

Every scenario of the suite already runs with the suite's AWS keys, BEARER_TOKEN, BEARER_TOKEN_FILE
and X509_USER_PROXY set and is scanned for them, as is, URL-encoded and in base64 (the `scenario`
fixture). The scenarios here put credentials where a task definition could: in URLs
(user:password@, presigned signatures), in the S3 endpoint, behind --debug; and tokens where a token
agent leaves them: the token file alone, $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid> (in a private
/tmp). The in-process tests scan the exception texts of the failures that talk to the store with a
wrong key.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.faults.harness import DATA, INFRASTRUCTURE, LEDGER, REFUSAL, Ledger, Scenario, TrfRun, expect_failure
from tests.outputs_on_disk import adler32_hex
from tests.support import seaweed
from tests.support.private_tmp import private_tmp


def _signed(url: str, secrets) -> str:
    """`url` presigned the way S3 does it, with the suite's access key and a signature."""
    return (f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={secrets.access_key}%2F20260101"
            f"&X-Amz-Signature={secrets.url_password}")


def test_credentials_in_the_arguments_stay_out_of_the_plan_and_the_report(trf, inputs, secrets, jobdir,
                                                                          scenario):
    scenario.control()    # a dry run: the secrets are in the arguments, no fault is injected
    (port,) = seaweed.free_ports(1)
    userinfo = f"https://reader:{secrets.url_password}@127.0.0.1:{port}/data/ev.h5"
    signed = _signed(f"https://127.0.0.1:{port}/b.h5", secrets)
    run = trf("--mode=infer", f"--inputEventsFile={userinfo},{signed}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", "--dryRun",
              f"--s3Endpoint=http://{secrets.access_key}:{secrets.secret_key}@127.0.0.1:{port}")

    assert run.rc == 0, run.stderr
    plan = json.loads(run.stdout[:run.stdout.rindex("}") + 1])
    assert [i["uri"] for i in plan["inputs"]] == [
        f"https://***@127.0.0.1:{port}/data/ev.h5",
        f"https://127.0.0.1:{port}/b.h5?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Signature=***"]
    assert run.report["spec"]["s3Endpoint"] == f"http://***@127.0.0.1:{port}"


def test_a_signed_https_input_read_with_the_token_file(trf, inputs, https, secrets, jobdir, scenario):
    scenario.control()    # a job meant to succeed
    # no BEARER_TOKEN: the token comes from BEARER_TOKEN_FILE, as a token agent leaves it
    url = https.add(_signed("/data/ev.h5", secrets), inputs.events.read_bytes(), token=secrets.file_token)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={url}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", env={"BEARER_TOKEN": None})

    assert run.rc == 0, run.stderr[-3000:]
    assert https.records and all(r.authorized for r in https.records)
    (entry,) = run.report["files"]["input"][0]["subFiles"]
    assert entry["uri"].endswith("X-Amz-Credential=***&X-Amz-Signature=***") and entry["nentries"] == 4


@pytest.mark.parametrize("place", ["runtime-dir", "tmp"])
def test_a_token_found_by_discovery_alone_is_sent_and_never_written(trf, inputs, https, secrets, tmp_path,
                                                                     tmp_path_factory, scenario, place):
    # No BEARER_TOKEN, no BEARER_TOKEN_FILE: the token is where a token agent leaves it. For /tmp,
    # the trf runs in a /tmp of its own (a private mount namespace); the host's /tmp is not written.
    scenario.control()    # a job meant to succeed: what is tried is where the token comes from
    uid = os.getuid()
    host = Path(f"/tmp/bt_u{uid}")
    host_before = os.path.lexists(host) and os.lstat(host)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    if place == "runtime-dir":
        token, wrap = secrets.runtime_token, ()
        (runtime / f"bt_u{uid}").write_text(token + "\n")
    else:
        token = secrets.tmp_token
        (tmp_path / "agent-token").write_text(token + "\n")
        wrap = private_tmp({f"bt_u{uid}": tmp_path / "agent-token"}, keep=[tmp_path_factory.getbasetemp()])
    url = https.add("/data/ev.h5", inputs.events.read_bytes(), token=token)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={url}", f"--modelFile={inputs.model}",
              "--outputPredFile=pred.h5", wrap=wrap,
              env={"BEARER_TOKEN": None, "BEARER_TOKEN_FILE": None, "XDG_RUNTIME_DIR": str(runtime)})

    assert run.rc == 0, run.stderr[-3000:]
    assert https.records and all(r.authorized for r in https.records), https.records   # the token was used
    assert (os.path.lexists(host) and os.lstat(host)) == host_before


def test_an_s3_endpoint_with_credentials_in_its_url(trf, inputs, s3, secrets):
    endpoint = s3.server.endpoint.replace("http://", f"http://{secrets.access_key}:{secrets.secret_key}@")

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile=s3://{s3.bucket}/absent.h5",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", f"--s3Endpoint={endpoint}")

    # botocore drops the URL's userinfo and signs with the environment's keys (the server's own):
    # the request reaches the server, which answers that the key is not there.
    report = expect_failure(run, 9, cause="not-found",
                            mentions=(f"s3://{s3.bucket}/absent.h5", f"no such key in bucket '{s3.bucket}'"))
    assert report["spec"]["s3Endpoint"] == s3.server.endpoint.replace("http://", "http://***@")


def test_debug_tracebacks_carry_no_secret(trf, inputs, s3, scenario):
    scenario.allow_traceback = True
    uri = s3.put("run/ev.h5", inputs.events.read_bytes())

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={uri}", f"--modelFile={inputs.model}",
              "--outputPredFile=pred.h5", "--debug",
              env={**s3.env, "AWS_SECRET_ACCESS_KEY": scenario.secrets.wrong_secret})

    expect_failure(run, 9, cause="permission", mentions=("HTTP 403",))
    assert "Traceback (most recent call last)" in run.stdout      # --debug did print it, in the log


def test_outputs_uploaded_with_the_suites_keys_are_reported_by_url(trf, inputs, s3, scenario):
    scenario.control()    # a job meant to succeed
    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5",
              f"--outputPrefix=s3://{s3.bucket}/out/", env=s3.env)

    assert run.rc == 0, run.stderr[-3000:]
    (output,) = run.report["files"]["output"]
    assert output["subFiles"][0]["url"] == f"s3://{s3.bucket}/out/pred.h5"
    head = s3.client.head_object(Bucket=s3.bucket, Key="out/pred.h5")
    assert head["ContentLength"] == output["subFiles"][0]["file_size"]
    scenario.s3_input(s3.client, s3.bucket, "out/pred.h5")   # and nothing touches it afterwards


# ---------------------------------------------------------------------------------------------
# Exception texts, in process


@pytest.fixture
def worker_env(monkeypatch, secrets, s3):
    """The suite's credentials in this process's environment, with a wrong secret."""
    for name, value in {**secrets.env(), **s3.env, "AWS_SECRET_ACCESS_KEY": secrets.wrong_secret}.items():
        monkeypatch.setenv(name, value)
    return s3


def _texts_of(err: BaseException) -> list:
    return [str(err), repr(err), getattr(err, "message", ""), getattr(err, "source", ""),
            getattr(err, "extra", "")]


def test_exception_texts_of_store_failures_hold_no_secret(worker_env, secrets, tmp_path):
    from wrapper.checkpoints.resume import restore_latest
    from wrapper.errors import TrfError
    from wrapper.report.jobreport import JobReport
    from wrapper.staging import StagingOptions, publish_outputs, resolve_one

    s3 = worker_env
    options = StagingOptions(workdir=tmp_path, retries=1, backoff_s=0.01)
    (tmp_path / "pred.h5").write_bytes(b"predictions")
    prefix = f"s3://{s3.bucket}/task/"
    failures = []
    for call in (lambda: restore_latest(prefix, tmp_path / "checkpoints", options, "tiny"),
                 lambda: publish_outputs([tmp_path / "pred.h5"], StagingOptions(
                     workdir=tmp_path, retries=1, output_prefix=f"s3://{s3.bucket}/out/")),
                 lambda: resolve_one(f"https://u:{secrets.url_password}@127.0.0.1:9/x.h5", options)):
        with pytest.raises(TrfError) as caught:
            call()
        failures.append(caught.value)
    report = JobReport.begin(["--mode=train", f"--checkpointPrefix={prefix}"], tmp_path)
    for err in failures:
        report.fail(err)
    report.write()

    texts = [t for err in failures for t in _texts_of(err)]
    texts += [p.read_text() for p in sorted(tmp_path.glob("*.json"))]
    leaked = [found for t in texts for found in LEDGER.scan(secrets, "in-process store failures", t)]
    assert not leaked, leaked
    assert [f.cause for f in failures][:2] == ["permission", "permission"]


def test_the_scenario_checks_can_fail(secrets, tmp_path):
    # The checks behind the summary, on a private ledger: a planted secret, a partial file, a file
    # left under its output name and a changed input must each be found and counted.
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    (jobdir / "pred.h5").write_bytes(b"half")
    (jobdir / "ev.h5.part").write_bytes(b"half")
    source = tmp_path / "input.h5"
    source.write_bytes(b"before")
    ledger = Ledger()
    planted = Scenario("planted", secrets, ledger)
    planted.input(source)
    planted.record(TrfRun(("--outputPredFile=pred.h5",), jobdir, 9, "",
                          f"error: token {secrets.bearer}\nTraceback (most recent call last)", None, None))
    source.write_bytes(b"after")

    problems = planted.verify()

    assert len(ledger.leaks) == 1 and "BEARER_TOKEN in planted: stderr" in ledger.leaks[0]
    assert len(ledger.files_lost) == 2 and len(ledger.partial_left) == 1
    assert any("traceback" in p for p in problems) and ledger.texts_scanned >= 4
    assert Path(jobdir / "pred.h5").exists()


def _listed(name: str, size: int, adler32: str) -> dict:
    return {"subFiles": [{"name": name, "file_size": size, "checksum": f"ad:{adler32}", "adler32": adler32}]}


def test_the_outputs_check_and_the_tally_can_fail(secrets, tmp_path):
    # On a private ledger: a successful run whose report says another size, another adler32, an
    # output that is not there, and leaves out an output its arguments name, is four problems, and
    # the run that reports right is none; each scenario is counted under its kind.
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    (jobdir / "pred.h5").write_bytes(b"predictions")
    (jobdir / "metrics.json").write_bytes(b"{}")
    right = [_listed("pred.h5", 11, adler32_hex(jobdir / "pred.h5")),
             _listed("metrics.json", 2, adler32_hex(jobdir / "metrics.json"))]
    wrong = [_listed("pred.h5", 10, adler32_hex(jobdir / "pred.h5")), _listed("metrics.json", 2, "0badc0de"),
             _listed("model.keras", 5, "00000001")]
    names = ("--outputPredFile=pred.h5", "--outputMetricsFile=metrics.json", "--outputPlotFile=loss.png")
    ledger = Ledger()
    good, bad = Scenario("good", secrets, ledger), Scenario("bad", secrets, ledger)
    good.record(TrfRun(names[:2], jobdir, 0, "", "", {"exitCode": 0, "files": {"output": right}}, None))
    bad.record(TrfRun(names, jobdir, 0, "", "", {"exitCode": 0, "files": {"output": wrong}}, None))

    assert good.verify() == []
    problems = " | ".join(bad.verify())
    assert problems.count(" | ") == 3, problems
    for found in ("pred.h5: 11 bytes on disk, report 10", "metrics.json: adler32", "model.keras, not on disk",
                  "lists no output loss.png"):
        assert found in problems, problems
    assert (ledger.successful_runs, ledger.outputs_checked) == (2, 5)

    refused = {"exitCode": 7, "executor": [], "files": {"output": []}}
    staged = {"exitCode": 7, "executor": [{"name": "stage-in"}], "files": {"output": []}}
    for name, declared, report, control, kind in [("refusal", DATA, refused, False, REFUSAL),
                                                  ("after work", DATA, staged, False, DATA),
                                                  ("node", INFRASTRUCTURE, staged, False, INFRASTRUCTURE),
                                                  ("control", DATA, refused, True, None)]:
        scenario = Scenario(name, secrets, ledger)
        scenario.declared_kind = declared
        scenario.record(TrfRun((), jobdir, 7, "", "", report, None))
        if control:
            scenario.control()
        assert scenario.kind() == kind, name
        ledger.count(scenario.kind(), passed=name != "node")
    assert ledger.summary(10)[0] == ("fault suite 2/3 (refused before any work 1/1, infrastructure 0/1, "
                                     "data/model 1/1), controls 1/1, 0 lost, 0 partial, 0 secrets")


@pytest.mark.parametrize("encode,form", [
    (lambda text: quote(text, safe=""), "URL-encoded"), (quote, None), (quote_plus, "URL-encoded"),
    (lambda text: base64.b64encode(text.encode()).decode(), "base64"),
    (lambda text: base64.urlsafe_b64encode(text.encode()).decode(), "base64"),
], ids=["quote-all", "quote", "quote_plus", "base64", "urlsafe-base64"])
def test_the_secrets_scan_finds_encoded_forms(secrets, encode, form):
    # Every secret, encoded inside a longer text that puts it 0, 1 or 2 bytes into a base64 group
    # (5 + offset bytes precede it), is found and named with its form; the proxy's path holds '/',
    # which the URL encodings change. The same text without the secret is clean.
    ledger = Ledger()
    for what, value in secrets.values().items():
        for offset in range(3):
            text = encode("k" * offset + f"key: {value}/+ and more")
            (entry,) = ledger.scan(secrets, "planted", f"log line {text} end")
            assert entry.startswith(what), (entry, what)
            changed = what == "X509_USER_PROXY" or form == "base64"
            assert (f"{form})" in entry) if form and changed else entry == f"{what} in planted", entry
    assert ledger.scan(secrets, "clean", encode("k key: nothing secret/+ and more")) == []
    assert len(ledger.leaks) == 3 * len(secrets.values())


def test_the_strict_checks_can_fail(secrets, s3, tmp_path):
    # On a private ledger: a failed run without jobReport.json, a multipart upload left open and an
    # object left under a failed job's --outputPrefix (on the real SeaweedFS), and a pilot log
    # tarball carrying a secret must each be found and counted.
    import tarfile

    from tests.faults.harness import scan_pilot_run

    jobdir = tmp_path / "job"
    jobdir.mkdir()
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key="out/pred.h5")
    s3.put("out/metrics.json", b"{}")
    pilot = tmp_path / "pilot-run"
    (pilot / "logs").mkdir(parents=True)
    (pilot / "pilot.stdout").write_text(f"export X509_USER_PROXY={secrets.proxy};\n")
    member = tmp_path / "pilotlog.txt"
    member.write_text(f"token {secrets.bearer}\n")
    with tarfile.open(pilot / "logs" / "job.log.tgz", "w:gz") as tar:
        tar.add(member, arcname="pilotlog.txt")
    ledger = Ledger()
    strict = Scenario("strict", secrets, ledger)
    strict.s3_upload_target(s3.client, s3.bucket, "out/")
    strict.record(TrfRun(("--outputPredFile=pred.h5",), jobdir, 9, "", "", None, None))
    assert scan_pilot_run(strict, pilot) == 3

    problems = strict.verify()

    assert any("jobReport.json missing" in p for p in problems)
    assert len(ledger.partial_left) == 2 and ledger.uploads_checked == 1
    assert ledger.leaks == ["BEARER_TOKEN in strict: logs/job.log.tgz:pilotlog.txt"]
    assert ledger.exempt_seen == ["X509_USER_PROXY in strict: pilot.stdout"]
