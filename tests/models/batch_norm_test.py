"""Tests of mann/models/batch_norm.py: exact second derivatives through batch statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import models


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
