"""Tests of mann/evaluation/metrics.py: the confidence interval."""

import numpy as np
import pytest

from mann import evaluation


def test_mean_and_ci95_by_hand():
  mean, ci95 = evaluation.mean_and_ci95([1.0, 0.0, 1.0, 1.0])
  assert mean == 0.75
  # population std of (1, 0, 1, 1) is sqrt(0.1875); 1.96 * that / sqrt(4)
  assert ci95 == pytest.approx(1.96 * np.sqrt(0.1875) / 2)


def test_empty_scores_are_rejected():
  with pytest.raises(ValueError, match="non-empty"):
    evaluation.mean_and_ci95([])
