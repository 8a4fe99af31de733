"""Tests of mann/analysis/adaptation.py on linear regression, where fine-tuning, the
weights' travel, the gradient and the curvature are known in closed form."""

import keras
import numpy as np
import pytest

from mann import data
from mann import meta
from mann import models
from mann.analysis import adaptation


def _least_squares(x, y, theta, inner_lr, num_steps):
  """GD on mean((F theta - y)^2), F = [x, 1]: (thetas, losses), gradient norm and top
  Hessian eigenvalue at the start."""
  features = np.concatenate([x, np.ones((len(x), 1))], axis=1)
  thetas, losses = [theta], []
  for _ in range(num_steps + 1):
    residual = features @ thetas[-1] - y
    losses.append(float(np.mean(residual**2)))
    thetas.append(thetas[-1] - inner_lr * 2 / len(y) * features.T @ residual)
  gradient = 2 / len(y) * features.T @ (features @ theta - y)
  hessian = 2 / len(y) * features.T @ features
  return thetas, float(np.linalg.norm(gradient)), float(np.linalg.eigvalsh(hessian)[-1])


def test_measures_of_a_linear_model_match_least_squares():
  keras.utils.set_random_seed(0)
  model = models.mlp(input_size=1, hidden_sizes=(), output_size=1)
  learner = meta.MAML(model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.05)
  sampler = data.SinusoidSampler(num_shots=10, num_queries=10, seed=0)
  report = adaptation.measure_adaptation(
    learner, sampler, steps=[0, 3], num_tasks=4, tasks_per_batch=2, num_curvature_tasks=4
  )
  kernel, bias = [w.numpy() for w in model.trainable_weights]
  theta = np.concatenate([kernel, bias[:, None]])
  query_mse, travel, norms, tops = [], [], [], []
  for task in range(4):
    episode = sampler.episode(task)
    x, y = episode.support_x.numpy(), episode.support_y.numpy()
    thetas, norm, top = _least_squares(x, y, theta, 0.05, 3)
    qx, qy = episode.query_x.numpy(), episode.query_y.numpy()
    query = np.concatenate([qx, np.ones((len(qx), 1))], axis=1)
    query_mse.append([float(np.mean((query @ thetas[s] - qy) ** 2)) for s in (0, 3)])
    travel.append([abs(thetas[3][0, 0] - theta[0, 0]), abs(thetas[3][1, 0] - theta[1, 0])])
    norms.append(norm)
    tops.append(top)
  means = np.mean(query_mse, axis=0)
  assert report["mse_by_steps"]["0"]["mean"] == pytest.approx(means[0], rel=1e-4)
  assert report["mse_by_steps"]["3"]["mean"] == pytest.approx(means[1], rel=1e-4)
  kernel_path, bias_path = (w.path for w in model.trainable_weights)
  np.testing.assert_allclose(
    [report["absolute_travel"][kernel_path], report["absolute_travel"][bias_path]],
    np.mean(travel, axis=0),
    rtol=1e-3,
  )
  assert report["relative_travel"][bias_path] is None  # a fresh bias starts at 0
  assert report["support_gradient_norm"]["mean"] == pytest.approx(np.mean(norms), rel=1e-4)
  assert report["support_top_hessian_eigenvalue"]["mean"] == pytest.approx(np.mean(tops), rel=1e-3)
  assert report["inner_lr"] == pytest.approx(0.05)


def test_sensitivity_of_a_linear_model_matches_least_squares():
  keras.utils.set_random_seed(1)
  model = models.mlp(input_size=1, hidden_sizes=(), output_size=1)
  learner = meta.MAML(model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.05)
  sampler = data.SinusoidSampler(num_shots=10, num_queries=10, seed=0)
  report = adaptation.measure_sensitivity(learner, sampler, num_tasks=5)
  kernel, bias = [w.numpy() for w in model.trainable_weights]
  theta = np.concatenate([kernel, bias[:, None]])
  cosines, drops, per_unit, per_relative = [], [], [], []
  for task in range(5):
    episode = sampler.episode(task)
    features = lambda x: np.concatenate([x, np.ones((len(x), 1))], axis=1)
    support_f, support_y = features(episode.support_x.numpy()), episode.support_y.numpy()
    query_f, query_y = features(episode.query_x.numpy()), episode.query_y.numpy()
    g_s = 2 / len(support_y) * support_f.T @ (support_f @ theta - support_y)
    g_q = 2 / len(query_y) * query_f.T @ (query_f @ theta - query_y)
    cosines.append(float((g_s * g_q).sum() / np.linalg.norm(g_s) / np.linalg.norm(g_q)))
    stepped = theta - 0.05 * g_s
    drop = np.mean((query_f @ theta - query_y) ** 2) - np.mean((query_f @ stepped - query_y) ** 2)
    drops.append(drop)
    change = np.linalg.norm(stepped - theta)
    per_unit.append(drop / change)
    per_relative.append(drop / (change / np.linalg.norm(theta)))
  for key, expected in (
    ("support_query_cosine", cosines),
    ("query_loss_drop", drops),
    ("query_drop_per_unit_change", per_unit),
    ("query_drop_per_relative_change", per_relative),
  ):
    np.testing.assert_allclose(report[key]["per_task"], expected, rtol=2e-3, atol=1e-6)
    assert report[key]["quantiles"]["0.5"] == pytest.approx(np.median(expected), rel=2e-3)
  assert report["num_tasks"] == 5


def test_task_update_cosines_are_those_of_each_tasks_own_reptile_update():
  keras.utils.set_random_seed(2)
  model = models.mlp(input_size=1, hidden_sizes=(4,), output_size=1)
  learner = meta.Reptile(model, objective=meta.REGRESSION, num_inner_steps=2, inner_lr=0.05)
  sampler = data.SinusoidSampler(num_shots=10, num_queries=10, seed=0)
  report = adaptation.task_update_cosines(learner, sampler, num_tasks=6, tasks_per_batch=4)
  # Each task's update alone: compute_gradients of a one-task meta-batch.
  updates = []
  for index in range(6):
    episode = sampler.episode(index)
    one = data.Episode(*(np.asarray(x)[None] for x in episode))
    gradients, _ = learner.compute_gradients(one)
    updates.append(np.concatenate([g.numpy().ravel() for g in gradients]))
  unit = np.array(updates) / np.linalg.norm(updates, axis=1, keepdims=True)
  rows, columns = np.triu_indices(6, k=1)
  cosines = (unit @ unit.T)[rows, columns]
  assert report["num_pairs"] == 15 and report["num_tasks"] == 6
  assert report["mean"] == pytest.approx(cosines.mean(), abs=1e-5)
  assert report["quantiles"]["0.5"] == pytest.approx(np.median(cosines), abs=1e-5)
  assert report["fraction_negative"] == pytest.approx((cosines < 0).mean())
  assert sum(report["histogram"]["counts"]) == 15
