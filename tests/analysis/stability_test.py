"""Tests of mann/analysis/stability.py on least squares, where gradient descent and the
Hessian are known in closed form."""

import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.analysis import stability
from mann.data import episode as episode_lib


class _FixedTasks:
  """Task t: 8 support points x ~ N(0, 1), y = 3x - 1 + noise, from seed t."""

  def episode(self, task):
    rng = np.random.default_rng(task)
    x = rng.normal(size=(8, 1))
    y = 3 * x - 1 + 0.1 * rng.normal(size=(8, 1))
    return episode_lib.Episode(tf.constant(x), tf.constant(y), tf.constant(x), tf.constant(y))


def _features(model, x, head_only):
  """The design matrix of the weights the inner loop moves: [x, 1] for a linear model;
  for the head of an MLP, [hidden activations, 1]."""
  if head_only:
    x = model.layers[0](x).numpy()  # the frozen ReLU layer's outputs
  return np.concatenate([np.asarray(x), np.ones((len(x), 1))], axis=1)


def _least_squares(features, y, theta, inner_lr, num_steps):
  """Plain GD on mean((F theta - y)^2): the losses along the way and the Hessian's top
  eigenvalue, 2/B F'F."""
  hessian = 2 / len(y) * features.T @ features
  losses = []
  for _ in range(num_steps + 1):
    residual = features @ theta - y
    losses.append(float(np.mean(residual**2)))
    theta = theta - inner_lr * 2 / len(y) * features.T @ residual
  return losses, float(np.linalg.eigvalsh(hessian)[-1])


@pytest.mark.parametrize("head_only", [False, True])
@pytest.mark.parametrize("rate_times_curvature", [1.5, 2.5])  # stable below 2
def test_adaptation_and_curvature_match_least_squares(float64, head_only, rate_times_curvature):
  del float64
  tf.keras.utils.set_random_seed(0)
  model = models.mlp(input_size=1, hidden_sizes=(3,) if head_only else (), output_size=1)
  episode = _FixedTasks().episode(0)
  features = _features(model, episode.support_x, head_only)
  head = model.layers[-1]
  theta = np.concatenate([head.kernel.numpy(), head.bias.numpy()[:, None]])
  _, curvature = _least_squares(features, episode.support_y.numpy(), theta, 0.0, 0)
  inner_lr = rate_times_curvature / curvature
  learner = meta.MAML(
    model,
    objective=meta.REGRESSION,
    num_inner_steps=1,
    inner_lr=inner_lr,
    task_mapping="map_fn",
    adapted_weights=models.adapted_weights(model, "head" if head_only else "all"),
  )
  report = stability.adaptation_stability(
    learner, _FixedTasks(), num_tasks=1, num_steps=6, eigen_steps=2, tasks_for_scale=1
  )
  expected_losses, _ = _least_squares(features, episode.support_y.numpy(), theta, inner_lr, 6)
  task = report["tasks"][0]
  np.testing.assert_allclose(task["support_loss_by_step"], expected_losses, rtol=1e-8)
  assert report["median_top_eigenvalue_at_start"] == pytest.approx(curvature, rel=1e-6)
  assert report["stability_bound"] == pytest.approx(2 / inner_lr)
  diverges = rate_times_curvature > 2
  assert report["diverging_tasks"] == ([0] if diverges else [])
  if diverges:  # a quadratic's curvature is the same at every step
    np.testing.assert_allclose(task["top_hessian_eigenvalue_by_step"], [curvature] * 2, rtol=1e-6)


def test_learners_without_one_fixed_inner_rate_are_refused():
  model = models.mlp(input_size=1, hidden_sizes=(), output_size=1)
  learned = meta.MAML(
    model, objective=meta.REGRESSION, num_inner_steps=2, inner_lr=0.1, learn_inner_lrs=True
  )
  with pytest.raises(ValueError, match="one fixed inner rate"):
    stability.adaptation_stability(learned, _FixedTasks(), num_tasks=1, num_steps=2)
  with pytest.raises(ValueError, match="learner with an inner loop"):
    stability.adaptation_stability(object(), _FixedTasks(), num_tasks=1, num_steps=2)
