"""Give the framework the job's CPU share (see wrapper/platform/cpu_share.py) before it makes its thread pools.

Called by the payload step, in the process that runs the payload, before the first framework op:
TensorFlow sizes its intra-op and inter-op pools once, when its context starts, and refuses a
change afterwards.
"""
from __future__ import annotations

from wrapper.platform.framework import keras_backend


def set_framework_threads(threads: int) -> dict:
    """Intra-op threads = `threads`; inter-op threads = min(2, threads) (the network is one chain of
    large ops: few run side by side, each uses the intra-op pool). Returns what the framework has
    afterwards and whether the setting took (False when its pools already existed)."""
    backend = keras_backend()
    inter = min(2, threads)
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(inter)
            applied = True
        except RuntimeError:        # torch allows it once, before any parallel work
            applied = False
        return {"backend": backend, "intraOp": torch.get_num_threads(),
                "interOp": torch.get_num_interop_threads(), "applied": applied}
    if backend != "tensorflow":
        # JAX takes its CPU threads from XLA_FLAGS at import; the node's environment decides.
        return {"backend": backend, "applied": False}
    import tensorflow as tf

    applied = True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        applied = False
    return {"backend": backend, "intraOp": tf.config.threading.get_intra_op_parallelism_threads(),
            "interOp": tf.config.threading.get_inter_op_parallelism_threads(), "applied": applied}
