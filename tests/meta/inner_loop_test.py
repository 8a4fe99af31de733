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


def _tanh_model():
  """Dense(2->5) tanh Dense(5->1), float64 under the fixture: second-order terms are
  nonzero (a ReLU or linear model has a zero or constant Hessian in its inputs)."""
  keras.utils.set_random_seed(1)
  return keras.Sequential(
    [keras.Input((2,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)]
  )


def _adapted_and_scored(model, num_steps, *, unroll, adapted=None):
  """(final weights, [query loss after each step] stacked [S]) of adapt_to_end on the
  linear task, as functions of the model's variables; rates differ per step and weight."""
  support_x, support_y = _linear_task(0)
  query_x, query_y = _linear_task(1)
  forward = lambda w, s: (inner_loop.forward(model, w, s, support_x, training=True), s)
  query_loss = lambda w: meta.REGRESSION.loss(
    query_y, inner_loop.forward(model, w, [], query_x, training=True)
  )
  num_weights = len(model.trainable_variables)
  rates = [
    [tf.constant(0.05 + 0.02 * s + 0.01 * i, tf.float64) for i in range(num_weights)]
    for s in range(num_steps)
  ]
  weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
  return inner_loop.adapt_to_end(
    forward,
    weights,
    [],
    support_y,
    objective=meta.REGRESSION,
    learning_rates=rates,
    first_order=False,
    adapted=adapted,
    score=query_loss,
    unroll=unroll,
  )


def test_looped_steps_are_the_unrolled_steps_to_second_order(float64):
  """adapt_to_end's tf.while_loop: the same weights, scores and second-order
  meta-gradients as the steps unrolled, and those gradients match finite differences."""
  del float64
  model = _tanh_model()

  def meta_loss(unroll):
    final, scores = _adapted_and_scored(model, 3, unroll=unroll, adapted=[True, False, True, True])
    return tf.reduce_sum(scores * [0.2, 0.3, 0.5]), final, scores

  @tf.function
  def looped():
    with tf.GradientTape() as tape:
      loss, final, scores = meta_loss(unroll=False)
    return loss, final, scores, tape.gradient(loss, model.trainable_variables)

  graph = looped.get_concrete_function().graph
  loops = {"While", "StatelessWhile"} & {op.type for op in graph.get_operations()}
  assert loops  # traced as one loop, not unrolled in Python
  loss, final, scores, analytic = looped()
  with tf.GradientTape() as tape:
    unrolled_loss, unrolled_final, unrolled_scores = meta_loss(unroll=True)
  unrolled = tape.gradient(unrolled_loss, model.trainable_variables)
  assert scores.shape == [3]
  np.testing.assert_allclose(scores, unrolled_scores, rtol=1e-12)
  for a, b in zip(final + analytic, unrolled_final + unrolled):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
  assert final[1] is not None and np.array_equal(final[1], model.trainable_variables[1])
  numeric = gradient_check.finite_difference_gradients(
    tf.function(lambda: meta_loss(unroll=False)[0]), model.trainable_variables
  )
  gradient_check.assert_gradients_close(analytic, numeric, rtol=1e-6)
  # Called again: the loop's gradient keeps nothing from one call to the next.
  np.testing.assert_allclose(looped()[0], loss, rtol=1e-12)


def test_the_looped_graph_does_not_grow_with_the_steps(float64):
  del float64
  model = _tanh_model()

  def num_ops(num_steps, unroll):
    @tf.function
    def meta_gradients():
      with tf.GradientTape() as tape:
        _, scores = _adapted_and_scored(model, num_steps, unroll=unroll)
        loss = tf.reduce_sum(scores)
      return tape.gradient(loss, model.trainable_variables)

    graph = meta_gradients.get_concrete_function().graph
    bodies = graph.as_graph_def().library.function
    return len(graph.get_operations()) + sum(len(f.node_def) for f in bodies)

  # Four more steps: only their rates' constants, one per step and weight.
  num_weights = len(model.trainable_variables)
  assert num_ops(6, unroll=False) - num_ops(2, unroll=False) == 4 * num_weights
  assert num_ops(6, unroll=True) > 2 * num_ops(2, unroll=True)
