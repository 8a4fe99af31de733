"""Central finite differences, the independent check of analytic (meta-)gradients."""

import numpy as np


def finite_difference_gradients(loss_fn, variables, h=1e-5):
  """Central differences of loss_fn() in every element of every variable."""
  gradients = []
  for variable in variables:
    original = np.array(variable.numpy())
    gradient = np.zeros_like(original)
    for index in np.ndindex(original.shape):  # shape () yields the one index ()
      for sign in (1.0, -1.0):
        shifted = original.copy()
        shifted[index] += sign * h
        variable.assign(shifted)
        gradient[index] += sign * float(loss_fn()) / (2 * h)
      variable.assign(original)
    gradients.append(gradient)
  return gradients


def assert_gradients_close(analytic, numeric, rtol):
  flat_a = np.concatenate([np.ravel(a) for a in analytic])
  flat_n = np.concatenate([np.ravel(n) for n in numeric])
  error = np.linalg.norm(flat_a - flat_n) / np.linalg.norm(flat_n)
  assert error < rtol, error
  np.testing.assert_allclose(flat_a, flat_n, rtol=1e-4, atol=1e-8)


def assert_directional_derivatives_close(loss_fn, variables, analytic, *, rtol, seed=0, h=1e-5):
  """Checks each variable's analytic gradient along one random direction against the
  central difference of loss_fn() along it: a test of every variable's gradient at two
  loss evaluations per variable (instead of two per element)."""
  rng = np.random.default_rng(seed)
  numeric, expected = [], []
  for variable, gradient in zip(variables, analytic):
    original = np.array(variable.numpy())
    direction = rng.normal(size=original.shape)
    direction /= np.linalg.norm(direction)
    values = []
    for sign in (1.0, -1.0):
      variable.assign(original + sign * h * direction)
      values.append(float(loss_fn()))
    variable.assign(original)
    numeric.append((values[0] - values[1]) / (2 * h))
    expected.append(float(np.sum(np.asarray(gradient) * direction)))
  numeric, expected = np.array(numeric), np.array(expected)
  error = np.linalg.norm(numeric - expected) / np.linalg.norm(expected)
  assert error < rtol, (error, numeric, expected)
