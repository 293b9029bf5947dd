"""Model files: write a trained network as a `.keras` file at exactly the path asked for, and read
one back into the named config, failing with a ModelFileError that names the file when it is
unreadable or holds another network.

A saved model is float32 and uncompiled (no optimizer state): any precision and any backend can
load it. Its Keras name carries the config name (`fcdensenet_<config>`), which loading checks.
"""
from __future__ import annotations

import os
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np

from payload.errors import ModelFileError
from payload.model import INPUT_SHAPE, build_model, config_name_of, get_config
from payload.precision import dtype_policy


def save_model(model: keras.Model, path: Path, *, class_weights: Optional[Sequence[float]] = None) -> Path:
    """Write `model` (built from a named config, any precision) as a float32 `.keras` file at
    exactly `path`, atomically: a reader never sees a half-written file.

    `class_weights`: those of the class-weighted loss the model was trained with. Such a loss
    inflates each class's softmax score by its weight; the saved network has −log(weight) added
    to its logit biases, so its softmax estimates the true class probabilities again.
    """
    path = Path(path)
    name = config_name_of(model)
    # a model trained on crops (two inputs, any size) is saved as the whole-event network
    shape = INPUT_SHAPE if isinstance(model.input, (list, tuple)) else tuple(model.input_shape[1:])
    with dtype_policy("float32"):
        export = build_model(get_config(name), input_shape=shape)
    export.set_weights(model.get_weights())
    if class_weights is not None:
        head = export.get_layer("logits")
        head.bias.assign(keras.ops.convert_to_numpy(head.bias) - np.log(np.asarray(class_weights, np.float32)))
    # A fresh unique name rather than mkstemp's file: Keras then creates it, so it gets the mode
    # the user's umask gives any new file (mkstemp's 0600 would survive the save).
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.keras"
    try:
        export.save(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _read_keras_file(path: Path) -> keras.Model:
    # Keras picks the format by file extension; job files may be named anything (an LFN).
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "model.keras"
        link.symlink_to(path.resolve())
        return keras.saving.load_model(link, compile=False)


def load_model(path: Path, config_name: Optional[str] = None) -> keras.Model:
    """The network of model file `path` with its weights, built under the current dtype policy.

    A `.keras` file carries its own architecture: with `config_name` None the file's network is
    used; a `config_name` given must be the file's (a job that names a network expects that one).
    Raises ModelFileError when the file is missing, unreadable or of another config."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist", path=str(path))
    if config_name is not None:
        get_config(config_name)  # refuses an unknown name before any file work
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not a Keras model (.keras zip): truncated or the "
                             "wrong file", path=str(path))
    try:
        saved = _read_keras_file(path)
    except Exception as err:  # a damaged archive fails anywhere in Keras' deserialisation
        raise ModelFileError(f"model file {path} cannot be read: {err}", path=str(path)) from None
    saved_name = config_name_of(saved)
    if saved_name is None and config_name is None:
        raise ModelFileError(f"model file {path} holds a foreign model ({saved.name!r}), not one of the "
                             "payload's FC-DenseNets", path=str(path), mismatch=True)
    if config_name is not None and saved_name != config_name:
        held = f"the {saved_name!r} network" if saved_name else f"a foreign model ({saved.name!r})"
        raise ModelFileError(f"model file {path} holds {held}, but the {config_name!r} network was "
                             f"requested: pass the model config it was trained with", path=str(path),
                             mismatch=True)
    if keras.mixed_precision.dtype_policy().name == "float32":
        return saved  # saved files are float32 already
    model = build_model(get_config(saved_name))  # under the caller's mixed-precision policy
    model.set_weights(saved.get_weights())
    return model
