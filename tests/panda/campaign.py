"""One DUNE campaign through a real PanDA on loopback, run once per test session in the background.

    tasks (jedi_task.py --submit, real panda-client)  →  panda-server 1.0.4  →  JEDI refines them,
    GenJobBroker brokers each job to a queue, JobGenerator makes the jobs  →  Harvester's part
    (scripts/panda_local/harvester.py: acquire_jobs, the real pilot 3.11.5.1 with the DUNE plugin,
    update_jobs_bulk)  →  the server's Adder finishes the jobs.

The tests read only what the server stored: its job, file, metadata and worker-node tables.

The site: one DUNE site with a CPU queue and a GPU queue (panda_local.queues). Inputs and the model
sit on the site's storage, which the jobs read over HTTP (the trf fetches the URLs of the task):
each pilot's namespace serves the storage directory at STORAGE_URL. The GPU queue's nodes answer
`nvidia-smi` as the captured H200 machine does (tests/platform/fixtures/h200_driver580); the
framework here has no CUDA, so a GPU job that allows it runs its CPU build there.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scripts.panda_local import database, harvester, queues, stack
from scripts.pilot_harness import pilots
from scripts.pilot_harness.run import PilotJob
from scripts.tools import build_pyz

ROOT = Path(__file__).resolve().parents[2]

from tests.support.fake_gpu import fake_smi_environment, write_fake_smi  # noqa: E402
from tests.support.samples import events_and_tiny_model  # noqa: E402

STORAGE_PORT = 18080
STORAGE_URL = f"http://127.0.0.1:{STORAGE_PORT}/storage"
PLUGIN = ROOT / "deploy" / "pilot-plugin" / "dune"
TRF_URL = "https://dune.example.org/trf/dune-payload.pyz"
COMMON = ["--trf-url", TRF_URL, "--trf-arg=--batchSize=2"]

# name -> (jedi_task.py arguments, queue its jobs must land on, number of jobs)
TASKS = {
    # 4 files, 2 a job, on GPU queues; the H200 node's GPU is not one this framework can use, so
    # --gpu-preferred lets the job run its CPU build there (no --requireGPU)
    "infer_gpu": (["infer", *(f"--input-url={STORAGE_URL}/mc/ev.{n}.h5" for n in (1, 2, 3, 4)),
                   "--output-dataset", "user.jdoe.dune.pred.gpu/", "--model-file", f"{STORAGE_URL}/models/tiny.keras",
                   "--files-per-job", "2", "--gpu-preferred"], queues.GPU_QUEUE, 2),
    "train_cpu": (["train", *(f"--input-url={STORAGE_URL}/mc/ev.{n}.h5" for n in (1, 2)),
                   "--output-dataset", "user.jdoe.dune.train.cpu/", "--gpu", "none", "--model-config", "tiny",
                   "--epochs", "1", "--trf-arg=--validationSplit=0", "--cores", "1"], queues.CPU_QUEUE, 1),
    # one input the storage does not have
    "bad_input": (["infer", f"--input-url={STORAGE_URL}/mc/ev.1.h5", f"--input-url={STORAGE_URL}/mc/lost.h5",
                   "--output-dataset", "user.jdoe.dune.pred.lost/", "--model-file",
                   f"{STORAGE_URL}/models/tiny.keras", "--gpu", "none", "--max-attempt", "1"], queues.CPU_QUEUE, 1),
    # a training the batch system ends: the pilot gets SIGTERM in its second epoch
    "sigterm": (["train", f"--input-url={STORAGE_URL}/mc/ev.1.h5", "--output-dataset", "user.jdoe.dune.train.kill/",
                 "--gpu", "none", "--model-config", "tiny", "--epochs", "100000", "--trf-arg=--validationSplit=0",
                 "--max-attempt", "1"], queues.CPU_QUEUE, 1),
}
SIGTERM_AFTER = {"sigterm": "train epoch 2/"}
DEADLINE_S = 1500


@dataclass(frozen=True)
class Campaign:
    """What the session's campaign left: the running stack, each task's jediTaskID, each worker's
    result (by PandaID), the site storage and the second submission of a task already there."""

    stack: stack.Stack
    task_ids: dict
    workers: dict
    storage: Path
    resubmission: subprocess.CompletedProcess

    def jobs(self, task: str) -> list[dict]:
        """The server's final records of the task's jobs (jobsarchived4), by PandaID."""
        return self.stack.db.query(
            "SELECT * FROM doma_panda.jobsarchived4 WHERE jeditaskid = %d ORDER BY pandaid" % self.task_ids[task])

    def files(self, panda_id: int) -> list[dict]:
        """The server's file records of one job (filestable4)."""
        return self.stack.db.query(
            "SELECT lfn, type, guid, fsize, checksum, status, dataset FROM doma_panda.filestable4 "
            "WHERE pandaid = %d ORDER BY lfn" % panda_id)

    def metadata(self, panda_id: int) -> str:
        """The job's metaData as the server stored it (metatable)."""
        rows = self.stack.db.query("SELECT metadata FROM doma_panda.metatable WHERE pandaid = %d" % panda_id)
        return rows[0]["metadata"] if rows else ""


def make_material(base: Path) -> tuple:
    """The site storage (event files, a tiny model, in a child process so the framework never
    loads here), the trf built from this tree and the GPU node's environment."""
    storage = base / "storage"
    (storage / "mc").mkdir(parents=True)
    (storage / "models").mkdir()
    events_and_tiny_model({storage / "mc" / f"ev.{n}.h5": 700 + n for n in (1, 2, 3, 4)},
                          storage / "models" / "tiny.keras", storage / "mc" / "ev.1.h5")
    pyz = build_pyz.build(base / "dune-payload.pyz")
    gpu_node = {**fake_smi_environment("h200_driver580", base / "nvidia-smi-calls.log"),
                "PATH": os.pathsep.join([str(write_fake_smi(base / "gpu-node-bin")),
                                         str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return storage, pyz, gpu_node


def submit(panda: stack.Stack, name: str) -> subprocess.CompletedProcess:
    """`python -m scripts.jedi.task ... --submit` for task `name`, as the user jdoe with panda-client."""
    argv, _, _ = TASKS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANDA", "X509", "OIDC"))}
    env.update(panda.user_env("jdoe"), PYTHONPATH=str(ROOT), HOME=str(panda.directory))
    return subprocess.run([sys.executable, "-m", "scripts.jedi.task", *argv, *COMMON, "--submit"],
                          env=env, capture_output=True, text=True, timeout=300)


def _task_id(done: subprocess.CompletedProcess) -> int:
    match = re.search(r"jediTaskID=(\d+)", done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"submission failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(match.group(1))


def _worker(panda: stack.Stack, queue: str, by_task: dict, storage: Path, pyz: Path, pilot: pilots.Pilot,
            gpu_node: dict, base: Path, deadline: float):
    """One Harvester worker of `queue`: a job once JEDI has made one, run through the pilot."""
    record = queues.standard()[queue]
    while time.monotonic() < deadline:
        database.refresh_for_jedi(panda.db)     # pg_cron does it every minute
        job = harvester.acquire(panda.client(), queue, "user")
        if job is not None:
            break
        time.sleep(3)
    else:
        raise RuntimeError(f"no job for {queue} within the deadline")
    task = by_task.get(int(job["taskID"]), "unknown")
    request = PilotJob(job={}, inputs=(), trf=pyz, pilot=pilot, queue=(queue, record), storage=storage,
                       storage_port=STORAGE_PORT, sigterm_after=SIGTERM_AFTER.get(task),
                       environment=gpu_node if queue == queues.GPU_QUEUE else {})
    return harvester.run_worker(panda.client(), job, request, base / f"worker-{job['PandaID']}")


def run(base: Path) -> Campaign:
    """The whole campaign under `base`; returns once the server has finished every job."""
    deadline = time.monotonic() + DEADLINE_S
    with ThreadPoolExecutor(1) as maker:
        material = maker.submit(make_material, base)
        panda = stack.start(base / "panda", log=lambda *_: None)
        try:
            task_ids = {name: _task_id(submit(panda, name)) for name in TASKS}
            resubmission = submit(panda, "infer_gpu")
            storage, pyz, gpu_node = material.result()
            pilot = pilots.pilot3(pilots.unpack(base / "pilot3", plugins={"dune": PLUGIN}), "dune")
            by_task = {task_id: name for name, task_id in task_ids.items()}
            slots = [queue for _, queue, n in TASKS.values() for _ in range(n)]
            with ThreadPoolExecutor(len(slots), thread_name_prefix="harvester") as pool:
                futures = [pool.submit(_worker, panda, queue, by_task, storage, pyz, pilot, gpu_node, base, deadline)
                           for queue in slots]
                workers = {int(r.job["PandaID"]): r for r in (f.result() for f in futures)}
            _wait_archived(panda, list(workers), deadline)
        except BaseException:
            stack.stop(panda)
            raise
    return Campaign(panda, task_ids, workers, storage, resubmission)


def _wait_archived(panda: stack.Stack, panda_ids: list, deadline: float) -> None:
    """Until the Adder (the server's add_main daemon) has moved every job to its final table."""
    wanted = ",".join(str(i) for i in panda_ids)
    while time.monotonic() < deadline:
        done = panda.db.query(f"SELECT pandaid FROM doma_panda.jobsarchived4 WHERE pandaid IN ({wanted}) "
                              "AND jobstatus IN ('finished', 'failed')")
        if len(done) == len(panda_ids):
            return
        time.sleep(2)
    raise RuntimeError(f"the server did not finish jobs {wanted} in time; see {panda.log('adder')}")

