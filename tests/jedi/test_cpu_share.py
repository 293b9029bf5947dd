"""The job's CPU share: cgroup v1/v2 quotas from real files laid out as the kernel does, and the
affinity a batch system sets, for real, on a child process (os.sched_setaffinity and taskset)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wrapper.platform.cpu_share import cgroup_quota, cpu_share, parse_cfs, parse_cpu_max

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("200000 100000\n", 2.0),
                                        ("150000 100000", 1.5), ("50000 100000", 0.5), ("max", None)])
def test_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize("quota, period, cpus", [("-1\n", "100000\n", None), ("400000\n", "100000\n", 4.0),
                                                 ("25000", "100000", 0.25)])
def test_cfs(quota, period, cpus):
    assert parse_cfs(quota, period) == cpus


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


V2 = {"cgroup.controllers": "cpuset cpu io memory pids\n"}


@pytest.mark.parametrize("files, proc, cpus", [
    # v2 in a container with its own cgroup namespace: the mount root is the job's cgroup
    ({**V2, "cpu.max": "200000 100000\n"}, "0::/\n", 2.0),
    # v2, Slurm-like nesting: the tightest quota from the job's cgroup up to the root binds
    ({**V2, "cpu.max": "max 100000\n", "system.slice/job_7/cpu.max": "max 100000\n",
      "system.slice/job_7/step_0/cpu.max": "100000 100000\n"}, "0::/system.slice/job_7/step_0\n", 1.0),
    ({**V2, "system.slice/job_7/cpu.max": "150000 100000\n",
      "system.slice/job_7/step_0/cpu.max": "max 100000\n"}, "0::/system.slice/job_7/step_0\n", 1.5),
    # v2 without a cgroup namespace: the host path is not under the mount; the root file counts
    ({**V2, "cpu.max": "300000 100000\n"}, "0::/kubepods/pod1/abc\n", 3.0),
    ({**V2, "cpu.max": "max 100000\n"}, "0::/\n", None),
    # v1 (cpu and cpuacct co-mounted), HTCondor-like path
    ({"cpu,cpuacct/htcondor/slot1_3/cpu.cfs_quota_us": "400000\n",
      "cpu,cpuacct/htcondor/slot1_3/cpu.cfs_period_us": "100000\n",
      "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     "5:cpu,cpuacct:/htcondor/slot1_3\n4:memory:/htcondor/slot1_3\n", 4.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "3:cpu:/\n2:cpuacct:/\n", None),
    # hybrid: v1 cpu controller and the v2 unified tree both limit; the tighter wins
    ({"cpu/cpu.cfs_quota_us": "800000\n", "cpu/cpu.cfs_period_us": "100000\n",
      "unified/cgroup.controllers": "cpu\n", "unified/cpu.max": "250000 100000\n"},
     "1:cpu:/\n0::/\n", 2.5),
    # no cgroup file system at all
    ({}, "0::/\n", None),
])
def test_cgroup_quota_from_files(tmp_path, files, proc, cpus):
    assert cgroup_quota(write(tmp_path, files), proc) == cpus


@pytest.mark.parametrize("requested, affinity, quota, threads, source", [
    (None, 8, None, 8, "affinity"),
    (None, 8, 1.5, 2, "cgroup"),
    (None, 8, 0.25, 1, "cgroup"),
    (None, 4, 16.0, 4, "affinity"),
    (3, 8, 1.0, 3, "nThreads"),
])
def test_share(requested, affinity, quota, threads, source):
    share = cpu_share(requested, affinity=affinity, quota=quota)
    assert (share.threads, share.source) == (threads, source)
    assert share.to_report()["threads"] == threads


PROBE = ("import json, sys; from wrapper.platform.cpu_share import cpu_share; "
         "print(json.dumps(cpu_share(root=__import__('pathlib').Path(sys.argv[1])).to_report()))")


def probe(command_prefix, tmp_path, **kwargs) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([*command_prefix, sys.executable, "-c", PROBE, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_affinity_of_a_child_process(tmp_path):
    cpu = min(os.sched_getaffinity(0))
    report = probe([], tmp_path, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert report == {"threads": 1, "source": "affinity", "affinityCPUs": 1, "cgroupQuotaCPUs": None,
                      "nThreads": None}
    unrestricted = probe([], tmp_path)
    assert unrestricted["affinityCPUs"] == len(os.sched_getaffinity(0))


def test_affinity_set_by_taskset(tmp_path):
    taskset = shutil.which("taskset")
    assert taskset, "taskset (util-linux) is needed: apt-get install util-linux"
    cpu = min(os.sched_getaffinity(0))
    report = probe([taskset, "-c", str(cpu)], tmp_path)
    assert report["threads"] == 1 and report["affinityCPUs"] == 1
