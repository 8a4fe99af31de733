"""mann.evaluation.oracle: the least-squares sinusoid fit against a brute-force search over
the family's amplitudes and phases, inside and outside the family."""

import numpy as np

from mann.evaluation import oracle


def _grid_search(x, y, amplitudes, phases):
  """Each task's least squared error over a dense (amplitude, phase) grid: [T]."""
  a, p = np.meshgrid(amplitudes, phases, indexing="ij")
  fits = a[None, :, :, None] * np.sin(x[:, None, None, :, 0] - p[None, :, :, None])
  return ((fits - y[:, None, None, :, 0]) ** 2).sum(-1).reshape(len(x), -1).min(-1)


def test_a_family_task_is_recovered_from_its_k_points():
  rng = np.random.default_rng(0)
  amplitude = rng.uniform(0.1, 5.0, size=(20, 1, 1))
  phase = rng.uniform(0.0, np.pi, size=(20, 1, 1))
  x = rng.uniform(-5, 5, size=(20, 10, 1))
  queries = rng.uniform(-5, 5, size=(20, 50, 1))
  support, query = oracle.sinusoid_least_squares(x, amplitude * np.sin(x - phase), queries)
  np.testing.assert_allclose(support, amplitude * np.sin(x - phase), atol=1e-9)
  np.testing.assert_allclose(query, amplitude * np.sin(queries - phase), atol=1e-9)


def test_the_fit_is_the_least_squares_member_of_the_family_for_any_data():
  rng = np.random.default_rng(1)
  x = rng.uniform(-5, 5, size=(12, 5, 1))
  # Noisy family members, and functions outside it: a cosine (phase -pi/2), amplitudes
  # beyond 5 and below 0.1.
  y = np.concatenate(
    [
      2.0 * np.sin(x[:3] - 1.0) + rng.normal(0, 0.5, size=(3, 5, 1)),
      3.0 * np.cos(x[3:6]),
      9.0 * np.sin(x[6:9] - 0.5),
      0.01 * np.sin(x[9:] - 2.0) + rng.normal(0, 0.3, size=(3, 5, 1)),
    ]
  )
  support, _ = oracle.sinusoid_least_squares(x, y, x)
  fitted = ((support - y) ** 2).sum((1, 2))
  searched = _grid_search(x, y, np.linspace(0.1, 5.0, 491), np.linspace(0, np.pi, 629))
  # Never worse than the grid's best, and within its resolution of it.
  assert np.all(fitted <= searched + 1e-9)
  np.testing.assert_allclose(fitted, searched, rtol=2e-3, atol=1e-4)
  # Outside the family the fit is not the free least-squares sinusoid: a cosine of
  # amplitude 3 is fitted worse than exactly.
  assert np.all(fitted[3:9] > 1e-3)
