"""task_update_cosine: the mean pairwise cosine of the tasks' updates, by hand, and as
MAML and Reptile log it on a two-task linear model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann.data import episode as episode_lib
from mann.meta import gradient_learner


def test_mean_pairwise_cosine_by_hand():
  updates = tf.constant([[4.0, 0.0], [4.0, 4.0]], tf.float64)  # cosine 1 / sqrt(2)
  assert float(gradient_learner.task_update_cosine([updates])) == pytest.approx(1 / np.sqrt(2))
  # Three tasks, cosines -1, 0, 0; a task's update split over two weight tensors.
  three = tf.constant([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], tf.float64)
  assert float(gradient_learner.task_update_cosine([three[:, :1], three[:, 1:]])) == pytest.approx(
    -1 / 3
  )
  # A zero update is orthogonal to the others (and not a NaN).
  with_zero = tf.constant([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], tf.float64)
  assert float(gradient_learner.task_update_cosine([with_zero])) == pytest.approx(1 / 3)
  with pytest.raises(ValueError, match="two tasks"):
    gradient_learner.task_update_cosine([tf.ones([1, 3])])


# y = w . x from w = w0 (no bias); squared loss on one support and one query point per task.
_W0 = np.array([0.3, -0.2])
_SUPPORT = [(np.array([1.0, 0.0]), 2.0), (np.array([1.0, 1.0]), 2.0)]
_QUERY = [(np.array([0.5, 1.0]), -1.0), (np.array([2.0, -1.0]), 1.0)]
_RATE = 0.1


def _linear_learner(cls):
  model = keras.Sequential(
    [
      keras.Input(shape=(2,), dtype="float64"),
      keras.layers.Dense(1, use_bias=False, dtype="float64"),
    ]
  )
  model.layers[0].kernel.assign(_W0[:, None])
  return cls(
    model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=_RATE, task_mapping="batched"
  )


def _tasks():
  as_tensor = lambda values: tf.constant(np.array(values), tf.float64)
  return episode_lib.Episode(
    support_x=as_tensor([[x] for x, _ in _SUPPORT]),
    support_y=as_tensor([[[y]] for _, y in _SUPPORT]),
    query_x=as_tensor([[x] for x, _ in _QUERY]),
    query_y=as_tensor([[[y]] for _, y in _QUERY]),
  )


def _cosine(a, b):
  return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def _adapted(x, y):
  """One SGD step on (w . x - y)^2 from w0: w0 - rate * 2 (w0 . x - y) x."""
  return _W0 - _RATE * 2 * (_W0 @ x - y) * x


def test_reptile_logs_the_cosine_of_its_tasks_moves():
  _, metrics = _linear_learner(meta.Reptile).compute_gradients(_tasks())
  moves = [_adapted(x, y) - _W0 for x, y in _SUPPORT]
  assert float(metrics["task_update_cosine"]) == pytest.approx(_cosine(*moves), rel=1e-9)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_logs_the_cosine_of_its_tasks_meta_gradients(first_order):
  learner = _linear_learner(meta.MAML)
  learner.first_order = first_order
  gradients, metrics = learner.compute_gradients(_tasks())
  per_task = []
  for (xs, ys), (xq, yq) in zip(_SUPPORT, _QUERY):
    w = _adapted(xs, ys)
    query_gradient = 2 * (w @ xq - yq) * xq  # d L_q / d w', at w' = the adapted weights
    jacobian = np.eye(2) - (0 if first_order else 2 * _RATE * np.outer(xs, xs))
    per_task.append(jacobian.T @ query_gradient)  # d L_q(w'(w0)) / d w0
  assert float(metrics["task_update_cosine"]) == pytest.approx(_cosine(*per_task), rel=1e-9)
  # The meta-gradient itself is unchanged: the mean of the tasks' own.
  np.testing.assert_allclose(np.asarray(gradients[0])[:, 0], np.mean(per_task, axis=0), rtol=1e-9)


def test_one_task_or_unbatched_tasks_log_no_cosine():
  tasks = _tasks()
  one = tf.nest.map_structure(lambda t: t[:1], tasks)
  for cls in (meta.MAML, meta.Reptile):
    _, metrics = _linear_learner(cls).compute_gradients(one)
    assert "task_update_cosine" not in metrics
  model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
  mapped = meta.MAML(
    model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.1, task_mapping="map_fn"
  )
  _, metrics = mapped.compute_gradients(
    tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), tasks)
  )
  assert "task_update_cosine" not in metrics
