"""The conv4 backbone of the few-shot literature (Vinyals et al. 2016; MAML, Finn 2017)."""

import keras

from mann.models import batch_norm

DOWNSAMPLING = ("stride", "max_pool")


def conv4(
  *,
  num_classes: int,
  image_shape: tuple[int, int, int] = (28, 28, 1),
  num_filters: int = 64,
  downsample: str = "stride",
  batch_norm_momentum: float = 0.99,
  name: str = "conv4",
) -> keras.Model:
  """Four blocks of [3x3 conv, batch norm, ReLU], then a linear N-way head.

  `downsample="stride"` gives each conv stride 2 ('same' padding), as the MAML code
  does for Omniglot: 28 -> 14 -> 7 -> 4 -> 2, so 2*2*num_filters features.
  `downsample="max_pool"` keeps stride 1 and adds a 2x2 max pool to each block
  (4x the FLOPs): 28 -> 14 -> 7 -> 3 -> 1.

  The head is a Dense layer over the flattened features (2*2*num_filters inputs at
  28x28 with stride 2). MAML's Omniglot code averages the features over space first
  (num_filters inputs), so this head has 4x its weights there.

  Args:
    num_classes: N, the width of the output layer.
    image_shape: (H, W, C) of one input image.
    num_filters: channels of every conv.
    downsample: "stride" or "max_pool".
    batch_norm_momentum: of the running statistics (used only when a caller asks for
      running statistics: MAML uses the batch's own, see mann/meta).
    name: the Keras model's name.

  Returns:
    A built keras.Model mapping float32 [B, H, W, C] to logits [B, num_classes]; it
    runs functionally through `stateless_call(trainable, non_trainable, x)`.
  """
  layers = _blocks(image_shape, num_filters, downsample, batch_norm_momentum)
  layers += [keras.layers.Flatten(name="flatten"), keras.layers.Dense(num_classes, name="logits")]
  return keras.Sequential(layers, name=name)


def conv4_features(
  *,
  image_shape: tuple[int, int, int] = (28, 28, 1),
  num_filters: int = 64,
  downsample: str = "stride",
  batch_norm_momentum: float = 0.99,
  name: str = "conv4_features",
) -> keras.Model:
  """conv4 without its head: float32 [B, H, W, C] -> features [B, F] (the flattened
  output of the 4th block; F = 4 * num_filters for 28x28 with stride 2). The image
  encoder of a sequence model (models.mann(encoder=...))."""
  layers = _blocks(image_shape, num_filters, downsample, batch_norm_momentum)
  return keras.Sequential(layers + [keras.layers.Flatten(name="flatten")], name=name)


def _blocks(image_shape, num_filters, downsample, batch_norm_momentum) -> list:
  """The input and the four [conv, batch norm, ReLU (, pool)] blocks."""
  if downsample not in DOWNSAMPLING:
    raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
  layers = [keras.Input(shape=image_shape)]
  extent = list(image_shape[:2])  # (H, W) of the block's input
  for block in range(4):
    # A stride over an extent of 1 changes nothing ('same' padding reads the kernel's
    # centre either way), so it is 1 there: oneDNN's AMX bfloat16 filter gradient is
    # wrong (by orders of magnitude, or not finite) when a stride exceeds the input's
    # extent (results/conv_kernels_amx.json; tests/models/backbones_test.py checks both).
    strides = tuple(2 if downsample == "stride" and e > 1 else 1 for e in extent)
    extent = [-(-e // s) // (2 if downsample == "max_pool" else 1) for e, s in zip(extent, strides)]
    layers += [
      keras.layers.Conv2D(
        num_filters, 3, padding="same", strides=strides, name=f"block{block}_conv"
      ),
      batch_norm.BatchNormalization(momentum=batch_norm_momentum, name=f"block{block}_norm"),
      keras.layers.ReLU(name=f"block{block}_relu"),
    ]
    if downsample == "max_pool":
      layers.append(keras.layers.MaxPooling2D(2, name=f"block{block}_pool"))
  return layers
