"""Tests of mann/evaluation/metrics.py: the confidence interval, the equivalence test."""

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


def test_equivalence_means_the_90_percent_interval_inside_the_margin():
  rng = np.random.default_rng(0)
  for shift in (0.0, 0.02, 0.04, 0.06):
    differences = rng.normal(shift, 0.3, 600)
    mean, ci95 = evaluation.mean_and_ci95(differences)
    half_width = ci95 * 1.6448536 / 1.96  # the 90% interval from the 95% one
    inside = -0.05 < mean - half_width and mean + half_width < 0.05
    result = evaluation.equivalence_test(differences, margin=0.05)
    assert result["equivalent"] == inside and result["mean"] == pytest.approx(mean)


def test_equivalence_is_claimed_at_the_margin_one_time_in_twenty():
  """Samples whose true mean sits on the margin are called equivalent at rate alpha."""
  rng = np.random.default_rng(1)
  claims = [
    evaluation.equivalence_test(rng.normal(0.05, 0.3, 400), margin=0.05)["equivalent"]
    for _ in range(4000)
  ]
  assert np.mean(claims) == pytest.approx(0.05, abs=0.012)


def test_equivalence_test_rejects_a_bad_margin_or_too_few_differences():
  with pytest.raises(ValueError, match="positive"):
    evaluation.equivalence_test([0.0, 1.0], margin=0.0)
  with pytest.raises(ValueError, match="at least 2"):
    evaluation.equivalence_test([0.0], margin=0.1)
