"""Tests of mann/meta/task_chunks.py: a meta-batch run a chunk of tasks at a time gives
the meta-gradients and metrics of the whole batch at once; what cannot be split is
refused with one line. (Every learner row is checked a task at a time in
conformance_test.py; the memory it saves is measured by benchmarks/step_time.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann import meta
from mann import models
from mann.data import sampler as sampler_lib
from tests import class_images

NUM_TASKS = 4


def _maml(**options):
  keras.utils.set_random_seed(0)
  model = models.conv4(num_classes=5, image_shape=(14, 14, 1), num_filters=4)
  return meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=2, inner_lr=0.4, **options)


def _meta_batch():
  source = class_images.random_class_images(10, 4, size=14)
  sampler = sampler_lib.FewShotSampler(source, num_ways=5, num_shots=1, num_queries=2, seed=0)
  return next(iter(data.meta_batches(sampler, meta_batch_size=NUM_TASKS)))


@pytest.mark.parametrize("tasks_per_chunk", [1, 2])
@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
def test_chunks_of_tasks_give_the_whole_meta_batchs_gradients(tasks_per_chunk, first_order):
  learner = _maml(first_order=first_order)
  meta_batch = _meta_batch()
  whole_gradients, whole_metrics = learner.compute_gradients(meta_batch, 0)
  chunked = tf.function(
    lambda batch: meta.task_chunks.compute_gradients(
      learner, batch, 0, tasks_per_chunk=tasks_per_chunk
    )
  )
  gradients, metrics = chunked(meta_batch)
  assert len(gradients) == len(whole_gradients)
  variables = learner.model.trainable_variables
  for variable, want, got in zip(variables, whole_gradients, gradients):
    # Each conv bias is followed by batch norm: its true gradient is 0 and the computed
    # one is round-off in either order, so there is nothing to compare.
    if variable.path.endswith("conv/bias"):
      continue
    # Summed in another order: float32 round-off, which second-order batch-norm
    # gradients amplify (measured: 2.6e-6 against entries up to 0.4).
    want = want.numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=2e-5 * np.abs(want).max())
  # A metric over pairs of tasks needs two tasks in a chunk.
  pairwise = {"task_update_cosine"} if tasks_per_chunk == 1 else set()
  assert sorted(metrics) == sorted(set(whole_metrics) - pairwise)
  for name in ("loss", "accuracy"):
    assert float(metrics[name]) == pytest.approx(float(whole_metrics[name]), rel=1e-5), name


def test_a_whole_chunk_or_zero_is_the_plain_call():
  learner = _maml()
  meta_batch = _meta_batch()
  want, _ = learner.compute_gradients(meta_batch, 0)
  for tasks_per_chunk in (0, NUM_TASKS):
    got, _ = meta.task_chunks.compute_gradients(
      learner, meta_batch, 0, tasks_per_chunk=tasks_per_chunk
    )
    for a, b in zip(want, got):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
  "tasks_per_chunk, make_learner, message",
  [
    (3, _maml, "tasks_per_chunk=3 does not divide the 4 tasks"),
    (8, _maml, "tasks_per_chunk=8 does not divide the 4 tasks"),
    (-1, _maml, "tasks_per_chunk must be >= 0"),
    (2, lambda: _maml(batch_norm="per_step"), "batch_norm='per_step' moves its running"),
    (
      2,
      lambda: meta.Transfer(
        models.conv4(num_classes=5, image_shape=(14, 14, 1), num_filters=4),
        num_pretrain_classes=7,
        objective=meta.CLASSIFICATION,
        num_inner_steps=1,
        inner_lr=0.4,
      ),
      "Transfer pools every task's examples",
    ),
  ],
)
def test_what_cannot_be_chunked_is_refused_with_one_line(tasks_per_chunk, make_learner, message):
  learner = make_learner()
  with pytest.raises(ValueError, match=message) as raised:
    meta.task_chunks.compute_gradients(learner, _meta_batch(), 0, tasks_per_chunk=tasks_per_chunk)
  assert "\n" not in str(raised.value)
