"""payload.distribute: which strategy, the global batch, and a mirrored step that matches one device."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payload.distribute import DistributionPlan, plan_distribution

CHECK = Path(__file__).with_name("mirrored_check.py")
TWO_WORKERS = {"cluster": {"worker": ["h1:9000", "h2:9000"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("gpus, cluster, backend, kind, replicas", [
    (0, None, "tensorflow", "default", 1),
    (1, None, "tensorflow", "default", 1),
    (4, None, "tensorflow", "mirrored", 4),
    (4, None, "jax", "jax_data_parallel", 4),
    (3, None, "torch", "default", 1),
    (0, TWO_WORKERS, "tensorflow", "multi_worker", 2),
    (6, TWO_WORKERS, "tensorflow", "multi_worker", 12),
])
def test_plan(gpus, cluster, backend, kind, replicas):
    plan = plan_distribution(gpus, cluster, backend=backend)
    assert plan.kind == kind and plan.replicas == replicas
    assert plan.global_batch(4) == 4 * replicas


def test_multi_worker_plan_knows_its_place():
    chief_first = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    plan = plan_distribution(0, chief_first)
    assert (plan.workers, plan.worker_index, plan.is_chief) == (3, 1, False)
    assert plan.to_report() == {"kind": "multi_worker", "gpus": 0, "workers": 3, "worker_index": 1,
                                "timeout_s": 600.0, "device_type": "gpu", "replicas": 3}


@pytest.mark.parametrize("cluster", [{"cluster": {"worker": ["a:1"]}}, {"task": {"type": "worker", "index": 0}},
                                     {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 5}}])
def test_bad_cluster_mapping(cluster):
    with pytest.raises(ValueError, match="TF_CONFIG mapping"):
        plan_distribution(0, cluster)


def test_multi_worker_needs_tensorflow():
    with pytest.raises(ValueError, match="TensorFlow backend"):
        plan_distribution(2, TWO_WORKERS, backend="jax")


def test_default_plan_replicas_ignore_gpus():
    assert DistributionPlan("default", gpus=1).replicas == 1


def test_mirrored_step_on_two_devices_equals_one_device_on_the_global_batch():
    env = dict(os.environ, PYTHONPATH=str(CHECK.parents[2]), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(CHECK)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-5)
    assert result["moved"] > 1e-3                       # the step changed the weights...
    assert result["weight_diff"] < 1e-3 * result["moved"]   # ...exactly as one device does
    assert result["predict_rows"] == 1 and result["predict_diff"] < 1e-5
    assert result["spread_before"] > 0 and result["spread_after"] == 0


def test_jax_data_parallel_on_two_devices_equals_one_device():
    env = dict(os.environ, PYTHONPATH=str(CHECK.parents[2]), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(CHECK.with_name("jax_check.py"))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kind"] == "jax_data_parallel" and result["devices"] == 2
    assert result["parallel_loss"] == pytest.approx(result["single_loss"], rel=1e-5)
    assert result["weight_diff"] < 1e-6 and result["predict_rows"] == 4
