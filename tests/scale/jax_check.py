"""The Keras distribution API on JAX over two host CPU devices (run by test_distribute).

Prints one JSON line: the devices the variables live on, the loss of a data-parallel step and of
the same step on one device (a second model with the same weights, built without distribution),
and the rows predict_step returns.
"""
import json
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from payload import distribute  # noqa: E402


def plain_model():
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))


def compiled(model):
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


rng = np.random.default_rng(3)
x = rng.random((4, 16, 16, 1)).astype("float32")
y = rng.integers(0, 3, (4, 16, 16)).astype("uint8")
keras.utils.set_random_seed(1)
single = compiled(plain_model())
weights = single.get_weights()
single_loss = float(single.train_on_batch(x, y, return_dict=True)["loss"])

plan = distribute.plan_distribution(2, backend="jax")
plan = distribute.DistributionPlan(plan.kind, plan.gpus, device_type="cpu")
with distribute.scope(plan):
    parallel = compiled(plain_model())
parallel.set_weights(weights)
parallel_loss = distribute.train_step(parallel, plan)(x, y)
devices = len(parallel.trainable_variables[0].value.sharding.device_set)
diff = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), parallel.get_weights()))
rows = distribute.predict_step(parallel, plan)(x).shape[0]
print(json.dumps({"kind": plan.kind, "devices": devices, "single_loss": single_loss,
                  "parallel_loss": parallel_loss, "weight_diff": diff, "predict_rows": int(rows)}))
