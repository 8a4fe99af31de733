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


def test_a_linearly_decayed_outer_rate_falls_to_zero_at_the_last_step():
  optimizer = builders.outer_optimizer("sgd", 1.0, decay="linear", num_steps=4)
  weights = tf.Variable(np.zeros(1, np.float32))
  moves = []
  for _ in range(5):
    before = weights.numpy().copy()
    optimizer.apply_gradients([(tf.constant([1.0]), weights)])
    moves.append(float(before[0] - weights.numpy()[0]))
  # Steps 0..3 at 1, 3/4, 1/2, 1/4 of the rate, then none.
  np.testing.assert_allclose(moves, [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-6)
