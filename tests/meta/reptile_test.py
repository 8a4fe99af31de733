"""Tests of mann/meta/reptile.py against a hand-computed update on a linear model."""

import keras
import numpy as np
import tensorflow as tf

from mann import meta
from mann.data import episode as episode_lib


def test_reptile_update_equals_the_hand_computed_one():
  # y = w x + b, MSE; two SGD steps of rate a per task, worked in numpy.
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((1,), dtype="float64"), keras.layers.Dense(1, dtype="float64")]
  )
  model.set_weights([np.array([[0.5]]), np.array([0.1])])
  rng = np.random.default_rng(0)
  xs, ys = rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4, 1))
  tasks = episode_lib.Episode(tf.constant(xs), tf.constant(ys), tf.constant(xs), tf.constant(ys))
  learner = meta.Reptile(model, objective=meta.REGRESSION, num_inner_steps=2, inner_lr=0.05)
  gradients, _ = learner.compute_gradients(tasks)

  expected_w, expected_b = 0.0, 0.0
  for x, y in zip(xs[..., 0], ys[..., 0]):
    w, b = 0.5, 0.1
    for _ in range(2):
      residual = w * x + b - y
      w, b = w - 0.05 * np.mean(2 * residual * x), b - 0.05 * np.mean(2 * residual)
    expected_w += (0.5 - w) / 3
    expected_b += (0.1 - b) / 3
  np.testing.assert_allclose(gradients[0].numpy(), [[expected_w]], rtol=1e-12)
  np.testing.assert_allclose(gradients[1].numpy(), [expected_b], rtol=1e-12)
  # An outer SGD step of size epsilon moves the weights toward the adapted ones.
  keras.optimizers.SGD(0.5).apply(gradients, model.trainable_variables)
  np.testing.assert_allclose(model.get_weights()[0], [[0.5 - 0.5 * expected_w]], rtol=1e-12)
