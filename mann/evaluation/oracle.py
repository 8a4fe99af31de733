"""The best any learner can do from K points when it knows the task family: a least-squares
fit within the family (Finn et al. 2017's sinusoids, y = A sin(x - phase))."""

import numpy as np

from mann.data import sinusoid


def _family_coefficients(amplitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
  """A sin(x - phase) = a sin x + b cos x: [..., 2] of (a, b)."""
  return np.stack([amplitude * np.cos(phase), -amplitude * np.sin(phase)], axis=-1)


def _boundary(
  amplitude_range: tuple[float, float], phase_range: tuple[float, float], num_points: int
) -> np.ndarray:
  """(a, b) on the edge of the family's region: [4 * num_points, 2]."""
  amplitudes = np.linspace(*amplitude_range, num_points)
  phases = np.linspace(*phase_range, num_points)
  edges = [
    _family_coefficients(np.full(num_points, amplitude_range[0]), phases),
    _family_coefficients(np.full(num_points, amplitude_range[1]), phases),
    _family_coefficients(amplitudes, np.full(num_points, phase_range[0])),
    _family_coefficients(amplitudes, np.full(num_points, phase_range[1])),
  ]
  return np.concatenate(edges)


def sinusoid_least_squares(
  support_x: np.ndarray,
  support_y: np.ndarray,
  query_x: np.ndarray,
  *,
  amplitude_range: tuple[float, float] = sinusoid.AMPLITUDE_RANGE,
  phase_range: tuple[float, float] = sinusoid.PHASE_RANGE,
  num_boundary_points: int = 4001,
) -> tuple[np.ndarray, np.ndarray]:
  """Each task's least-squares fit of A sin(x - phase), A and phase within their ranges.

  The fit is linear in (a, b) = (A cos phase, -A sin phase); where the unconstrained
  optimum lies outside the family's region, the constrained one lies on its edge, which
  is searched on num_boundary_points per side.

  Args:
    support_x, support_y: [T, K, 1], the K points of each of T tasks.
    query_x: [T, Q, 1].
    amplitude_range, phase_range: the family's (low, high), phase in radians within
      [0, pi] (the MAML paper's).

  Returns:
    (support predictions [T, K, 1], query predictions [T, Q, 1]) of the fit, float64.
  """
  if not 0.0 <= phase_range[0] <= phase_range[1] <= np.pi:
    raise ValueError(f"phase_range must lie within [0, pi], got {phase_range}")
  x = np.asarray(support_x, np.float64)[..., 0]
  y = np.asarray(support_y, np.float64)[..., 0]
  basis = np.stack([np.sin(x), np.cos(x)], axis=-1)  # [T, K, 2]
  gram = np.einsum("tki,tkj->tij", basis, basis)
  moment = np.einsum("tki,tk->ti", basis, y)
  free = np.linalg.solve(gram, moment[..., None])[..., 0]  # [T, 2]
  amplitude = np.hypot(free[:, 0], free[:, 1])
  phase = np.arctan2(-free[:, 1], free[:, 0])
  inside = (
    (amplitude >= amplitude_range[0])
    & (amplitude <= amplitude_range[1])
    & (phase >= phase_range[0])
    & (phase <= phase_range[1])
  )
  edge = _boundary(amplitude_range, phase_range, num_boundary_points)  # [E, 2]
  # Sum of squared errors of every edge point for every task: y'y - 2 c'm + c'Gc.
  errors = (
    np.einsum("tk,tk->t", y, y)[:, None]
    - 2 * moment @ edge.T
    + np.einsum("ei,tij,ej->te", edge, gram, edge)
  )
  coefficients = np.where(inside[:, None], free, edge[np.argmin(errors, axis=1)])

  def predict(inputs):
    inputs = np.asarray(inputs, np.float64)[..., 0]
    values = coefficients[:, None, 0] * np.sin(inputs) + coefficients[:, None, 1] * np.cos(inputs)
    return values[..., None]

  return predict(support_x), predict(query_x)
