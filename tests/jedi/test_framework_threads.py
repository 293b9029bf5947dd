"""The framework gets the job's CPU share before its pools exist: each backend in its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TENSORFLOW = """
import json
from wrapper.platform.framework_threads import set_framework_threads
first = set_framework_threads(3)
import tensorflow as tf
total = float(tf.reduce_sum(tf.ones((64, 64))))      # the context and its pools start here
late = set_framework_threads(1)
print(json.dumps({"first": first, "late": late, "total": total,
                  "intra": tf.config.threading.get_intra_op_parallelism_threads()}))
"""

TORCH = """
import json
from wrapper.platform.framework_threads import set_framework_threads
print(json.dumps({"first": set_framework_threads(3)}))
"""


def run(backend: str, code: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tensorflow_pools_take_the_share_and_refuse_a_late_change():
    result = run("tensorflow", TENSORFLOW)
    assert result["first"] == {"backend": "tensorflow", "intraOp": 3, "interOp": 2, "applied": True}
    assert result["late"]["applied"] is False and result["intra"] == 3 and result["total"] == 4096.0


def test_torch_takes_the_share():
    assert run("torch", TORCH)["first"] == {"backend": "torch", "intraOp": 3, "interOp": 2, "applied": True}


def test_jax_leaves_it_to_the_environment():
    assert run("jax", TORCH)["first"] == {"backend": "jax", "applied": False}
