"""mann/analysis/representations.py against direct computations on small arrays."""

import numpy as np
import pytest

from mann.analysis import representations


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
  centred_x, centred_y = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h  # K and L of the paper
  hsic = lambda a, b: np.trace(a @ b)
  return hsic(centred_x, centred_y) / np.sqrt(
    hsic(centred_x, centred_x) * hsic(centred_y, centred_y)
  )


def test_linear_cka_equals_the_hsic_definition_and_its_invariances():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(20, 6))
  y = x @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(20, 4))
  np.testing.assert_allclose(representations.linear_cka(x, y), _hsic_cka(x, y), rtol=1e-12)
  assert representations.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
  rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  assert representations.linear_cka(x, 3.0 * x @ rotation + 7.0) == pytest.approx(1.0, abs=1e-12)
  unrelated = rng.normal(size=(20, 6))
  assert representations.linear_cka(x, unrelated) < 0.6
  # Activations of any rank are flattened per example.
  images = rng.normal(size=(20, 2, 3))
  np.testing.assert_allclose(representations.linear_cka(images, images.reshape(20, 6)), 1.0)
  with pytest.raises(ValueError, match="same examples"):
    representations.linear_cka(x, x[:5])
