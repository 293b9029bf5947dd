"""The network: FC-DenseNet, "The One Hundred Layers Tiramisu" (Jégou et al., 2017, arXiv:1611.09326).

Read it as the paper's Figure 1, top to bottom:

    input 320×320×1 ── 3×3 conv (48) ─┬─ dense block (4)  ── TD ─┐                     ┌─ TU ── dense block (4)  ── 1×1 conv → 3 logits
                                      ├─ dense block (5)  ── TD ─┤  skip connections   ├─ TU ── dense block (5)
                                      ├─ dense block (7)  ── TD ─┤ ─────────────────▶  ├─ TU ── dense block (7)
                                      ├─ dense block (10) ── TD ─┤                     ├─ TU ── dense block (10)
                                      └─ dense block (12) ── TD ─┴─ dense block (15) ──┴─ TU ── dense block (12)

A dense block's layers each see every earlier feature map of the block (concatenation) and add
`growth` new ones. On the way down a block passes its input and all its new maps on (and keeps that
stack as the skip connection); on the way up, to keep the width in check, only the new maps of a block
are upsampled by the next transition up (TU); the last block passes everything to the classifier.

One addition to the paper, for all but the `paper` config: two input channels with each pixel's
tick and wire position (0..1). Convolutions see only a pixel's neighbourhood, yet in ProtoDUNE the
beam enters at a fixed place; knowing where a hit lies is what separates a beam track from a cosmic
crossing the same spot. (Without it, the `small` network reached cosmic IoU 0.92 but beam IoU
0.03 after 5,700 event-steps on synthetic events.)

The network ends in logits (float32 even under mixed precision): losses use `from_logits=True` and
the softmax is applied by whoever needs probabilities. Only `keras.layers` and `keras.ops` are used,
so the same code runs on the TensorFlow, JAX and PyTorch backends and saves to a plain `.keras` file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers, ops, regularizers

INPUT_SHAPE = (320, 320, 1)
N_CLASSES = 3
MODEL_NAME_PREFIX = "fcdensenet_"


@dataclass(frozen=True)
class ModelConfig:
    """One FC-DenseNet: layers per dense block on the way down (mirrored on the way up), the
    bottleneck block, growth rate (feature maps each layer adds), filters of the first convolution,
    dropout after every convolution, the L2 weight penalty, and whether the pixel positions are
    added as input channels."""

    name: str
    blocks: tuple
    bottleneck: int
    growth: int
    first_filters: int
    dropout: float = 0.2
    l2: float = 1e-4
    pixel_position: bool = True


CONFIGS = {
    # FC-DenseNet103 of the paper, the network of the DUNE payload (about 9.4 M parameters).
    "paper": ModelConfig("paper", blocks=(4, 5, 7, 10, 12), bottleneck=15, growth=16, first_filters=48,
                         pixel_position=False),
    # Same design, narrower and shallower, for CPUs. No dropout: its short runs on ever-new
    # synthetic events do not overfit, and dropout would slow them down.
    "small": ModelConfig("small", blocks=(2, 3, 4, 5), bottleneck=6, growth=8, first_filters=16, dropout=0.0),
    # For tests: a few steps in seconds.
    "tiny": ModelConfig("tiny", blocks=(1, 2), bottleneck=2, growth=4, first_filters=8),
}


def get_config(name: str) -> ModelConfig:
    """The named configuration (`paper`, `small`, `tiny`)."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model config {name!r}: choose one of {', '.join(CONFIGS)}") from None


def model_name(config: ModelConfig) -> str:
    """The Keras model name, which carries the config name into saved files."""
    return MODEL_NAME_PREFIX + config.name


def config_name_of(model: keras.Model) -> str | None:
    """The config name a model was built with, or None for a model not built here."""
    if model.name.startswith(MODEL_NAME_PREFIX):
        return model.name[len(MODEL_NAME_PREFIX):]
    return None


@keras.saving.register_keras_serializable(package="dune")
class PixelPosition(layers.Layer):
    """Append each pixel's row (tick) and column (wire) position in the full 320 × 320 image, scaled
    to 0..1, as two channels.

    Called on images alone, the images are whole events. Called as `(images, origin)` with
    `origin` [B, 2] the (row, column) of each crop's top-left pixel in its event, the positions are
    the crop's absolute ones: a network trained on crops sees the same positions as on whole events.
    """

    def __init__(self, full_shape=INPUT_SHAPE[:2], **kwargs):
        super().__init__(**kwargs)
        self.full_shape = tuple(int(n) for n in full_shape)

    def call(self, images, origin=None):
        batch, height, width = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        # Positions in float32 throughout: bfloat16 holds integers exactly only up to 256, and its
        # 8-bit significand has 128 values in [0.5, 1) for the 160 positions of a 320-pixel
        # event's far half, so even scaled positions would collide in pairs. The layer's dtype is
        # float32 (build_model), so its output, and the first convolution that reads it, are too.
        rows = ops.arange(height, dtype="float32")[None, :]
        cols = ops.arange(width, dtype="float32")[None, :]
        if origin is not None:
            origin = ops.cast(origin, "float32")
            rows, cols = rows + origin[:, 0:1], cols + origin[:, 1:2]
        rows = ops.broadcast_to(rows / (self.full_shape[0] - 1), (batch, height))
        cols = ops.broadcast_to(cols / (self.full_shape[1] - 1), (batch, width))
        grid = ops.stack([ops.broadcast_to(rows[:, :, None], (batch, height, width)),
                          ops.broadcast_to(cols[:, None, :], (batch, height, width))], axis=-1)
        return ops.concatenate([ops.cast(images, self.compute_dtype), grid], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)

    def get_config(self):
        return {**super().get_config(), "full_shape": list(self.full_shape)}


def conv(x, filters: int, kernel_size: int, config: ModelConfig, name: str):
    """BN → ReLU → convolution → dropout: the unit every layer of the paper is made of."""
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer="he_uniform",
                      kernel_regularizer=regularizers.L2(config.l2), name=f"{name}_conv")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name=f"{name}_drop")(x)
    return x


def dense_block(x, n_layers: int, config: ModelConfig, name: str):
    """`n_layers` 3×3 layers, each fed the concatenation of the block input and all earlier layers.

    Returns (the input with every new map appended, the new maps alone)."""
    new_maps = []
    for i in range(n_layers):
        y = conv(x, config.growth, 3, config, name=f"{name}_l{i}")
        new_maps.append(y)
        x = layers.Concatenate(name=f"{name}_cat{i}")([x, y])
    new = new_maps[0] if n_layers == 1 else layers.Concatenate(name=f"{name}_new")(new_maps)
    return x, new


def transition_down(x, config: ModelConfig, name: str):
    """Halve the resolution: BN → ReLU → 1×1 conv (same width) → dropout → 2×2 max pooling."""
    x = conv(x, x.shape[-1], 1, config, name=name)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def transition_up(x, skip, config: ModelConfig, name: str):
    """Double the resolution with a 3×3 stride-2 transposed convolution, then append the skip."""
    x = layers.Conv2DTranspose(x.shape[-1], 3, strides=2, padding="same", kernel_initializer="he_uniform",
                               kernel_regularizer=regularizers.L2(config.l2), name=f"{name}_upconv")(x)
    return layers.Concatenate(name=f"{name}_skip")([x, skip])


def build_model(config: ModelConfig | str, input_shape: tuple = INPUT_SHAPE, *, crops: bool = False) -> keras.Model:
    """Build the FC-DenseNet for `config` (a ModelConfig or a config name).

    The model maps images [B, H, W, 1] to per-pixel logits [B, H, W, 3] in float32; H and W must be
    divisible by 2**len(config.blocks). Layers follow the global Keras dtype policy (mixed precision).
    With `crops`, it takes `[images, origin]`, origin [B, 2] the top-left (row, column) of each crop
    in its event, for training on crops; its weights are those of the whole-event model, in the
    same order (get_weights/set_weights carry them over).
    """
    if isinstance(config, str):
        config = get_config(config)
    images = keras.Input(shape=input_shape, name="images")
    inputs = [images, keras.Input(shape=(2,), name="origin")] if crops else images
    if config.pixel_position:
        x = PixelPosition(name="pixel_position", dtype="float32")(*(inputs if crops else [images]))
    else:
        x = images
    # With positions, the first convolution reads them in float32 (see PixelPosition): its 3 input
    # channels make it a small share of the network's work under any precision.
    x = layers.Conv2D(config.first_filters, 3, padding="same", kernel_initializer="he_uniform",
                      kernel_regularizer=regularizers.L2(config.l2),
                      dtype="float32" if config.pixel_position else None, name="first_conv")(x)

    skips = []
    for i, n_layers in enumerate(config.blocks):
        x, _ = dense_block(x, n_layers, config, name=f"down{i}")
        skips.append(x)
        x = transition_down(x, config, name=f"td{i}")

    _, x = dense_block(x, config.bottleneck, config, name="bottleneck")

    for i, n_layers in reversed(list(enumerate(config.blocks))):
        x = transition_up(x, skips[i], config, name=f"tu{i}")
        stack, new = dense_block(x, n_layers, config, name=f"up{i}")
        x = stack if i == 0 else new

    logits = layers.Conv2D(N_CLASSES, 1, kernel_regularizer=regularizers.L2(config.l2),
                           dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=model_name(config))


def describe(config: ModelConfig) -> dict:
    """The config as plain data, for metrics files and logs."""
    return asdict(config)
