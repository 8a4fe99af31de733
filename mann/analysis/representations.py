"""How far adaptation moves a network: weight travel and representation similarity.

  relative_travel: ||w_after - w_before|| / ||w_before|| per weight tensor;
  linear_cka: linear centred kernel alignment (Kornblith et al. 2019) between two sets
    of activations of the same examples, 1 for the same representation up to an
    orthogonal transform and an isotropic scaling.
(How the tasks of a meta-batch pull the initialisation, in the training graph:
mann.meta.gradient_learner.task_update_cosine.)

All take and return numpy arrays / floats (float64), independent of TensorFlow.
"""

from typing import Sequence

import numpy as np


def relative_travel(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> list[float]:
  """Per weight tensor, ||after - before|| / ||before|| (Frobenius); inf where before is 0
  and after is not, 0 where both are 0."""
  if len(before) != len(after):
    raise ValueError(f"{len(before)} weights before, {len(after)} after")
  travel = []
  for b, a in zip(before, after):
    b, a = np.asarray(b, np.float64), np.asarray(a, np.float64)
    if b.shape != a.shape:
      raise ValueError(f"weight shapes differ: {b.shape} before, {a.shape} after")
    moved, size = np.linalg.norm(a - b), np.linalg.norm(b)
    travel.append(float(moved / size) if size > 0 else (0.0 if moved == 0 else float("inf")))
  return travel


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
  """Linear CKA of activations x [n, p] and y [n, q] of the same n examples.

  CKA = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F), columns centred
  (Kornblith et al. 2019, eq. for the linear kernel). Activations of any rank are
  flattened per example.
  """
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  if len(x) != len(y):
    raise ValueError(f"x has {len(x)} examples, y {len(y)}: CKA compares the same examples")
  x = x - x.mean(axis=0)
  y = y - y.mean(axis=0)
  # The same quantities through the n x n Gram matrices (||Y'X||^2 = <XX', YY'>,
  # ||X'X|| = ||XX'||): O(n^2 p), not O(n p^2), for few examples of wide layers.
  gram_x, gram_y = x @ x.T, y @ y.T
  cross = np.sum(gram_x * gram_y)
  norms = np.linalg.norm(gram_x) * np.linalg.norm(gram_y)
  if norms == 0:
    raise ValueError("CKA of a constant representation is undefined")
  return float(cross / norms)
