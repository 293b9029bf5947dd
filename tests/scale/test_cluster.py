"""The batch system's environment → ClusterSpec → TF_CONFIG (wrapper.cluster.workers)."""
import json

import pytest

from wrapper import exitcodes as ec
from wrapper.cluster.workers import (ClusterSpec, detect_cluster, expand_nodelist, expand_tasks_per_node,
                                     lsf_hosts)
from wrapper.errors import ClusterError
from wrapper.cluster.distribution import worker_workdir


@pytest.mark.parametrize("text, hosts", [
    ("node07", ["node07"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("a[8-11]", ["a8", "a9", "a10", "a11"]),
    ("gpu[1-2]-ib,login5", ["gpu1-ib", "gpu2-ib", "login5"]),
    ("r[1-2]n[08-09]", ["r1n08", "r1n09", "r2n08", "r2n09"]),
    ("x[098-101]", ["x098", "x099", "x100", "x101"]),
])
def test_nodelist_expands_like_slurm(text, hosts):
    assert expand_nodelist(text) == hosts


@pytest.mark.parametrize("text", ["node[01-03", "node01]", "node[a-b]", "node[5-3]", "n[1,,2]"])
def test_malformed_nodelist_is_a_setup_error(text):
    with pytest.raises(ClusterError) as info:
        expand_nodelist(text)
    assert info.value.exit_code == ec.EXEC_SETUP_FAIL
    assert text in info.value.message


def test_tasks_per_node_expands_repeats():
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert expand_tasks_per_node("4") == [4]
    with pytest.raises(ClusterError):
        expand_tasks_per_node("2(3)")


def slurm(rank, nodelist="node[01-02]", per_node="2(x2)", ntasks=4, **extra):
    env = {"SLURM_JOB_ID": "77", "SLURM_PROCID": str(rank), "SLURM_STEP_NUM_TASKS": str(ntasks),
           "SLURM_STEP_NODELIST": nodelist, "SLURM_STEP_TASKS_PER_NODE": per_node}
    env.update(extra)
    return env


def test_slurm_step_gives_every_rank_the_same_cluster_and_its_own_index():
    specs = [detect_cluster(slurm(r), port=20000) for r in range(4)]
    workers = ["node01:20000", "node01:20001", "node02:20000", "node02:20001"]
    for rank, spec in enumerate(specs):
        config = spec.tf_config()
        assert config == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
        assert spec.source == "slurm" and spec.size == 4
        assert spec.local_rank == rank % 2 and spec.local_size == 2
    assert [s.is_chief for s in specs] == [True, False, False, False]


def test_slurm_uneven_tasks_per_node():
    spec = detect_cluster(slurm(2, nodelist="n[1-2]", per_node="2,1", ntasks=3), port=9000)
    assert spec.workers == ("n1:9000", "n1:9001", "n2:9000")
    assert spec.local_rank == 0 and spec.local_size == 1


def test_slurm_batch_allocation_without_a_step_is_one_worker():
    # The pilot inside `sbatch -n 4` sees SLURM_NTASKS=4 and SLURM_PROCID=0 but no srun step:
    # waiting for three peers that were never launched would hang the job.
    env = {"SLURM_JOB_ID": "77", "SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NODELIST": "n[1-4]"}
    spec = detect_cluster(env)
    assert not spec.multi_worker and spec.is_chief and spec.tf_config() == {}


@pytest.mark.parametrize("env, words", [
    (slurm(4), "rank 4 of 4"),
    (slurm(0, per_node="2,1"), "do not make SLURM_STEP_NUM_TASKS=4"),
    (slurm(0, nodelist="n[1-3]"), "3 node(s)"),
    (slurm(0, SLURM_PROCID="one"), "SLURM_PROCID='one'"),
])
def test_inconsistent_slurm_environment(env, words):
    with pytest.raises(ClusterError) as info:
        detect_cluster(env)
    assert words in info.value.message
    assert info.value.exit_code == ec.EXEC_SETUP_FAIL


def summit(rank, size=12, local=6):
    # jsrun -n 2 -a 6 on two Summit nodes; batch3 is the launch node LSF lists first.
    return {"LSB_JOBID": "123", "LSB_MCPU_HOSTS": "batch3 1 a01n05 42 a01n06 42",
            "JSM_NAMESPACE_RANK": str(rank), "JSM_NAMESPACE_SIZE": str(size),
            "JSM_NAMESPACE_LOCAL_RANK": str(rank % local), "JSM_NAMESPACE_LOCAL_SIZE": str(local),
            "OMPI_COMM_WORLD_RANK": str(rank), "OMPI_COMM_WORLD_SIZE": str(size)}


def test_jsrun_on_summit_skips_the_launch_node():
    spec = detect_cluster(summit(7), port=30000)
    assert spec.source == "lsf"
    assert spec.workers[:2] == ("a01n05:30000", "a01n05:30001")
    assert spec.workers[6:8] == ("a01n06:30000", "a01n06:30001")
    assert len(spec.workers) == 12
    assert spec.tf_config()["task"] == {"type": "worker", "index": 7}
    assert spec.local_rank == 1 and not spec.is_chief


def test_lsb_hosts_counts_slots_per_host():
    assert lsf_hosts({"LSB_HOSTS": "h1 h1 h2 h2"}) == [("h1", 2), ("h2", 2)]


def test_jsrun_needing_more_hosts_than_listed():
    env = summit(0, size=18)
    with pytest.raises(ClusterError) as info:
        detect_cluster(env)
    assert "need 3 host(s)" in info.value.message


def test_openmpi_ranks_on_one_host_use_loopback():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
           "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    spec = detect_cluster(env, port=25000)
    assert spec.source == "mpi"
    assert spec.workers == ("127.0.0.1:25000", "127.0.0.1:25001")
    assert spec.tf_config()["task"]["index"] == 1


def test_mpich_ranks_on_several_hosts_take_their_names_from_the_host_list():
    env = {"PMI_RANK": "3", "PMI_SIZE": "4", "DUNE_WORKER_HOSTS": "cn[7-8]"}
    spec = detect_cluster(env, port=25000)
    assert spec.workers == ("cn7:25000", "cn7:25001", "cn8:25000", "cn8:25001")
    assert spec.local_rank == 1


def test_mpi_ranks_on_several_unnamed_hosts_is_a_clear_error():
    env = {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    with pytest.raises(ClusterError) as info:
        detect_cluster(env)
    assert "DUNE_WORKER_HOSTS" in info.value.message


def test_explicit_tf_config_with_a_chief():
    config = {"cluster": {"chief": ["c:2222"], "worker": ["w1:2222", "w2:2222"]},
              "task": {"type": "worker", "index": 1}}
    spec = detect_cluster({"TF_CONFIG": json.dumps(config), "SLURM_PROCID": "0"})
    assert spec.source == "tf_config" and spec.rank == 2 and spec.size == 3
    assert spec.tf_config() == config
    assert not spec.is_chief
    chief = detect_cluster({"TF_CONFIG": json.dumps(dict(config, task={"type": "chief", "index": 0}))})
    assert chief.is_chief


@pytest.mark.parametrize("text, words", [
    ("{not json", "not a JSON object"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "worker:3"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "ps"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
])
def test_bad_tf_config(text, words):
    with pytest.raises(ClusterError) as info:
        detect_cluster({"TF_CONFIG": text})
    assert words in info.value.message


def test_multi_worker_off_ignores_the_launcher():
    assert detect_cluster(slurm(3), multi_worker="off") == ClusterSpec()


def test_port_range_is_checked():
    with pytest.raises(ClusterError) as info:
        detect_cluster(slurm(0), port=65535)
    assert "65535" in info.value.message


def test_only_the_chief_writes_in_the_job_directory(tmp_path):
    assert worker_workdir(detect_cluster(slurm(0)), tmp_path) == tmp_path
    private = worker_workdir(detect_cluster(slurm(1)), tmp_path)
    try:
        assert private.is_dir() and tmp_path not in private.parents and private != tmp_path
    finally:
        private.rmdir()


def _selection(n_gpus):
    from wrapper.builds.selection import Build, Selection
    from wrapper.platform.gpus import GPU

    gpus = tuple(GPU(i, "Tesla V100-SXM2-16GB", None, (7, 0), 16160, False) for i in range(n_gpus))
    return Selection(Build("v100", None, "mixed_float16", 8, "paper"), "gpu" if gpus else "cpu", gpus, ())


def _spec(*words):
    from wrapper.args.spec import parse_job_args

    return parse_job_args(["--inputEventsFile=e.h5", *words])


def test_flow_helpers_for_a_summit_node_with_six_gpus():
    from wrapper.cluster.distribution import (distribution_report, idle_worker, job_cluster, local_gpus,
                                          payload_distribution)

    train = _spec("--mode=train", "--outputModelFile=m.keras", "--workerPort=30000", "--workerTimeout=120")
    assert local_gpus(train, _selection(6)) == 6
    assert local_gpus(_spec("--mode=train", "--outputModelFile=m.keras", "--gpus=2"), _selection(6)) == 2
    assert local_gpus(train, _selection(0)) == 0
    cluster = detect_cluster(summit(1, size=2, local=1), port=30000)   # one rank per node, 6 GPUs each
    fields = payload_distribution(train, cluster, 6)
    assert fields["cluster"]["task"] == {"type": "worker", "index": 1}
    assert fields["gpus"] == 6 and fields["collective_timeout_s"] == 120
    report = distribution_report(train, cluster, 6, 8)
    assert (report["kind"], report["replicas"], report["globalBatch"]) == ("multi_worker", 12, 96)
    assert report["cluster"]["rank"] == 1
    assert not idle_worker(train, cluster)
    infer = _spec("--mode=infer", "--modelFile=m.keras", "--outputPredFile=p.h5")
    assert idle_worker(infer, cluster) and payload_distribution(infer, cluster, 6)["cluster"] is None
    assert job_cluster(train) == detect_cluster(port=30000)


def test_mpirun_inside_a_slurm_allocation_trusts_the_mpi_ranks():
    # mpirun starts its daemons with one srun task per node: SLURM_PROCID is the node's, not the rank's
    env = {"SLURM_JOB_NODELIST": "gpu[1-2]", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
           "SLURM_STEP_NODELIST": "gpu[1-2]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
           "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
           "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    spec = detect_cluster(env, port=25000)
    assert spec.source == "mpi" and spec.rank == 3
    assert spec.workers == ("gpu1:25000", "gpu1:25001", "gpu2:25000", "gpu2:25001")
