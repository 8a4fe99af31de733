"""mann/evaluation/representations.py against direct computations on small arrays."""

import numpy as np
import pytest

from mann.evaluation import representations


def test_relative_travel_is_the_norm_of_the_move_over_the_norm_of_the_start():
  before = [np.array([3.0, 4.0]), np.zeros((2, 2)), np.zeros(3)]
  after = [np.array([3.0, 5.0]), np.zeros((2, 2)), np.ones(3)]
  assert representations.relative_travel(before, after) == [0.2, 0.0, float("inf")]
  with pytest.raises(ValueError, match="shapes differ"):
    representations.relative_travel([np.zeros(2)], [np.zeros(3)])


def _hsic_cka(x, y):
  """CKA from its definition: HSIC with centring matrix H, linear kernels."""
  n = len(x)
  h = np.eye(n) - np.ones((n, n)) / n
  k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
  hsic = lambda a, b: np.trace(a @ b)
  return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_equals_the_hsic_definition_and_its_invariances():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(20, 6))
  y = x @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(20, 4))
  np.testing.assert_allclose(representations.linear_cka(x, y), _hsic_cka(x, y), rtol=1e-12)
  assert representations.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
  rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  assert representations.linear_cka(x, 3.0 * x @ rotation + 7.0) == pytest.approx(1.0,
                                                                                  abs=1e-12)
  unrelated = rng.normal(size=(20, 6))
  assert representations.linear_cka(x, unrelated) < 0.6
  # Activations of any rank are flattened per example.
  images = rng.normal(size=(20, 2, 3))
  np.testing.assert_allclose(representations.linear_cka(images, images.reshape(20, 6)), 1.0)
  with pytest.raises(ValueError, match="same examples"):
    representations.linear_cka(x, x[:5])


def test_mean_pairwise_cosine_of_a_two_task_linear_model_by_hand():
  # y = w . x from w = 0, squared loss (w . x - y)^2 on one point per task: task 1
  # x = (1, 0), y = 2; task 2 x = (1, 1), y = 2. The gradient at w = 0 is -2 y x, so one
  # SGD step at rate 1 moves w by 2 y x: (4, 0) and (4, 4), whose cosine is 1 / sqrt(2).
  points = [(np.array([1.0, 0.0]), 2.0), (np.array([1.0, 1.0]), 2.0)]
  updates = np.array([2 * y * x for x, y in points])
  np.testing.assert_allclose(updates, [[4.0, 0.0], [4.0, 4.0]])
  assert representations.mean_pairwise_cosine(updates) == pytest.approx(1 / np.sqrt(2))
  three = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]])  # cosines -1, 0, 0
  assert representations.mean_pairwise_cosine(three) == pytest.approx(-1 / 3)
  with pytest.raises(ValueError, match="two tasks"):
    representations.mean_pairwise_cosine(np.ones((1, 3)))
