"""Tests of mann/meta/reptile.py against a hand-computed update on a linear model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.analysis import long_adaptation
from mann.data import episode as episode_lib


def test_reptile_update_equals_the_hand_computed_one():
  # y = w x + b, MSE; two SGD steps of rate a per task, worked in numpy.
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((1,), dtype="float64"), keras.layers.Dense(1, dtype="float64")]
  )
  model.set_weights([np.array([[0.5]]), np.array([0.1])])
  rng = np.random.default_rng(0)
  xs, ys = rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4, 1))
  tasks = episode_lib.Episode(tf.constant(xs), tf.constant(ys), tf.constant(xs), tf.constant(ys))
  learner = meta.Reptile(model, objective=meta.REGRESSION, num_inner_steps=2, inner_lr=0.05)
  gradients, _ = learner.compute_gradients(tasks)

  expected_w, expected_b = 0.0, 0.0
  for x, y in zip(xs[..., 0], ys[..., 0]):
    w, b = 0.5, 0.1
    for _ in range(2):
      residual = w * x + b - y
      w, b = w - 0.05 * np.mean(2 * residual * x), b - 0.05 * np.mean(2 * residual)
    expected_w += (0.5 - w) / 3
    expected_b += (0.1 - b) / 3
  np.testing.assert_allclose(gradients[0].numpy(), [[expected_w]], rtol=1e-12)
  np.testing.assert_allclose(gradients[1].numpy(), [expected_b], rtol=1e-12)
  # An outer SGD step of size epsilon moves the weights toward the adapted ones.
  keras.optimizers.SGD(0.5).apply(gradients, model.trainable_variables)
  np.testing.assert_allclose(model.get_weights()[0], [[0.5 - 0.5 * expected_w]], rtol=1e-12)


def _numpy_adam(x, y, w, b, rate, num_steps):
  """Adam with beta1 0, beta2 0.999, epsilon 1e-8 on mean((w x + b - y)^2): the
  parameters after each step."""
  v_w = v_b = 0.0
  trajectory = []
  for t in range(1, num_steps + 1):
    residual = w * x + b - y
    g_w, g_b = np.mean(2 * residual * x), np.mean(2 * residual)
    v_w = 0.999 * v_w + 0.001 * g_w**2
    v_b = 0.999 * v_b + 0.001 * g_b**2
    correction = 1 - 0.999**t
    w = w - rate * g_w / (np.sqrt(v_w / correction) + 1e-8)
    b = b - rate * g_b / (np.sqrt(v_b / correction) + 1e-8)
    trajectory.append((w, b))
  return trajectory


def test_reptile_with_inner_adam_equals_a_numpy_adam_in_training_and_at_test():
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((1,), dtype="float64"), keras.layers.Dense(1, dtype="float64")]
  )
  model.set_weights([np.array([[0.5]]), np.array([0.1])])
  rng = np.random.default_rng(1)
  xs, ys = rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4, 1))
  qx, qy = rng.normal(size=(3, 6, 1)), rng.normal(size=(3, 6, 1))
  tasks = episode_lib.Episode(tf.constant(xs), tf.constant(ys), tf.constant(qx), tf.constant(qy))
  learner = meta.Reptile(
    model, objective=meta.REGRESSION, num_inner_steps=3, inner_lr=0.2, inner_optimizer="adam"
  )
  gradients, _ = learner.compute_gradients(tasks)
  trajectories = [_numpy_adam(x[:, 0], y[:, 0], 0.5, 0.1, 0.2, 4) for x, y in zip(xs, ys)]
  expected_w = np.mean([0.5 - t[2][0] for t in trajectories])
  expected_b = np.mean([0.1 - t[2][1] for t in trajectories])
  np.testing.assert_allclose(gradients[0].numpy(), [[expected_w]], rtol=1e-10)
  np.testing.assert_allclose(gradients[1].numpy(), [expected_b], rtol=1e-10)
  # At test: the query MSE after 0..4 Adam steps.
  scores = learner.evaluate_tasks(tasks, 4)["mse"].numpy()
  for task, trajectory in enumerate(trajectories):
    params = [(0.5, 0.1), *trajectory]
    expected = [np.mean((w * qx[task, :, 0] + b - qy[task, :, 0]) ** 2) for w, b in params]
    np.testing.assert_allclose(scores[task], expected, rtol=1e-10)


def test_an_unknown_inner_optimizer_is_refused():
  model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
  with pytest.raises(ValueError, match="sgd or adam"):
    meta.Reptile(
      model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.1, inner_optimizer="rms"
    )


def test_inner_adam_batched_equals_one_task_at_a_time():
  rng = np.random.default_rng(2)
  tasks = episode_lib.Episode(
    *(tf.constant(rng.normal(size=(3, 5, 1)), tf.float32) for _ in range(4))
  )
  results = {}
  for mapping in ("batched", "map_fn"):
    keras.utils.set_random_seed(0)
    learner = meta.Reptile(
      models.mlp(input_size=1, hidden_sizes=(8, 8), output_size=1),
      objective=meta.REGRESSION,
      num_inner_steps=3,
      inner_lr=0.01,
      inner_optimizer="adam",
      task_mapping=mapping,
    )
    gradients, _ = learner.compute_gradients(tasks)
    results[mapping] = ([g.numpy() for g in gradients], learner.evaluate_tasks(tasks, 5)["mse"])
  for batched, one_at_a_time in zip(results["batched"][0], results["map_fn"][0]):
    np.testing.assert_allclose(batched, one_at_a_time, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(results["batched"][1], results["map_fn"][1], rtol=1e-5)


def test_fine_tuning_curves_of_an_inner_adam_learner_stop_at_its_initialisation():
  keras.utils.set_random_seed(0)
  learner = meta.Reptile(
    models.mlp(input_size=1, hidden_sizes=(4,), output_size=1),
    objective=meta.REGRESSION,
    num_inner_steps=2,
    inner_lr=0.01,
    inner_optimizer="adam",
  )
  rng = np.random.default_rng(3)
  tasks = episode_lib.Episode(
    *(tf.constant(rng.normal(size=(2, 5, 1)), tf.float32) for _ in range(4))
  )
  tuner = long_adaptation.FineTuner(learner)
  at_start = tuner.scores(tasks, checkpoints=[0])["mse"][:, 0]
  np.testing.assert_allclose(at_start, learner.evaluate_tasks(tasks, 0)["mse"][:, 0], rtol=1e-5)
  with pytest.raises(ValueError, match="fine-tuning curves take SGD steps"):
    tuner.scores(tasks, checkpoints=[0, 1])
