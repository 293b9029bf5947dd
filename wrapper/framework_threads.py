"""Give the framework the job's CPU share (see wrapper/cpu_share.py) before it makes its thread pools.

Called by the payload step, in the process that runs the payload, before the first framework op:
TensorFlow sizes its intra-op and inter-op pools once, when its context starts, and refuses a
change afterwards.
"""
from __future__ import annotations


def set_framework_threads(threads: int) -> dict:
    """Intra-op threads = `threads`; inter-op threads = min(2, threads) (the network is one chain of
    large ops: few run side by side, each uses the intra-op pool). Returns what the framework has
    afterwards and whether the setting took (False when its pools already existed)."""
    import tensorflow as tf

    applied = True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        applied = False
    return {"intraOp": tf.config.threading.get_intra_op_parallelism_threads(),
            "interOp": tf.config.threading.get_inter_op_parallelism_threads(), "applied": applied}
