"""experiments/builders.py: the outer optimisers that --outer_optimizer names."""

import numpy as np
import pytest
import tensorflow as tf

from experiments import builders


@pytest.mark.parametrize(
  "name, first_step",
  [
    ("sgd", lambda lr, g: lr * g),
    # Mean square 0.05 g^2 after one step of decay 0.95: each weight moves lr / sqrt(0.05).
    ("rmsprop", lambda lr, g: lr * np.sign(g) / np.sqrt(0.05)),
    # Adam's bias-corrected first step moves each weight by lr.
    ("adam", lambda lr, g: lr * np.sign(g)),
  ],
)
def test_the_first_step_of_each_outer_optimizer(name, first_step):
  gradient = np.array([3.0, -0.5, 2.0], np.float32)
  weights = tf.Variable(np.zeros(3, np.float32))
  optimizer = builders.outer_optimizer(name, 0.01)
  optimizer.apply_gradients([(tf.constant(gradient), weights)])
  np.testing.assert_allclose(-weights.numpy(), first_step(0.01, gradient), rtol=1e-4)
