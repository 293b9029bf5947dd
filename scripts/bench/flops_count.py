"""FLOPs of the networks, counted from their Keras graphs, and the machine's attainable FLOP/s.

How the FLOPs are counted (scripts/bench/flops.py prints the same text):

- forward: for every Conv2D, Conv2DTranspose and Dense layer of the model built for the image size,
  2 × its multiply-accumulates: Conv2D output pixels × kernel area × Cin × Cout, Conv2DTranspose
  input pixels × kernel area × Cin × Cout (each input pixel is spread over a kernel-sized patch),
  Dense inputs × units. Batch norm, ReLU, bias, dropout, pooling, concatenation, softmax and the loss
  are element-wise or data movement and are not counted (a few per cent of the work at most);
- a training step: each counted layer costs its forward FLOPs three times (forward, gradient of its
  input, gradient of its weights), less the input gradient of the first convolution, whose input
  depends on no weight and so is never computed; the optimizer's update is not counted;
- cross-check: TensorFlow's own profiler (`tf.compat.v1.profiler`, float_ops of the `Conv2D` ops
  of the traced forward graph) must give the Conv2D layers' count exactly (it has no count for the
  transposed convolutions' op, so those are checked only by the formula).

The attainable FLOP/s is that of one large convolution (3 × 3, 128 → 128 channels, on 8 images of
128 × 128) in the same framework (Keras layer, TensorFlow backend) and precision, forward alone and
forward + backward (3 × forward FLOPs), the best of N timed calls and of XLA on and off.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

METHOD = ("forward = 2 x MACs of every Conv2D (output pixels x kernel area x Cin x Cout), Conv2DTranspose "
          "(input pixels x kernel area x Cin x Cout) and Dense layer of the Keras graph; training step = "
          "3 x forward (forward, input gradient, weight gradient) less the first conv's input gradient; "
          "BN, ReLU, bias, pooling, concat, softmax, loss and optimizer not counted; Conv2D part "
          "cross-checked against tf.compat.v1.profiler float_ops")


@dataclass(frozen=True)
class NetworkFlops:
    """FLOPs of one image through one network at one image size."""

    forward: int                 # all counted layers
    conv2d_forward: int          # the Conv2D layers alone (what TF's profiler also counts)
    first_input_gradient: int    # the first convolution's input gradient, never computed

    @property
    def train(self) -> int:
        """FLOPs of one image's training step: forward, input and weight gradients."""
        return 3 * self.forward - self.first_input_gradient


def layer_flops(layer) -> int:
    """2 × multiply-accumulates of one image through `layer` (0 for uncounted layers)."""
    from keras import layers

    if isinstance(layer, layers.Conv2DTranspose):
        _, height, width, cin = layer.input.shape
        kh, kw = layer.kernel_size
        return 2 * height * width * kh * kw * cin * layer.filters
    if isinstance(layer, layers.Conv2D):
        _, height, width, cout = layer.output.shape
        kh, kw = layer.kernel_size
        return 2 * height * width * kh * kw * (layer.input.shape[-1] // layer.groups) * cout
    if isinstance(layer, layers.Dense):
        shape = layer.input.shape
        positions = 1
        for n in shape[1:-1]:
            positions *= n
        return 2 * positions * shape[-1] * layer.units
    return 0


def network_flops(network: str, side: int) -> NetworkFlops:
    """The FLOPs of one `side` × `side` image through the `network` config."""
    from keras import layers

    from payload.model import build_model

    model = build_model(network, (side, side, 1))
    counted = [(layer, layer_flops(layer)) for layer in model.layers]
    counted = [(layer, n) for layer, n in counted if n]
    conv2d = sum(n for layer, n in counted if type(layer) is layers.Conv2D)
    # a convolution's input gradient costs what its forward pass does
    return NetworkFlops(sum(n for _, n in counted), conv2d, counted[0][1])


def profiler_conv2d_flops(network: str, side: int) -> int:
    """Float ops of the Conv2D ops in the traced forward graph of one image, by TF's profiler."""
    import tensorflow as tf

    from payload.model import build_model

    model = build_model(network, (side, side, 1))
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, side, side, 1), tf.float32)).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    by_op = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    # float_ops: the op type's own; total_float_ops would add those of the ops feeding it
    return sum(child.float_ops for child in by_op.children if child.name == "Conv2D")


def _best_seconds(fn, arg, calls: int) -> float:
    fn(arg)   # trace and warm up
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        out = fn(arg)
        _ = [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()
        best = min(best, time.perf_counter() - started)
    return best


def attainable(precision: str, *, batch: int = 8, side: int = 128, channels: int = 128, calls: int = 5,
               jit: Sequence[bool] = (False, True)) -> dict:
    """Best GFLOP/s of a large 3 × 3 Conv2D under `precision`, forward and forward + backward."""
    import keras
    import tensorflow as tf

    from payload.precision import dtype_policy

    with dtype_policy(precision):
        conv = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)
        conv.build((batch, side, side, channels))
    x = tf.cast(tf.random.normal((batch, side, side, channels)), conv.compute_dtype)
    forward_flops = 2 * batch * side * side * 9 * channels * channels

    def both(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.cast(conv(images), tf.float32))
        return tape.gradient(loss, [images, conv.kernel.value])

    best = {}
    for on in jit:
        for name, fn in (("forward", lambda images: conv(images)), ("forward_backward", both)):
            seconds = _best_seconds(tf.function(fn, jit_compile=on), x, calls)
            flops = forward_flops * (1 if name == "forward" else 3)
            rate = flops / seconds / 1e9
            if rate > best.get(name, {}).get("gflops", 0.0):
                best[name] = {"gflops": round(rate, 2), "seconds": round(seconds, 4), "jit_compile": on,
                              "flops": flops}
    return {"precision": precision, "compute_dtype": conv.compute_dtype,
            "shape": [batch, side, side, channels], "kernel": [3, 3, channels, channels], "calls": calls, **best}
