"""Steps per second of the trf's training and inference, and of the fastest bare steps, in one process.

The bare training step is the floor the framework allows: a `tf.function` over the same network,
loss (with the L2 penalty), Adam and batch, fed crops prefetched in memory as tensors, no reading,
no cropping, no callback, no per-step result fetched; built with XLA on and off, the faster kept.
The bare prediction is the same network and softmax as the trf's, compiled likewise, fed prefetched
tensors, each batch's probabilities fetched as numpy (any predict has to hand them over).

The trf's side is the payload's own entry point (`payload.api.train` / `payload.api.infer`) on an
events file, timed from its progress callback: the steps or batches after `warmup` ones, so set-up,
tracing and the final save are excluded and reading, cropping and writing are included.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# The reference recipe's training (README, 'Physics'): crops of 128, batch 8, Dice loss, cosine.
RECIPE = {"batch_size": 8, "crop_size": 128, "loss": "dice", "lr_schedule": "cosine", "warmup_steps": 100,
          "learning_rate": 3e-3}
PREFETCHED = 8      # distinct batches the bare steps cycle through


def read_events(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, 320, 320, 1], labels uint8 [N, 320, 320]) of an events file."""
    import h5py

    with h5py.File(path, "r") as f:
        return f["images"][...].astype(np.float32)[..., None], f["labels"][...]


def crop_batches(images: np.ndarray, labels: np.ndarray, seed: int = 1) -> list:
    """PREFETCHED (crops, origins, crop labels) batches of the recipe's size, as the trf draws them."""
    from payload.sampling import crop_batches as draw

    batches = draw(images, labels, batch_size=RECIPE["batch_size"], crop=RECIPE["crop_size"], beam_fraction=0.5,
                   rng=np.random.default_rng(seed))
    return [next(batches) for _ in range(PREFETCHED)]


def _timed(step: Callable, batches: list, steps: int) -> float:
    """Calls of `step` per second over `steps` calls cycling through `batches`."""
    started = time.perf_counter()
    for i in range(steps):
        out = step(*batches[i % len(batches)])
    np.asarray(out)   # wait for the last one
    return steps / (time.perf_counter() - started)


def _fastest(candidates: dict, batches: list, warmup: int, steps: int) -> tuple[Callable, object]:
    """(the faster step, its key) of `candidates` {key: step}, after warming each up."""
    rates = {}
    for key, step in candidates.items():
        _timed(step, batches, warmup)
        rates[key] = _timed(step, batches, steps)
    key = max(rates, key=rates.get)
    return candidates[key], key


def bare_train(network: str, precision: str, batches: list, jit: Sequence[bool], warmup: int,
               trial_steps: int) -> tuple[Callable[[int], float], bool]:
    """(steps → steps/s of the bare training step, its jit_compile) for `network` under `precision`."""
    import keras
    import tensorflow as tf

    from payload.losses import make_loss
    from payload.model import build_model
    from payload.precision import dtype_policy

    keras.utils.set_random_seed(1)
    with dtype_policy(precision):
        model = build_model(network, (None, None, 1), crops=True)
        loss_fn = make_loss(RECIPE["loss"])
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            RECIPE["learning_rate"] / 20, 1000, alpha=0.02, warmup_target=RECIPE["learning_rate"],
            warmup_steps=RECIPE["warmup_steps"]))
        optimizer.build(model.trainable_variables)

    def step(images, origins, labels):
        with tf.GradientTape() as tape:
            logits = model([images, origins], training=True)
            loss = loss_fn(labels, logits) + tf.add_n(model.losses)   # the L2 penalty, as Keras adds it
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    tensors = [tuple(tf.constant(a) for a in batch) for batch in batches]
    chosen, on = _fastest({on: tf.function(step, jit_compile=on) for on in jit}, tensors, warmup, trial_steps)
    return (lambda steps: _timed(chosen, tensors, steps)), on


def bare_predict(network: str, precision: str, images: np.ndarray, batch: int, jit: Sequence[bool], warmup: int,
                 trial_steps: int) -> tuple[Callable[[int], float], bool]:
    """(batches → images/s of the bare predict step, its jit_compile) over whole events `images`."""
    import keras
    import tensorflow as tf

    from payload.model import build_model
    from payload.precision import dtype_policy

    keras.utils.set_random_seed(1)
    with dtype_policy(precision):
        net = build_model(network)
        model = keras.Model(net.input, keras.layers.Softmax(dtype="float32")(net.output))

    def predict(x):
        return model(x, training=False)

    tensors = [(tf.constant(images[i:i + batch]),) for i in range(0, len(images) - batch + 1, batch)]
    chosen, on = _fastest({on: tf.function(predict, jit_compile=on) for on in jit}, tensors, warmup,
                          trial_steps)

    def rate(batches: int) -> float:
        return batch * _timed(lambda x: chosen(x).numpy(), tensors, batches)

    return rate, on


class Ticks:
    """A progress callback keeping when each unit of one stage was first reported done."""

    def __init__(self, stage_prefix: str):
        self.prefix, self.at = stage_prefix, {}

    def __call__(self, progress) -> None:
        if progress.stage.startswith(self.prefix) and progress.done:
            self.at.setdefault(progress.done, time.perf_counter())

    def rate(self, first: int, last: int) -> float:
        """Units per second from the `first`-th report to the `last`-th."""
        done = sorted(self.at)
        return (done[last] - done[first]) / (self.at[done[last]] - self.at[done[first]])


def trf_train(events: Path, work: Path, network: str, precision: str, warmup: int, steps: int) -> float:
    """Steps/s of the payload's own training on `events`: steps `warmup`+1 .. `warmup`+`steps`."""
    from payload import api

    ticks = Ticks("train epoch")
    config = api.TrainConfig(model_config=network, precision=precision, epochs=1, validation_split=0.0,
                             max_events=RECIPE["batch_size"] * (warmup + steps), **RECIPE)
    api.train([events], work / f"trained-{network}-{precision}.keras", config, on_progress=ticks)
    return ticks.rate(warmup - 1, warmup + steps - 1)


def trf_infer(events: Path, model: Path, work: Path, network: str, precision: str, batch: int, warmup: int,
              batches: int) -> float:
    """Images/s of the payload's own inference of `events` with `model`, after `warmup` batches."""
    from payload import api

    ticks = Ticks("inference")
    config = api.InferConfig(model_config=network, precision=precision, batch_size=batch,
                             max_events=batch * (warmup + batches))
    api.infer([events], model, work / f"pred-{network}-{precision}.h5", config, on_progress=ticks)
    return ticks.rate(warmup - 1, warmup + batches - 1)


def trf_input_seconds(events: Path, steps: int) -> float:
    """Seconds per batch of the trf's training input alone (read, mix, crop; no network), for
    `steps` batches of the recipe: the most its own loop can add to a step."""
    from payload import api
    from payload.training_data import select_events, training_batches

    config = api.TrainConfig(epochs=1, validation_split=0.0, max_events=RECIPE["batch_size"] * steps, **RECIPE)
    started, n = time.perf_counter(), 0
    for _ in training_batches(select_events([events], config), config, 0):
        n += 1
    return (time.perf_counter() - started) / n
