"""MirroredStrategy over two logical CPU devices, checked against one device (run by test_distribute).

Prints one JSON line: the largest weight difference between a mirrored step and train_on_batch on
the same global batch, the predict_step error, and the replica spread of batch-norm statistics
before and after sync_batch_stats.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from payload import distribute  # noqa: E402
from payload.model import build_model  # noqa: E402

# two logical CPUs stand in for two GPUs: the strategy is the real one, on other devices
plan = distribute.DistributionPlan("mirrored", gpus=2, device_type="cpu")


def plain_model():
    """Convolutions only (no batch norm, no dropout): one device and two replicas must agree."""
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(3, 1, kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    return keras.Model(inputs, x)


def compiled(model):
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)
    return model


rng = np.random.default_rng(3)
x = rng.random((5, 16, 16, 1)).astype("float32")     # 5 events over 2 replicas: slices of 3 and 2
y = rng.integers(0, 3, (5, 16, 16)).astype("uint8")

keras.utils.set_random_seed(1)
single = compiled(plain_model())
initial = single.get_weights()
with distribute.scope(plan):
    mirrored = compiled(plain_model())
mirrored.set_weights(initial)
single_loss = float(single.train_on_batch(x, y, return_dict=True)["loss"])
mirrored_loss = distribute.train_step(mirrored, plan)(x, y)
weight_diff = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
moved = max(float(np.abs(a - b).max()) for a, b in zip(initial, mirrored.get_weights()))
predicted = distribute.predict_step(mirrored, plan)(x[:1])
predict_diff = float(np.abs(predicted - np.asarray(single(x[:1]))).max())

with distribute.scope(plan):
    net = compiled(build_model("tiny", input_shape=(16, 16, 1)))
distribute.train_step(net, plan)(x, y)
stats = [v for v in net.non_trainable_variables if "moving_mean" in v.path][0]


def spread():
    values = [np.asarray(t) for t in stats.value.values]
    return float(np.abs(values[0] - values[1]).max())


before = spread()
distribute.sync_batch_stats(net, plan)
print(json.dumps({"replicas": distribute.make_strategy(plan).num_replicas_in_sync,
                  "single_loss": single_loss, "mirrored_loss": mirrored_loss,
                  "weight_diff": weight_diff, "moved": moved, "predict_rows": int(predicted.shape[0]),
                  "predict_diff": predict_diff, "spread_before": before, "spread_after": spread()}))
