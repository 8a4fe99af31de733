"""Tests of mann/models/convolutional.py and feedforward.py against numpy forward passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import models


def _same_conv(x, kernel, bias, stride):
  """numpy 'same' conv, [B, H, W, C] * [3, 3, C, F]: TF pads (total - total // 2) after."""
  size = x.shape[1]
  out = -(-size // stride)
  pad_total = max((out - 1) * stride + 3 - size, 0)
  before = pad_total // 2
  padded = np.pad(x, ((0, 0), (before, pad_total - before), (before, pad_total - before), (0, 0)))
  result = np.zeros((x.shape[0], out, out, kernel.shape[-1]))
  for i in range(3):
    for j in range(3):
      patch = padded[:, i : i + stride * out : stride, j : j + stride * out : stride, :]
      result += patch @ kernel[i, j]
  return result + bias


def _numpy_conv4(model, x, downsample, training):
  """conv4 forward in numpy from the model's weights, batch norm in either mode."""
  h = x.astype(np.float64)
  for block in range(4):
    kernel, bias = (w.numpy() for w in model.get_layer(f"block{block}_conv").weights)
    h = _same_conv(h, kernel, bias, 2 if downsample == "stride" else 1)
    norm = model.get_layer(f"block{block}_norm")
    gamma, beta, moving_mean, moving_var = (w.numpy() for w in norm.weights)
    mean, var = (
      (h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))) if training else (moving_mean, moving_var)
    )
    h = np.maximum(gamma * (h - mean) / np.sqrt(var + norm.epsilon) + beta, 0.0)
    if downsample == "max_pool":
      n = h.shape[1] // 2
      h = h[:, : 2 * n, : 2 * n].reshape(h.shape[0], n, 2, n, 2, -1).max(axis=(2, 4))
  kernel, bias = (w.numpy() for w in model.get_layer("logits").weights)
  return h.reshape(h.shape[0], -1) @ kernel + bias


def _randomise(model, seed):
  """Non-trivial weights everywhere, batch-norm statistics included."""
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    values = rng.normal(0.0, 0.3, weight.shape)
    if "variance" in weight.path:
      values = np.abs(values) + 0.5
    weight.assign(values.astype(np.float32))


@pytest.mark.parametrize(
  "downsample,size,features",
  # 8x8 with stride 2 reaches a 1x1 input at the 4th block, whose stride the model sets
  # to 1; the numpy pass keeps stride 2 everywhere: the same values.
  [("stride", 28, 2 * 2 * 64), ("max_pool", 28, 64), ("stride", 8, 64)],
)
@pytest.mark.parametrize("training", [False, True])
def test_conv4_matches_numpy(downsample, size, features, training):
  model = models.conv4(num_classes=5, downsample=downsample, image_shape=(size, size, 1))
  _randomise(model, 0)
  assert model.get_layer("logits").weights[0].shape == (features, 5)
  x = np.random.default_rng(1).uniform(size=(6, size, size, 1)).astype(np.float32)
  got = model(x, training=training).numpy()
  np.testing.assert_allclose(
    got, _numpy_conv4(model, x, downsample, training), rtol=2e-4, atol=2e-4
  )


def test_conv4_strides_are_1_only_where_the_input_is_1_wide():
  strides = lambda model: [model.get_layer(f"block{b}_conv").strides for b in range(4)]
  assert strides(models.conv4(num_classes=5)) == [(2, 2)] * 4  # 28 -> 14 -> 7 -> 4 -> 2
  # 8 x 2 -> 4 x 1 -> 2 x 1 -> 1 x 1 -> 1 x 1
  assert strides(models.conv4(num_classes=5, image_shape=(8, 2, 1))) == [
    (2, 2),
    (2, 1),
    (2, 1),
    (1, 1),
  ]


@pytest.mark.parametrize("size", [28, 8])
def test_conv4_kernel_gradients_in_bfloat16_are_near_float32s(size):
  """On a CPU with AMX, oneDNN's bfloat16 filter gradient of a stride-2 convolution over
  a 1x1 input was wrong by orders of magnitude (seen on a Xeon with amx_bf16, TF 2.21;
  results/conv_kernels_amx.json): conv4 over 8x8 images now avoids that stride.
  Elsewhere this checks bfloat16 round-off only."""
  full = models.conv4(num_classes=5, image_shape=(size, size, 1))
  _randomise(full, 0)
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    mixed = models.conv4(num_classes=5, image_shape=(size, size, 1))
  finally:
    keras.config.set_dtype_policy(previous)
  mixed.set_weights(full.get_weights())
  # The wrong gradients came and went between calls (the kernel reads memory it never
  # wrote): 5 batches of 5 images caught them every time the fix was undone.
  for seed in range(5):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(5, size, size, 1)).astype(np.float32)
    projection = rng.normal(size=(5, 5)).astype(np.float32)
    gradients = {}
    for name, model in (("float32", full), ("mixed", mixed)):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32) * projection)
      kernels = [model.get_layer(f"block{b}_conv").kernel for b in range(4)]
      gradients[name] = [g.numpy() for g in tape.gradient(loss, kernels)]
    for block, (expected, got) in enumerate(zip(gradients["float32"], gradients["mixed"])):
      # Measured: 2.6% to 12% (norm of the difference over the norm), the same with
      # oneDNN held below AMX (ONEDNN_MAX_CPU_ISA=AVX512_CORE): bfloat16's round-off,
      # amplified by batch norm's cancellations on the way back to the first block.
      error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
      assert error < 0.25, f"batch {seed}, block {block}: {error}"


def test_conv4_parameter_count_is_the_papers_architecture():
  model = models.conv4(num_classes=5)
  conv_params = (3 * 3 * 1 * 64 + 64) + 3 * (3 * 3 * 64 * 64 + 64)
  norm_params = 4 * 2 * 64
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == (
    conv_params + norm_params + 256 * 5 + 5
  )
  # Only the running batch-norm statistics are non-trainable.
  assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 4 * 2 * 64


@pytest.mark.parametrize("training", [False, True])
def test_stateless_call_runs_other_weights_without_touching_the_model(training):
  model = models.conv4(num_classes=5)
  other = models.conv4(num_classes=5)
  _randomise(model, 0)
  _randomise(other, 1)
  before = [w.numpy().copy() for w in model.weights]
  other_statistics = [w.numpy().copy() for w in other.non_trainable_weights]
  x = tf.random.stateless_uniform([4, 28, 28, 1], seed=[0, 1])
  logits, new_statistics = model.stateless_call(
    [w.value for w in other.trainable_weights],
    [w.value for w in other.non_trainable_weights],
    x,
    training=training,
  )
  for weight, value in zip(model.weights, before):
    np.testing.assert_array_equal(weight.numpy(), value)
  # The stateful call gives the same logits, and in training mode moves its running
  # statistics to exactly what stateless_call returned; in inference mode nothing moves.
  np.testing.assert_allclose(logits, other(x, training=training), rtol=1e-5, atol=1e-5)
  for returned, stateful, old in zip(new_statistics, other.non_trainable_weights, other_statistics):
    np.testing.assert_allclose(returned, stateful.numpy(), rtol=1e-6, atol=1e-6)
    assert np.abs(returned - old).max() > 1e-4 if training else np.array_equal(returned, old)


def test_mlp_matches_numpy_and_stateless_call():
  model = models.mlp(input_size=1, hidden_sizes=(40, 40), output_size=1)
  assert [w.shape for w in model.trainable_weights] == [
    (1, 40),
    (40,),
    (40, 40),
    (40,),
    (40, 1),
    (1,),
  ]
  x = np.linspace(-5, 5, 11, dtype=np.float32)[:, None]
  w = [v.numpy().astype(np.float64) for v in model.trainable_weights]
  hidden = np.maximum(np.maximum(x @ w[0] + w[1], 0) @ w[2] + w[3], 0)
  np.testing.assert_allclose(model(x), hidden @ w[4] + w[5], rtol=1e-5, atol=1e-6)
  doubled = [2.0 * v.value for v in model.trainable_weights]
  out, _ = model.stateless_call(doubled, [], x)
  w2 = [2.0 * v for v in w]
  hidden = np.maximum(np.maximum(x @ w2[0] + w2[1], 0) @ w2[2] + w2[3], 0)
  np.testing.assert_allclose(out, hidden @ w2[4] + w2[5], rtol=1e-5, atol=1e-5)


def test_conv4_rejects_unknown_downsampling():
  with pytest.raises(ValueError, match="downsample must be one of"):
    models.conv4(num_classes=5, downsample="avg_pool")
