"""Summaries of per-task scores: mean and 95% confidence interval."""

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
