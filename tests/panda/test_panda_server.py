"""A DUNE campaign through a real PanDA: what panda-server 1.0.4 and JEDI stored of it.

Every assertion reads the server's own tables (jobs, files, metadata, worker nodes, JEDI's tasks)
or its logs; the trf's files are read only to check that what the server recorded is true of them.
"""
from __future__ import annotations

import json
import zlib

import pytest

from scripts.panda_local import database, queues

TRF_EXIT = {"ok": 0, "input": 9, "sigterm": 143}
PAYLOADEXECUTIONFAILURE, SIGTERM_PILOT_ERROR = 1305, 1201


def adler32(path) -> str:
    value = 1
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def metrics(job: dict) -> dict:
    """jobMetrics as the server stored them: `name=value` words."""
    return dict(word.split("=", 1) for word in (job["jobmetrics"] or "").split())


def staged(campaign, panda_id: int, lfn: str):
    """The file the pilot staged out to the site's storage (the `mv` copytool's destination)."""
    return campaign.workers[panda_id].verdict["run_dir"] + f"/pilot-home/{lfn}"


def test_jedi_made_the_jobs_each_task_asked_for(campaign):
    tasks = {t["jeditaskid"]: t for t in campaign.stack.db.query(
        "SELECT jeditaskid, status, processingtype, vo, prodsourcelabel, username FROM doma_panda.jedi_tasks")}
    for name, task_id in campaign.task_ids.items():
        assert tasks[task_id]["vo"] == "dune" and tasks[task_id]["username"] == "Jane Doe"
    assert tasks[campaign.task_ids["infer_gpu"]]["processingtype"] == "dune-ml-infer-gpu"
    assert tasks[campaign.task_ids["train_cpu"]]["processingtype"] == "dune-ml-train"
    assert len(campaign.jobs("infer_gpu")) == 2
    assert [len(campaign.jobs(name)) for name in ("train_cpu", "bad_input", "sigterm")] == [1, 1, 1]


def test_gpu_jobs_went_only_to_the_gpu_queue_and_cpu_jobs_only_to_the_cpu_queue(campaign):
    assert {job["computingsite"] for job in campaign.jobs("infer_gpu")} == {queues.GPU_QUEUE}
    for name in ("train_cpu", "bad_input", "sigterm"):
        assert {job["computingsite"] for job in campaign.jobs(name)} == {queues.CPU_QUEUE}
    # both queues were candidates; the queues' processing-type rules, not chance, decided
    log = campaign.stack.log("GenJobBroker").read_text()
    gpu_task, cpu_task = campaign.task_ids["infer_gpu"], campaign.task_ids["train_cpu"]
    assert f"<jediTaskID={gpu_task}>   skip {queues.CPU_QUEUE} due to processing type in excluded list" in log
    assert f"<jediTaskID={cpu_task}>   skip {queues.GPU_QUEUE} due to processing type not in allowed list" in log


def test_inference_jobs_finished_with_our_exit_code_events_and_metrics(campaign):
    for job in campaign.jobs("infer_gpu"):
        assert job["jobstatus"] == "finished", job["piloterrordiag"]
        assert (int(job["transexitcode"]), job["exeerrorcode"], job["piloterrorcode"]) == (0, 0, 0)
        assert job["nevents"] == 4                       # 2 files of 2 events
        words = metrics(job)
        assert (words["nEvents"], words["nEventsW"]) == ("4", "4")
        assert words["GPU_name"] == "NVIDIA_H200" and words["device"] == "cpu" and words["nGPU"] == "0"
        assert words["build"].startswith("cpu-")


def test_the_outputs_are_registered_with_our_guids_sizes_and_checksums(campaign):
    for job in campaign.jobs("infer_gpu") + campaign.jobs("train_cpu"):
        report = json.loads(campaign.metadata(job["pandaid"]))
        ours = {sub["name"]: sub for group in report["files"]["output"] for sub in group["subFiles"]}
        outputs = [f for f in campaign.files(job["pandaid"]) if f["type"] == "output"]
        assert sorted(f["lfn"] for f in outputs) == sorted(ours) and outputs
        for row in outputs:
            on_disk = staged(campaign, job["pandaid"], row["lfn"])
            assert row["guid"] == ours[row["lfn"]]["file_guid"]
            assert row["fsize"] == ours[row["lfn"]]["file_size"]
            assert row["checksum"] == "ad:" + ours[row["lfn"]]["adler32"] == "ad:" + adler32(on_disk)
            assert row["status"] == "ready"
        (log,) = [f for f in campaign.files(job["pandaid"]) if f["type"] == "log"]
        assert log["status"] == "ready" and log["fsize"] > 0


def test_a_training_job_on_the_cpu_queue(campaign):
    (job,) = campaign.jobs("train_cpu")
    assert job["jobstatus"] == "finished", job["piloterrordiag"]
    assert sorted(f["lfn"].rsplit(".", 2)[-2] for f in campaign.files(job["pandaid"])
                  if f["type"] == "output") == ["metrics", "model"]
    assert metrics(job)["device"] == "cpu" and "GPU_name" not in metrics(job)


def test_a_job_whose_input_is_missing_failed_with_our_code_and_the_reason(campaign):
    (job,) = campaign.jobs("bad_input")
    assert job["jobstatus"] == "failed"
    assert int(job["transexitcode"]) == TRF_EXIT["input"] == job["exeerrorcode"]
    assert job["piloterrorcode"] == PAYLOADEXECUTIONFAILURE
    assert "lost.h5" in job["exeerrordiag"] and "not-found: HTTP 404" in job["exeerrordiag"]
    assert all(f["status"] != "ready" for f in campaign.files(job["pandaid"]) if f["type"] == "output")


def test_a_job_the_batch_system_ended_failed_as_sigterm(campaign):
    (job,) = campaign.jobs("sigterm")
    assert job["jobstatus"] == "failed"
    assert job["piloterrorcode"] == SIGTERM_PILOT_ERROR, job["piloterrordiag"]
    assert "SIGTERM" in job["piloterrordiag"]


def test_the_worker_node_and_its_gpus_are_recorded_where_brokerage_reads_them(campaign):
    db = campaign.stack.db
    gpu_hosts = db.query("SELECT site, host_name, vendor, model, count, vram, architecture, driver_version "
                         "FROM doma_panda.worker_node_gpus")
    assert [{k: v for k, v in row.items() if k != "host_name"} for row in gpu_hosts] == [{
        "site": queues.SITE, "vendor": "NVIDIA", "model": "NVIDIA H200", "count": 1, "vram": 143771,
        "architecture": "Hopper", "driver_version": "580.159.04"}]
    host = gpu_hosts[0]["host_name"]
    queue_rows = db.query("SELECT site, host_name, panda_queue FROM doma_panda.worker_node_queue ORDER BY panda_queue")
    assert {(r["site"], r["panda_queue"]) for r in queue_rows} >= {(queues.SITE, queues.GPU_QUEUE),
                                                                    (queues.SITE, queues.CPU_QUEUE)}
    nodes = db.query("SELECT site, host_name, cpu_model FROM doma_panda.worker_node")
    assert nodes and all(n["site"] == queues.SITE and n["cpu_model"] for n in nodes)
    database.refresh_gpu_summary(db)           # pg_cron does it every hour
    summary = db.query("SELECT site, panda_queue, vendor, model, gpus_per_host, host_count "
                       "FROM doma_panda.mv_worker_node_gpu_summary")
    assert {"site": queues.SITE, "panda_queue": queues.GPU_QUEUE, "vendor": "NVIDIA", "model": "NVIDIA H200",
            "gpus_per_host": 1, "host_count": 1} in summary
    assert host in {r["host_name"] for r in queue_rows}


def test_a_second_task_of_the_same_name_is_refused_by_the_server(campaign):
    done = campaign.resubmission
    assert done.returncode == 1 and done.stdout == ""
    assert "the PanDA server refused the task" in done.stderr


@pytest.mark.parametrize("table", ["jobsdefined4", "jobsactive4", "jobswaiting4"])
def test_no_job_of_the_campaign_is_left_behind(campaign, table):
    ids = ",".join(str(i) for i in campaign.task_ids.values())
    assert campaign.stack.db.query(f"SELECT pandaid, jobstatus FROM doma_panda.{table} WHERE jeditaskid IN ({ids})") == []
