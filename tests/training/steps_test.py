"""Tests of mann/training/steps.py: a compiled call's meta-steps are the learner's updates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann.training import steps
from tests.training import poisoned_learner


def _setup(poisoned_steps=(), **options):
  model, learner, make_batches = poisoned_learner.sinusoid_maml(
    hidden_sizes=(8,), poisoned_steps=poisoned_steps
  )
  strategy = tf.distribute.get_strategy()
  batches, spec = steps.replica_batches(strategy, make_batches, 0)
  optimizer = keras.optimizers.SGD(1.0)  # the update is minus the meta-gradient
  optimizer.build(learner.trainable_variables)
  meta_steps = steps.MetaSteps(
    learner=learner, optimizer=optimizer, strategy=strategy, replica_spec=spec, **options
  )
  return model, learner, batches, meta_steps, make_batches(0, data.ONE_REPLICA)


def _expected_weights(learner, model, meta_batches, num_steps, max_norm=None):
  """SGD(1) by hand on a copy of the weights: w -= g, g the (clipped) meta-gradient."""
  weights = [w.numpy().copy() for w in learner.trainable_variables]
  saved = [w.numpy().copy() for w in learner.trainable_variables]
  losses = []
  for step, meta_batch in zip(range(num_steps), meta_batches):
    gradients, metrics = learner.compute_gradients(meta_batch, step)
    if max_norm:
      gradients, _ = tf.clip_by_global_norm(gradients, max_norm)
    weights = [w - g.numpy() for w, g in zip(weights, gradients)]
    for variable, w in zip(learner.trainable_variables, weights):
      variable.assign(w)
    losses.append(float(metrics["loss"]))
  for variable, w in zip(learner.trainable_variables, saved):
    variable.assign(w)
  return weights, losses


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_a_call_applies_the_learners_meta_gradients_in_order(steps_per_call):
  model, learner, batches, meta_steps, reference_batches = _setup(
    steps_per_call=steps_per_call, clip_grad_norm=0.5
  )
  expected, losses = _expected_weights(learner, model, reference_batches, 3, max_norm=0.5)
  if steps_per_call == 3:
    calls = [meta_steps.run(batches, tf.constant(0, tf.int64), tf.constant(3, tf.int64))]
  else:
    calls = [
      meta_steps.run(batches, tf.constant(s, tf.int64), tf.constant(1, tf.int64)) for s in range(3)
    ]
  for w, e in zip(learner.trainable_variables, expected):
    np.testing.assert_allclose(w.numpy(), e, rtol=1e-5, atol=1e-6)
  means = [float(means["loss"]) for means, bad, first_bad in calls]
  assert np.mean(means) == pytest.approx(np.mean(losses), rel=1e-5)
  assert all(int(bad) == 0 and int(first_bad) == -1 for _, bad, first_bad in calls)


def test_a_nonfinite_step_stops_the_call_unapplied():
  model, learner, batches, meta_steps, reference_batches = _setup(
    poisoned_steps=[1], steps_per_call=3
  )
  expected, losses = _expected_weights(learner, model, reference_batches, 1)
  means, bad, first_bad = meta_steps.run(
    batches, tf.constant(0, tf.int64), tf.constant(3, tf.int64)
  )
  assert (int(bad), int(first_bad)) == (1, 1)
  assert float(means["loss"]) == pytest.approx(losses[0], rel=1e-5)  # the finite step's
  for w, e in zip(learner.trainable_variables, expected):  # step 0 applied, 1 not, 2 not run
    np.testing.assert_allclose(w.numpy(), e, rtol=1e-5, atol=1e-6)


def test_skip_nonfinite_runs_on_past_a_skipped_step():
  _, learner, batches, meta_steps, _ = _setup(
    poisoned_steps=[0, 2], steps_per_call=3, skip_nonfinite=True
  )
  before = [w.numpy().copy() for w in learner.trainable_variables]
  means, bad, first_bad = meta_steps.run(
    batches, tf.constant(0, tf.int64), tf.constant(3, tf.int64)
  )
  assert (int(bad), int(first_bad)) == (2, 0) and np.isfinite(float(means["loss"]))
  changed = [not np.array_equal(w.numpy(), b) for w, b in zip(learner.trainable_variables, before)]
  assert any(changed)  # step 1 was applied
  assert all(np.all(np.isfinite(w.numpy())) for w in learner.trainable_variables)
