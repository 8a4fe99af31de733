"""Tests of mann/models/task_batched_sequence.py: T sequence models with their own weights
in one recurrence equal T separate Keras stateless_calls."""

import numpy as np
import pytest
import tensorflow as tf

from mann import models
from mann.models import task_batched_sequence
from tests import sequence_models


@pytest.mark.parametrize(
  "kind,key_strength", [("mann", False), ("mann", True), ("mann_reads_only", True), ("lstm", False)]
)
@pytest.mark.parametrize("encoder", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batched_outputs_and_statistics_equal_per_task_stateless_calls(
  float64, kind, key_strength, encoder, training
):
  image_shape = (8, 8, 1)
  model = sequence_models.tiny_sequence_model(
    kind.removesuffix("_reads_only"),
    encoder=encoder,
    image_shape=image_shape,
    key_strength=key_strength,
    reads_only_output=kind.endswith("_reads_only"),
  )
  rng = np.random.default_rng(0)
  num_tasks, num_sequences, length = 3, 2, 4
  x = tf.constant(rng.random((num_tasks, num_sequences, length, 64 + 3)))
  per_task = [
    [v.value + 0.1 * rng.normal(size=v.shape) for v in model.trainable_variables]
    for _ in range(num_tasks)
  ]
  statistics = [v.value for v in model.non_trainable_variables]
  expected = [
    model.stateless_call(w, statistics, x[t], training=training) for t, w in enumerate(per_task)
  ]
  stacked = [tf.stack(ws) for ws in zip(*per_task)]
  batched = task_batched_sequence.TaskBatchedSequenceModel(model)
  outputs, new_statistics = tf.function(
    lambda w: batched.stateless_call(w, statistics, x, training=training)
  )(stacked)
  np.testing.assert_allclose(outputs, np.stack([e[0] for e in expected]), rtol=1e-10, atol=1e-13)
  for i in range(len(statistics)):
    np.testing.assert_allclose(
      new_statistics[i], np.stack([e[1][i] for e in expected]), rtol=1e-10, atol=1e-15
    )


@pytest.mark.parametrize("kind", ["mann", "lstm"])
@pytest.mark.parametrize("encoder", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_branched_call_equals_the_repeated_prefix_sequences_and_their_gradients(
  float64, kind, encoder, training
):
  # The reference runs each branch as its own full sequence [prefix; branch], the
  # prefix repeated: values, statistics and gradients must not tell the two apart.
  image_shape = (8, 8, 1)
  model = sequence_models.tiny_sequence_model(kind, encoder=encoder, image_shape=image_shape)
  rng = np.random.default_rng(1)
  num_tasks, num_branches, prefix_length, branch_length = 2, 3, 4, 2
  prefix = tf.constant(rng.random((num_tasks, prefix_length, 64 + 3)))
  branches = tf.constant(rng.random((num_tasks, num_branches, branch_length, 64 + 3)))
  full = tf.concat([tf.repeat(prefix[:, None], num_branches, axis=1), branches], axis=2)
  weights = [
    tf.stack([v.value + 0.1 * rng.normal(size=v.shape) for _ in range(num_tasks)])
    for v in model.trainable_variables
  ]
  statistics = [v.value for v in model.non_trainable_variables]
  batched = task_batched_sequence.TaskBatchedSequenceModel(model)
  probe = tf.constant(rng.normal(size=(num_tasks, num_branches, branch_length, 3)))

  def run(call):
    with tf.GradientTape() as tape:
      tape.watch(weights)
      outputs, new_statistics = call(weights)
      loss = tf.reduce_sum(outputs * probe)
    return outputs, new_statistics, tape.gradient(loss, weights)

  expected = run(
    lambda w: [
      (o[:, :, prefix_length:], s)
      for o, s in [batched.stateless_call(w, statistics, full, training=training)]
    ][0]
  )
  got = run(lambda w: batched.branched_call(w, statistics, prefix, branches, training=training))
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-10, atol=1e-13)
  for g, e in zip(got[1], expected[1]):
    np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-15)
  for g, e, v in zip(got[2], expected[2], model.trainable_variables):
    np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-13, err_msg=v.path)
    # Every weight on a live path (in inference mode the one-filter encoder's ReLUs
    # may all be off; training-mode moments centre them).
    assert not training or np.any(np.asarray(e) != 0), v.path


def test_models_other_than_mann_and_lstm_are_refused():
  conv4 = models.conv4(num_classes=3, num_filters=2)
  assert "not a models.mann or models.lstm" in task_batched_sequence.unsupported_reason(conv4)
  with pytest.raises(ValueError, match="cannot batch tasks"):
    task_batched_sequence.TaskBatchedSequenceModel(conv4)
