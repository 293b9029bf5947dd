"""scripts/jedi_task.py: task parameters, their expansion into jobPars the trf accepts, submission."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wrapper import exitcodes as ec
from wrapper.checkpoints import resolve_prefix
from wrapper.spec import parse_job_args

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import jedi_task  # noqa: E402

INFER = ["infer", "--dataset", "dune:mc.pdsp.events.v1", "--output-dataset", "user.jdoe.dune.pred.v1/",
         "--model-file", "dune.model.v3.keras", "--trf-url", "https://dune.example.org/trf/dune-payload.pyz",
         "--image", "docker://registry.example.org/dune/payload:cuda", "--files-per-job", "3"]
TRAIN = ["train", "--dataset", "dune:mc.pdsp.train.v1", "--output-dataset", "user.jdoe.dune.train.v1/",
         "--trf-url", "https://dune.example.org/trf/dune-payload.pyz", "--image", "docker://r/dune:cuda",
         "--checkpoint-prefix", "s3://ckpt/dune/task-{taskid}/", "--epochs", "20", "--model-config", "small"]


def run(argv, capsys):
    code = jedi_task.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_the_task_parameters(capsys):
    code, out, _ = run(INFER + ["--gpu-memory-mb", "16000", "--base-platform", "el9"], capsys)
    assert code == 0
    params = json.loads(out)
    assert params["taskName"] == "user.jdoe.dune.pred.v1/" and params["vo"] == "dune"
    assert params["architecture"] == "@el9#x86_64&nvidia:vram>=16000"
    assert params["transPath"] == "https://dune.example.org/trf/dune-payload.pyz"
    assert params["container_name"] == "docker://registry.example.org/dune/payload:cuda"
    assert params["nFilesPerJob"] == 3 and params["dsForIN"] == "dune:mc.pdsp.events.v1"
    inputs = [i for i in params["jobParameters"] if i.get("param_type") == "input"]
    assert inputs == [{"type": "template", "param_type": "input", "value": "--inputEventsFile=${IN/L}",
                       "dataset": "dune:mc.pdsp.events.v1", "expand": True, "exclude": jedi_task.LOG_EXCLUDE}]
    outputs = [i for i in params["jobParameters"] if i.get("param_type") == "output"]
    assert [o["value"] for o in outputs] == ["--outputPredFile=user.jdoe.dune.pred.v1.$JEDITASKID._${SN/P}.pred.h5"]
    assert params["log"]["value"] == "user.jdoe.dune.pred.v1.log.$JEDITASKID.${SN}.log.tgz"


def test_job_template_is_what_jedi_builds(capsys):
    params = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(INFER)))
    template = jedi_task.job_template(params)
    # never first: JEDI gives the first item no leading space and the pilot strips only after one
    assert template.startswith("--mode=infer --containerImage docker://registry.example.org/dune/payload:cuda "
                               "--inputEventsFile=${IN/L} ")
    assert "--outputPredFile=${OUTPUT0}" in template and "$JEDITASKID" not in template


def test_expand_sample_gives_jobpars_our_parser_accepts(capsys):
    code, out, _ = run(INFER + ["--expand-sample", "7"], capsys)
    assert code == 0
    jobs = json.loads(out)
    assert [len(j["files"]) for j in jobs] == [3, 3, 1]
    for serial, job in enumerate(jobs, start=1):
        spec = parse_job_args(job["trfWords"])                     # what the trf will do
        # the pilot strips it (tests/jedi); if one did not, the trf takes and ignores it
        assert spec.container_image == "docker://registry.example.org/dune/payload:cuda"
        assert spec.mode == "infer" and list(spec.input_events) == job["files"]
        assert spec.output_pred == f"user.jdoe.dune.pred.v1.4242._{serial:06d}.pred.h5"
        assert spec.model_file == "dune.model.v3.keras" and spec.require_gpu
    assert len({j["outputs"]["outputPredFile"] for j in jobs}) == 3


def test_expand_sample_with_given_file_names(capsys):
    files = ["ev.000101.h5", "ev.000102.h5", "ev.000103.h5", "ev.000104.h5"]
    code, out, _ = run(INFER + ["--sample-files", *files], capsys)
    assert code == 0
    assert [j["files"] for j in json.loads(out)] == [files[:3], files[3:]]


def test_training_task_resumes_through_the_task_keyed_prefix(capsys):
    code, out, _ = run(TRAIN + ["--expand-sample", "4", "--gpu", "none", "--cpu-arch", "ppc64le"], capsys)
    assert code == 0
    (job,) = json.loads(out)
    spec = parse_job_args(job["trfWords"])
    assert spec.mode == "train" and spec.epochs == 20 and spec.model_config == "small"
    assert spec.output_model.endswith("._000001.model.keras") and spec.output_metrics.endswith(".metrics.json")
    assert not spec.require_gpu
    assert resolve_prefix(spec.checkpoint_prefix, {"PanDA_TaskID": "555"}) == "s3://ckpt/dune/task-555/"
    params = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(TRAIN)))
    assert params["maxAttempt"] == 5 and params["processingType"] == "dune-ml-train"


@pytest.mark.parametrize("extra, code, words", [
    (["--trf-arg=--precision=fp8"], ec.ARG_CHOICES_FAIL, "--precision='fp8'"),
    (["--trf-arg=--predictionFormat=classes"], ec.ARG_ERROR, "--predictionFormat is given more than once"),
    (["--trf-arg=--noSuchOption=1"], ec.ARG_ERROR, "unknown argument --noSuchOption"),
    (["--trf-arg=--maxEvents=${MAXEVENTS}x"], ec.ARG_CONV_FAIL, "--maxEvents"),
    (["--trf-arg=--skipEvents=${SKIPEVENTZ}"], ec.ARG_ERROR, "placeholder ${SKIPEVENTZ}"),
])
def test_a_template_the_trf_rejects_fails_with_the_trf_exit_code(capsys, extra, code, words):
    status, out, err = run(INFER + extra, capsys)
    assert status == code and out == ""
    assert words in err and "the trf rejects the job parameters" in err and "jobPars:" in err


@pytest.mark.parametrize("change, words", [
    (["--trf-url", "ftp://x/trf"], "transPath"),
    (["--output-dataset", "user.jdoe/bad name/"], "output dataset"),
    (["--files-per-job", "0"], "nFilesPerJob"),
])
def test_invalid_task_parameters(capsys, change, words):
    argv = list(INFER)
    for i in range(0, len(change), 2):
        if change[i] in argv:
            argv[argv.index(change[i]) + 1] = change[i + 1]
    status, _, err = run(argv, capsys)
    assert status == 1 and words in err


def test_infer_needs_a_model(capsys):
    argv = [w for w in INFER if w not in ("--model-file", "dune.model.v3.keras")]
    status, _, err = run(argv, capsys)
    assert status == 1 and "--model-file" in err


class PandaStandIn(BaseHTTPRequestHandler):
    """Answers panda-client's task/submit as a PanDA server does (no PanDA server runs here)."""

    received: list = []
    answer: dict = {}

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        payload = json.dumps(type(self).answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def panda_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PandaStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    PandaStandIn.received = []
    yield server
    server.shutdown()
    server.server_close()


def submit(server, answer, tmp_path):
    PandaStandIn.answer = answer
    url = f"http://127.0.0.1:{server.server_port}/server/panda"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANDA", "X509", "OIDC"))}
    env.update(PANDA_URL=url, PANDA_URL_SSL=url, PANDACACHE_URL=url, PANDA_BEHIND_REAL_LB="1",
               PANDA_CONFIG_ROOT=str(tmp_path), PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "jedi_task.py"), *INFER, "--submit"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_submit_sends_the_task_with_panda_client(panda_server, tmp_path):
    done = submit(panda_server, {"success": True, "message": "succeeded. new jediTaskID=777", "data": None},
                  tmp_path)
    assert done.returncode == 0, done.stderr
    assert "jediTaskID=777" in done.stdout
    (path, body), = PandaStandIn.received
    assert path == "/api/v1/task/submit"
    expected = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(INFER)))
    assert body["task_parameters"] == expected


def test_a_refused_submission_says_why(panda_server, tmp_path):
    done = submit(panda_server, {"success": False, "message": "duplicated task name", "data": 2}, tmp_path)
    assert done.returncode == 1
    assert "refused the task (code 2): duplicated task name" in done.stderr
