"""Tests of mann/evaluation: the confidence interval and the per-step summary."""

import numpy as np
import pytest

from mann import evaluation


def test_mean_and_ci95_by_hand():
  mean, ci95 = evaluation.mean_and_ci95([1.0, 0.0, 1.0, 1.0])
  assert mean == 0.75
  # population std of (1, 0, 1, 1) is sqrt(0.1875); 1.96 * that / sqrt(4)
  assert ci95 == pytest.approx(1.96 * np.sqrt(0.1875) / 2)


def test_summary_reports_the_last_step_and_every_step():
  scores = {"accuracy": np.array([[0.2, 0.8], [0.4, 1.0]])}
  summary = evaluation.summarise(scores, "accuracy")
  assert summary["accuracy"] == pytest.approx(0.9) and summary["num_tasks"] == 2
  assert summary["accuracy_by_steps"]["0"]["mean"] == pytest.approx(0.3)
  assert summary["ci95"] == pytest.approx(1.96 * 0.1 / np.sqrt(2))


def test_empty_scores_are_rejected():
  with pytest.raises(ValueError, match="non-empty"):
    evaluation.mean_and_ci95([])
