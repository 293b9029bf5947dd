"""scripts/jedi/task.py: task parameters and their expansion into jobPars the trf accepts.
Submission to a real PanDA server, and what JEDI makes of these tasks, is tests/panda."""
from __future__ import annotations

import json

import pytest

from wrapper import exitcodes as ec
from wrapper.checkpoints.resume import resolve_prefix
from wrapper.args.spec import parse_job_args

from scripts.jedi import task as jedi_task

MODEL_URL = "https://dune.example.org/models/dune.model.v3.keras"
INFER = ["infer", "--dataset", "dune:mc.pdsp.events.v1", "--output-dataset", "user.jdoe.dune.pred.v1/",
         "--model-file", MODEL_URL, "--trf-url", "https://dune.example.org/trf/dune-payload.pyz",
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
        assert spec.model_file == MODEL_URL and spec.require_gpu
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
    assert params["maxAttempt"] == 5 and params["processingType"] == "dune-ml-train-gpu"


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
    argv = [w for w in INFER if w not in ("--model-file", MODEL_URL)]
    status, _, err = run(argv, capsys)
    assert status == 1 and "--model-file or --model-dataset" in err


@pytest.mark.parametrize("option, value", [("--model-file", "dune.model.v3.keras"),
                                           ("--build-manifest", "manifest.json"),
                                           ("--build-manifest", "/home/jdoe/manifest.json")])
def test_a_bare_file_name_is_refused_since_jedi_would_never_stage_it(capsys, option, value):
    argv = [w for w in INFER if w not in ("--model-file", MODEL_URL)] + [option, value]
    status, out, err = run(argv, capsys)
    assert status == 1 and out == ""
    assert f"{value!r} is a bare file name" in err and "the pilot never stages this one" in err
    assert "s3://, https:// or http:// URL" in err


def test_a_packaged_reference_model_needs_no_staging(capsys):
    argv = [w for w in INFER if w not in ("--model-file", MODEL_URL)] + ["--model-file", "reference:small"]
    status, out, _ = run(argv + ["--expand-sample", "1"], capsys)
    assert status == 0
    assert parse_job_args(json.loads(out)[0]["trfWords"]).model_file == "reference:small"


def test_a_model_dataset_is_attached_to_every_job_as_prun_does(capsys):
    argv = [w for w in INFER if w not in ("--model-file", MODEL_URL)] + ["--model-dataset", "dune:dune.models.v3"]
    params = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(argv)))
    (model,) = [i for i in params["jobParameters"] if i.get("dataset") == "dune:dune.models.v3"]
    # prun --secondaryDSs MODEL:1:dune:dune.models.v3 --reusableSecondary MODEL
    assert model == {"type": "template", "param_type": "input", "value": "--modelFile=${MODEL}",
                     "dataset": "dune:dune.models.v3", "expand": True, "nFilesPerJob": 1, "reusable": True}
    assert params["reuseSecOnDemand"] is True
    status, out, _ = run(argv + ["--expand-sample", "4"], capsys)
    assert status == 0
    assert {parse_job_args(j["trfWords"]).model_file for j in json.loads(out)} == {"dune.models.v3._000001.keras"}


def test_inputs_by_url_make_a_pfn_list_task(tmp_path, capsys):
    urls = [f"https://door.dune.example.org/mc/ev.{n:06d}.h5" for n in (3, 1, 2)]
    listing = tmp_path / "pfns.txt"
    listing.write_text("# the campaign's files\n" + "\n".join(urls) + "\n\n")
    argv = [w for w in INFER if w not in ("--dataset", "dune:mc.pdsp.events.v1")] + ["--input-list", str(listing)]
    params = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(argv)))
    # prun --pfnList: no input dataset, the sorted URLs, one ${IN/L} constant
    assert params["noInput"] is True and params["pfnList"] == sorted(urls) and params["nFiles"] == 3
    assert "dsForIN" not in params
    assert {"type": "constant", "value": "--inputEventsFile=${IN/L}"} in params["jobParameters"]
    status, out, _ = run(argv + ["--expand-sample", "3"], capsys)
    assert status == 0
    (job,) = json.loads(out)
    assert list(parse_job_args(job["trfWords"]).input_events) == sorted(urls)


def test_an_input_that_is_no_url_is_refused_in_a_pfn_list_task(capsys):
    argv = [w for w in INFER if w not in ("--dataset", "dune:mc.pdsp.events.v1")] + [
        "--input-url", "https://door.dune.example.org/mc/ev.1.h5", "--input-url", "ev.2.h5"]
    status, _, err = run(argv, capsys)
    assert status == 1 and "reads URLs the trf fetches" in err and "ev.2.h5" in err


def test_gpu_and_cpu_tasks_have_the_processing_types_queues_select_on(capsys):
    gpu = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(INFER)))
    cpu = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(INFER + ["--gpu", "none"])))
    assert gpu["processingType"] == "dune-ml-infer-gpu" in jedi_task.GPU_PROCESSING_TYPES
    assert cpu["processingType"] == "dune-ml-infer" not in jedi_task.GPU_PROCESSING_TYPES


def test_without_an_image_jobs_run_without_a_container(capsys):
    argv = [w for w in INFER if w not in ("--image", "docker://registry.example.org/dune/payload:cuda")]
    params = jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(argv)))
    assert "container_name" not in params
    assert "--containerImage" not in jedi_task.job_template(params)
