"""Tests of mann/training/optimizers.py: FusedAdam against Keras's Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann.training import optimizers

# The conv4 encoder's variables (kernel, bias, batch-norm scale and offset) and a head.
_SHAPES = [(3, 3, 1, 8), (8,), (8,), (8,), (3, 3, 8, 8), (8,), (8,), (8,), (32, 5), (5,)]
_STEPS = 6


def _values(seed: int) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  return [rng.normal(size=shape).astype(np.float32) for shape in _SHAPES]


def _gradients() -> list[list[np.ndarray]]:
  # Step 3 gives one variable a zero gradient (its moments decay, the weight still moves).
  steps = [_values(100 + step) for step in range(_STEPS)]
  steps[3][1] = np.zeros_like(steps[3][1])
  return steps


def _train(make_optimizer, *, jit_compile: bool = False, checkpoint_from=None):
  """(Variables, slots) after _STEPS updates of make_optimizer() on fixed gradients, and
  the optimiser."""
  variables = [keras.Variable(value) for value in _values(0)]
  optimizer = make_optimizer()
  optimizer.build(variables)
  if checkpoint_from is not None:
    tf.train.Checkpoint(variables=variables, optimizer=optimizer).read(checkpoint_from)

  @tf.function(jit_compile=jit_compile, autograph=False)
  def apply(gradients):
    optimizer.apply(gradients, variables)

  for gradients in _gradients():
    apply([tf.constant(g) for g in gradients])
  slots = [v.numpy() for v in optimizer._momentums + optimizer._velocities]
  return [v.numpy() for v in variables], slots, optimizer


def _assert_close(got, expected):
  # Weights of size ~1 after _STEPS updates of ~lr: the fused kernel orders the float32
  # arithmetic differently, a few ulps of 1 (2e-7 to 8e-7 seen), well inside 2e-6 and
  # far below the updates themselves (~lr a step).
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
  "options",
  [
    {"learning_rate": 0.01},
    {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3},
    # A schedule, weight decay and clipping: the base optimiser's, around the update.
    {
      "learning_rate": keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5),
      "weight_decay": 0.1,
      "global_clipnorm": 3.0,
    },
    {"learning_rate": 0.01, "amsgrad": True},
  ],
  ids=["default", "betas", "schedule_decay_clip", "amsgrad"],
)
def test_fused_adam_makes_keras_adams_updates(options):
  expected_variables, expected_slots, _ = _train(lambda: keras.optimizers.Adam(**options))
  variables, slots, _ = _train(lambda: optimizers.FusedAdam(**options))
  start = _values(0)
  assert all(not np.allclose(v, s) for v, s in zip(expected_variables, start))
  _assert_close(variables, expected_variables)
  _assert_close(slots, expected_slots)


def test_fused_adam_under_xla_matches_keras_adam():
  # Under two replicas: tests/training/distribute_test.py (the trainer's meta-steps).
  expected = _train(lambda: keras.optimizers.Adam(0.01))[0]
  _assert_close(_train(lambda: optimizers.FusedAdam(0.01), jit_compile=True)[0], expected)


def test_a_keras_adam_checkpoint_resumes_as_fused_adam(tmp_path):
  variables = [keras.Variable(value) for value in _values(0)]
  adam = keras.optimizers.Adam(0.01)
  adam.build(variables)
  for gradients in _gradients()[:2]:
    adam.apply([tf.constant(g) for g in gradients], variables)
  path = tf.train.Checkpoint(variables=variables, optimizer=adam).write(str(tmp_path / "ckpt"))
  # Both continue from the saved state (iteration count, moments, weights) on the same
  # gradients.
  resumed_variables, _, fused = _train(lambda: optimizers.FusedAdam(0.01), checkpoint_from=path)
  assert int(fused.iterations.numpy()) == 2 + _STEPS
  expected_variables = _train(lambda: keras.optimizers.Adam(0.01), checkpoint_from=path)[0]
  _assert_close(resumed_variables, expected_variables)


def test_the_traced_update_is_one_fused_op_per_variable():
  def op_types(optimizer):
    variables = [keras.Variable(value) for value in _values(0)]
    optimizer.build(variables)
    specs = [tf.TensorSpec(shape) for shape in _SHAPES]
    graph = (
      tf.function(lambda g: optimizer.apply(g, variables), autograph=False)
      .get_concrete_function(specs)
      .graph
    )
    return [op.type for op in graph.get_operations()]

  keras_ops, fused_ops = op_types(keras.optimizers.Adam(0.01)), op_types(optimizers.FusedAdam(0.01))
  assert fused_ops.count("ResourceApplyAdam") == len(_SHAPES)
  assert keras_ops.count("ResourceApplyAdam") == 0
  assert len(fused_ops) < len(keras_ops) / 2
