"""Tests of mann/models/batch_norm.py: exact second derivatives through batch statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import models
from mann.models import batch_norm


def _hessian_vector_products(layer, x, w, v, h=1e-5):
  """(analytic, finite-difference) H v of f(x) = sum(w * layer(x, training=True))."""

  def gradient(inputs):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      value = tf.reduce_sum(w * layer(inputs, training=True))
    return tape.gradient(value, inputs)

  with tf.GradientTape() as outer:
    outer.watch(x)
    g = gradient(x)
    directional = tf.reduce_sum(g * v)
  analytic = outer.gradient(directional, x)
  numeric = (gradient(x + h * v) - gradient(x - h * v)) / (2 * h)
  return analytic.numpy(), numeric.numpy()


def _inputs():
  rng = np.random.default_rng(0)
  return [tf.constant(rng.normal(size=(6, 4)), tf.float64) for _ in range(3)]


def test_second_derivatives_match_finite_differences():
  layer = models.BatchNormalization(dtype="float64")
  layer.build((None, 4))
  x, w, v = _inputs()
  analytic, numeric = _hessian_vector_products(layer, x, w, v)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_keras_layer_loses_a_second_order_term():
  # Why the layer exists: if this starts to fail, Keras has fixed tf.nn.moments'
  # stop_gradient and models.BatchNormalization can go.
  layer = keras.layers.BatchNormalization(dtype="float64")
  layer.build((None, 4))
  x, w, v = _inputs()
  analytic, numeric = _hessian_vector_products(layer, x, w, v)
  assert np.abs(analytic - numeric).max() > 1e-3


@pytest.mark.parametrize("training", [False, True])
def test_same_outputs_and_statistics_as_keras(training):
  ours = models.BatchNormalization(momentum=0.9)
  theirs = keras.layers.BatchNormalization(momentum=0.9)
  x = tf.random.stateless_normal([8, 5, 5, 3], seed=[1, 2]) * 3.0 + 1.0
  ours.build(x.shape)
  theirs.build(x.shape)
  np.testing.assert_allclose(
    ours(x, training=training), theirs(x, training=training), rtol=1e-5, atol=1e-5
  )
  for a, b in zip(ours.weights, theirs.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def _op_by_op_batch_norm(x, scale, offset, epsilon):
  """The training-mode formula with every gradient path (as models.BatchNormalization)."""
  mean = tf.reduce_mean(x, axis=[0, 1, 2])
  variance = tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2])
  return (x - mean) * tf.math.rsqrt(variance + epsilon) * scale + offset


def _first_and_second_derivatives(batch_norm, x, scale, offset, w, directions):
  """The first derivatives of sum(w * y) in x, scale, offset, and the derivatives in
  x, scale, offset and w of their inner products with `directions`: every block of
  the second derivative, each upstream gradient (of dx, dscale, doffset) nonzero."""
  inputs = [x, scale, offset]
  with tf.GradientTape() as outer:
    outer.watch(inputs + [w])
    with tf.GradientTape() as inner:
      inner.watch(inputs)
      value = tf.reduce_sum(w * tf.cast(batch_norm(*inputs), w.dtype))
    first = inner.gradient(value, inputs)
    projected = sum(tf.reduce_sum(tf.cast(f, w.dtype) * d) for f, d in zip(first, directions))
  second = outer.gradient(
    projected, inputs + [w], unconnected_gradients=tf.UnconnectedGradients.ZERO
  )
  return [np.asarray(tf.cast(t, tf.float64)) for t in first + second]


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("bfloat16", 1e-2)])
def test_fused_closed_form_derivatives_match_the_op_by_op_formula(dtype, tolerance):
  """First and second derivatives of batch_norm.fused_batch_norm_training against autodiff
  of the plain formula in float64 (the formula models.BatchNormalization computes,
  checked against finite differences above), at the same inputs."""
  rng = np.random.default_rng(3)
  shape, channels, epsilon = (4, 5, 5, 6), 6, 1e-3
  x, w, v_x = (rng.normal(size=shape) for _ in range(3))
  x = 2.0 * x + 0.5
  scale, offset, v_scale, v_offset = (rng.normal(size=channels) for _ in range(4))
  x_in = tf.cast(tf.constant(x, tf.float32), dtype)
  as_32 = lambda a: tf.constant(a, tf.float32)

  def fused(x, scale, offset):
    return batch_norm.fused_batch_norm_training(x, scale, offset, epsilon=epsilon)[0]

  got = _first_and_second_derivatives(
    fused,
    x_in,
    as_32(scale),
    as_32(offset),
    as_32(w),
    [as_32(v_x), as_32(v_scale), as_32(v_offset)],
  )
  as_64 = lambda a: tf.constant(np.asarray(a, np.float64))
  want = _first_and_second_derivatives(
    lambda x, s, o: _op_by_op_batch_norm(x, s, o, epsilon),
    as_64(tf.cast(x_in, tf.float64)),  # the same (rounded) inputs
    as_64(scale),
    as_64(offset),
    as_64(w),
    [as_64(np.float32(v_x)), as_64(v_scale), as_64(v_offset)],
  )
  names = ["dx", "dscale", "doffset", "d2/dx", "d2/dscale", "d2/doffset", "d2/dw"]
  for name, g, r in zip(names, got, want):
    if name == "d2/doffset":  # the offset shifts y only: no second derivative
      assert np.abs(g).max() == 0 and np.abs(r).max() < 1e-12
      continue
    error = np.linalg.norm(g - r) / np.linalg.norm(r)
    assert error < tolerance, f"{name}: relative error {error:.2e}"


def test_fused_closed_form_forward_is_tfs_fused_kernel():
  x = tf.random.stateless_normal([3, 4, 4, 5], seed=[4, 5]) * 2.0 + 1.0
  scale = tf.random.stateless_normal([5], seed=[6, 7])
  offset = tf.random.stateless_normal([5], seed=[8, 9])
  y, mean, variance = batch_norm.fused_batch_norm_training(x, scale, offset, epsilon=1e-3)
  want_y, want_mean, _ = tf.compat.v1.nn.fused_batch_norm(
    x, scale, offset, epsilon=1e-3, data_format="NHWC", is_training=True
  )
  np.testing.assert_array_equal(y, want_y)
  np.testing.assert_allclose(mean, want_mean, rtol=0, atol=0)
  np.testing.assert_allclose(variance, tf.math.reduce_variance(x, axis=[0, 1, 2]), rtol=1e-5)
  with tf.GradientTape() as tape:  # the moments feed only the moving statistics
    tape.watch(x)
    _, mean, variance = batch_norm.fused_batch_norm_training(x, scale, offset, epsilon=1e-3)
    total = tf.reduce_sum(mean) + tf.reduce_sum(variance)
  assert tape.gradient(total, x) is None
