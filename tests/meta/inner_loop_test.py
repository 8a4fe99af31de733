"""Tests of mann/meta/inner_loop.py on least squares, against gradient descent written
out in numpy and against finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.meta import inner_loop
from tests import gradient_check


def _linear_task(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(6, 2))
  return tf.constant(x), tf.constant(x @ [[1.5], [-2.0]] + 0.5)


def _linear_model():
  keras.utils.set_random_seed(0)
  return models.mlp(input_size=2, hidden_sizes=(), output_size=1)  # [kernel, bias]


def test_forward_is_the_models_own_call(float64):
  del float64
  model = _linear_model()
  x, _ = _linear_task()
  weights = [w.value for w in model.trainable_variables]
  np.testing.assert_allclose(
    inner_loop.forward(model, weights, [], x, training=False), model(x), rtol=1e-12
  )


def test_sgd_steps_are_gradient_descent_on_the_support_loss(float64):
  del float64
  model = _linear_model()
  x, y = _linear_task()
  kernel, bias = [w.numpy() for w in model.trainable_variables]
  rates = [[0.1, 0.3], [0.2, 0.05]]  # per step, per weight tensor
  trajectory = meta.sgd_adapt(
    model,
    [w.value for w in model.trainable_variables],
    [],
    x,
    y,
    objective=meta.REGRESSION,
    learning_rates=rates,
    first_order=False,
  )
  assert len(trajectory) == 3
  for step, (kernel_rate, bias_rate) in enumerate(rates):
    residual = x.numpy() @ kernel + bias - y.numpy()  # d mean(r^2) = 2/B r
    kernel = kernel - kernel_rate * 2 / len(residual) * x.numpy().T @ residual
    bias = bias - bias_rate * 2 / len(residual) * residual.sum(axis=0)
    np.testing.assert_allclose(trajectory[step + 1][0], kernel, rtol=1e-12)
    np.testing.assert_allclose(trajectory[step + 1][1], bias, rtol=1e-12)


def test_weights_outside_the_adapted_set_are_the_inputs_themselves(float64):
  del float64
  model = _linear_model()
  x, y = _linear_task()
  weights = [w.value for w in model.trainable_variables]
  forward = lambda w, s: (inner_loop.forward(model, w, s, x, training=True), s)
  trajectory, _ = inner_loop.adapt(
    forward,
    weights,
    [[]] * 2,
    y,
    objective=meta.REGRESSION,
    learning_rates=[[0.1, 0.1]] * 2,
    first_order=False,
    adapted=[False, True],
  )
  assert trajectory[2][0] is weights[0]
  assert not np.allclose(trajectory[2][1], weights[1])
  with pytest.raises(ValueError, match="adapted has 1 entries for 2 weights"):
    inner_loop.adapt(
      forward,
      weights,
      [[]],
      y,
      objective=meta.REGRESSION,
      learning_rates=[[0.1, 0.1]],
      first_order=False,
      adapted=[True],
    )


def _query_loss_after_steps(model, first_order, checkpoint, num_steps=2):
  """The query loss after num_steps inner steps, as a function of the model's variables."""
  support_x, support_y = _linear_task(0)
  query_x, query_y = _linear_task(1)
  forward = lambda w, s: (inner_loop.forward(model, w, s, support_x, training=True), s)

  def loss():
    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    trajectory, _ = inner_loop.adapt(
      forward,
      weights,
      [[]] * num_steps,
      support_y,
      objective=meta.REGRESSION,
      learning_rates=[[0.2, 0.2]] * num_steps,
      first_order=first_order,
      checkpoint=checkpoint,
    )
    return meta.REGRESSION.loss(
      query_y, inner_loop.forward(model, trajectory[-1], [], query_x, training=True)
    )

  return loss


@pytest.mark.parametrize("checkpoint", [False, True])
def test_second_order_meta_gradients_match_finite_differences(float64, checkpoint):
  del float64
  model = _linear_model()
  loss = _query_loss_after_steps(model, first_order=False, checkpoint=checkpoint)
  with tf.GradientTape() as tape:
    value = loss()
  analytic = tape.gradient(value, model.trainable_variables)
  numeric = gradient_check.finite_difference_gradients(loss, model.trainable_variables)
  gradient_check.assert_gradients_close(analytic, numeric, rtol=1e-6)


def test_first_order_meta_gradients_are_the_query_gradients_at_the_adapted_weights(float64):
  del float64
  model = _linear_model()
  loss = _query_loss_after_steps(model, first_order=True, checkpoint=False)
  with tf.GradientTape() as tape:
    value = loss()
  first_order = tape.gradient(value, model.trainable_variables)
  support_x, support_y = _linear_task(0)
  query_x, query_y = _linear_task(1)
  trajectory = meta.sgd_adapt(
    model,
    [v.value for v in model.trainable_variables],
    [],
    support_x,
    support_y,
    objective=meta.REGRESSION,
    learning_rates=[[0.2, 0.2]] * 2,
    first_order=True,
  )
  adapted = [tf.constant(w) for w in trajectory[-1]]
  with tf.GradientTape() as tape:
    tape.watch(adapted)
    at_adapted = meta.REGRESSION.loss(
      query_y, inner_loop.forward(model, adapted, [], query_x, training=True)
    )
  for a, b in zip(first_order, tape.gradient(at_adapted, adapted)):
    np.testing.assert_allclose(a, b, rtol=1e-12)
