"""Tests of mann/models/low_rank.py: a LowRankKernel and its SGD steps equal the dense
per-task kernels and their SGD steps, in value and in first and second derivatives."""

import numpy as np
import pytest
import tensorflow as tf

from mann.meta import inner_loop
from mann.meta import losses
from mann.meta import task_format
from mann.models import low_rank
from mann.models import task_batched_sequence
from tests import sequence_models


def test_matmul_and_dense_are_the_base_minus_the_factors(float64):
  rng = np.random.default_rng(0)
  num_tasks, depth, units = 3, 4, 5
  base = tf.constant(rng.normal(size=(depth, units)))
  factors = tuple(
    (
      rate,
      tf.constant(rng.normal(size=(num_tasks, n, depth))),
      tf.constant(rng.normal(size=(num_tasks, n, units))),
    )
    for rate, n in ((0.3, 2), (0.7, 3))
  )
  kernel = low_rank.LowRankKernel(base, num_tasks, factors)
  expected = np.stack(
    [
      base.numpy()
      - sum(rate * rows[t].numpy().T @ gradients[t].numpy() for rate, rows, gradients in factors)
      for t in range(num_tasks)
    ]
  )
  np.testing.assert_allclose(kernel.dense(), expected, rtol=1e-12)
  a = tf.constant(rng.normal(size=(num_tasks, 2, depth)))
  np.testing.assert_allclose(
    low_rank.matmul(a, kernel), np.einsum("tbd,tdu->tbu", a, expected), rtol=1e-12
  )
  assert kernel.shape == (num_tasks, depth, units)


@pytest.mark.parametrize("kind", ["mann", "lstm"])
@pytest.mark.parametrize("first_order", [False, True])
def test_adapting_low_rank_kernels_equals_adapting_dense_kernels(float64, kind, first_order):
  # Two inner steps of the task-batched MANN / LSTM from the same initialisation, the
  # recurrent kernels once as LowRankKernels, once as broadcast dense tensors: the query
  # loss and its gradient with respect to the initialisation (second order unless
  # first_order) must agree.
  model = sequence_models.tiny_sequence_model(kind)
  batched = task_batched_sequence.TaskBatchedSequenceModel(model)
  assert any(batched.low_rank_weights)
  num_tasks = 2
  tasks = sequence_models.image_tasks(num_tasks=num_tasks, num_queries=2)
  sequence_format = task_format.SequenceFormat(num_classes=sequence_models.NUM_WAYS)
  statistics = [v.value for v in model.non_trainable_variables]
  rates = [[tf.constant(0.5, tf.float64)] * len(model.trainable_weights)] * 2

  def query_loss(initial, task_weights):
    trajectory, _ = inner_loop.adapt(
      sequence_format.support_forward(batched, tasks, training=True),
      task_weights,
      [statistics] * 2,
      tasks.support_y,
      objective=losses.CLASSIFICATION,
      learning_rates=rates,
      first_order=first_order,
    )
    outputs, _ = sequence_format.query_forward(batched, tasks, training=True)(
      trajectory[-1], statistics
    )
    return tf.reduce_sum(losses.CLASSIFICATION.loss(tasks.query_y, outputs)), trajectory

  initial = [v.value for v in model.trainable_variables]
  results = []
  for use_low_rank in (True, False):
    with tf.GradientTape() as tape:
      tape.watch(initial)
      task_weights = (
        batched.task_weights(initial, num_tasks)
        if use_low_rank
        else [tf.broadcast_to(w[None], [num_tasks, *w.shape]) for w in initial]
      )
      loss, trajectory = query_loss(initial, task_weights)
    results.append(
      (loss, [low_rank.dense(w) for w in trajectory[-1]], tape.gradient(loss, initial))
    )
  (loss, adapted, gradients), (want_loss, want_adapted, want_gradients) = results
  np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
  for got, want in zip(adapted, want_adapted):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
  for got, want, v in zip(gradients, want_gradients, model.trainable_variables):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=v.path)
