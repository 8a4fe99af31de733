"""Summaries of per-task scores: mean and 95% confidence interval; equivalence tests of
paired differences."""

import math

import numpy as np


def mean_and_ci95(values) -> tuple[float, float]:
  """(mean, 1.96 * std / sqrt(n)) over the first axis, the MAML code's interval.

  Args:
    values: [n] per-task scores (n >= 1).
  Returns:
    Python floats; the interval is 0 for a single task.
  """
  values = np.asarray(values, np.float64)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f"need a non-empty vector of per-task scores, got shape {values.shape}")
  return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))


def _normal_upper_tail(z: float) -> float:
  return 0.5 * math.erfc(z / math.sqrt(2.0))


def equivalence_test(differences, margin: float, alpha: float = 0.05) -> dict:
  """Two one-sided tests (TOST) that paired differences lie within ±margin.

  With normal quantiles, as mean_and_ci95 (fine for the hundreds of tasks of an
  evaluation): equivalent at level alpha exactly when the (1 - 2 alpha) interval of the
  mean lies inside (-margin, margin).

  Args:
    differences: [n] per-task differences (n >= 2), in the units of margin.
    margin: the largest difference that counts as none, > 0.
    alpha: the level of each one-sided test.

  Returns:
    mean, margin, p_value (the larger of the two one-sided p-values) and equivalent
    (p_value < alpha), as Python scalars.
  """
  values = np.asarray(differences, np.float64)
  if values.ndim != 1 or values.size < 2:
    raise ValueError(f"need a vector of at least 2 differences, got shape {values.shape}")
  if not margin > 0:
    raise ValueError(f"the equivalence margin must be positive, got {margin}")
  mean = float(values.mean())
  standard_error = float(values.std() / np.sqrt(values.size))
  if standard_error == 0.0:
    p_value = 0.0 if abs(mean) < margin else 1.0
  else:
    above_lower = _normal_upper_tail((mean + margin) / standard_error)
    below_upper = _normal_upper_tail((margin - mean) / standard_error)
    p_value = max(above_lower, below_upper)
  return {"mean": mean, "margin": float(margin), "p_value": p_value, "equivalent": p_value < alpha}
