"""Mixed precision as a scoped setting: the caller picks the Keras dtype policy for one step."""
from __future__ import annotations

import contextlib

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Models built inside the block use Keras dtype policy `name`; the previous policy is restored
    after it, so one step's choice never leaks into the next."""
    import keras

    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
