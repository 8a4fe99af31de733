"""The functional inner loop: gradient steps on a list of weight tensors, never on variables.

Weights are run through `model.stateless_call(trainable, non_trainable, x)`, so the
model's variables stay as they are while a task adapts, and second-order
meta-gradients flow through nested tf.GradientTapes back to the initial weights.
`model` may also be a mann.models.task_batched.TaskBatchedModel, with weights,
inputs and labels carrying a leading task axis: then every function here adapts all
tasks at once (the sum of the task losses has each task's gradient in its weights).
"""

from typing import Sequence

import keras
import tensorflow as tf

from mann.meta import losses

Weights = list[tf.Tensor]


def forward(model: keras.Model, weights: Weights, non_trainable: Weights, x: tf.Tensor,
            *, training: bool) -> tf.Tensor:
  """The model's outputs [B, ...] for inputs x [B, ...] under the given weights.

  training=True normalises batch norm with the batch's own statistics (MAML's
  transductive choice); the running statistics it would update are discarded.
  """
  outputs, _ = model.stateless_call(weights, non_trainable, x, training=training)
  return outputs


def sgd_adapt(model: keras.Model, weights: Weights, non_trainable: Weights,
              x: tf.Tensor, y: tf.Tensor, *, objective: losses.TaskObjective,
              learning_rates: Sequence[Sequence[tf.Tensor]], first_order: bool,
              training: bool = True) -> list[Weights]:
  """Plain gradient descent on one task's support set, one step per entry of learning_rates.

  Args:
    model: any built Keras model.
    weights: its trainable weights as tensors, in model.trainable_weights order.
    non_trainable: its non-trainable weights (batch-norm statistics) as tensors.
    x, y: the support set, [B, ...] inputs and [B] labels (or [B, D] targets).
    objective: the loss to descend.
    learning_rates: learning_rates[s][i] is the rate of weight i at step s: a scalar
      (MAML) or a tensor broadcastable to the weight (learned per-layer rates).
    first_order: stop the gradient through the inner gradients (first-order MAML):
      the meta-gradient is then the query gradient at the adapted weights.
    training: batch-norm mode of the forward passes.

  Returns:
    The weights before and after each step: len(learning_rates) + 1 lists.
  """
  trajectory, _ = sgd_adapt_with_statistics(
      model, weights, [non_trainable] * len(learning_rates), x, y, objective=objective,
      learning_rates=learning_rates, first_order=first_order, training=training)
  return trajectory


def sgd_adapt_with_statistics(model: keras.Model, weights: Weights,
                              statistics: Sequence[Weights], x: tf.Tensor, y: tf.Tensor, *,
                              objective: losses.TaskObjective,
                              learning_rates: Sequence[Sequence[tf.Tensor]],
                              first_order: bool, training: bool = True,
                              checkpoint: bool = False
                              ) -> tuple[list[Weights], list[Weights]]:
  """sgd_adapt where step s runs with its own non-trainable weights statistics[s]
  (MAML++ per-step batch-norm statistics), and returns them as the forward pass
  updated them (with training=True: moved toward the support batch's moments).

  checkpoint=True bounds the memory of many second-order steps: a step keeps only
  its input weights for the backward pass, which recomputes the step (its forward,
  its inner gradient) when it needs the step's derivatives. Same values, same
  gradients; one more support forward and backward per step in the backward pass.

  Returns:
    (trajectory, updated): the weights before and after each step, and per step the
    non-trainable weights after that step's forward pass.
  """
  trajectory, updated = [list(weights)], []
  step = _checkpointed_sgd_step if checkpoint else _sgd_step
  for step_rates, step_statistics in zip(learning_rates, statistics):
    weights, new_statistics = step(model, weights, step_statistics, x, y,
                                   objective=objective, rates=step_rates,
                                   first_order=first_order, training=training)
    trajectory.append(weights)
    updated.append(new_statistics)
  return trajectory, updated


def _sgd_step(model, weights, statistics, x, y, *, objective, rates, first_order, training):
  """One SGD step on (x, y): (new weights, the non-trainable weights after the pass)."""
  with tf.GradientTape() as tape:
    tape.watch(weights)
    outputs, new_statistics = model.stateless_call(weights, statistics, x, training=training)
    loss = tf.reduce_sum(objective.loss(y, outputs))  # tasks batched: each its own
  gradients = tape.gradient(loss, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  if first_order:
    gradients = [tf.stop_gradient(g) for g in gradients]
  new_weights = [w - rate * g for w, rate, g in zip(weights, rates, gradients)]
  return new_weights, [tf.stop_gradient(v) for v in new_statistics]


def _checkpointed_sgd_step(model, weights, statistics, x, y, *, objective, rates,
                           first_order, training):
  """_sgd_step whose backward pass recomputes it instead of keeping its activations."""
  num_weights = len(weights)
  run = lambda w, r: _sgd_step(model, w, statistics, x, y, objective=objective, rates=r,
                               first_order=first_order, training=training)

  @tf.custom_gradient
  def step(*flat):
    step_weights, step_rates = list(flat[:num_weights]), list(flat[num_weights:])
    new_weights, new_statistics = run(step_weights, step_rates)

    def backward(*upstream):
      # Inputs that depend on the upstream gradients: a recomputation the graph
      # optimiser cannot merge with the forward pass (which would keep its activations).
      with tf.control_dependencies(upstream[:num_weights]):
        inputs = [tf.identity(t) for t in flat]
      with tf.GradientTape() as tape:
        tape.watch(inputs)
        recomputed, _ = run(inputs[:num_weights], inputs[num_weights:])
      return tape.gradient(recomputed, inputs, output_gradients=list(upstream[:num_weights]),
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return new_weights + new_statistics, backward

  rates = [tf.convert_to_tensor(rate, weights[0].dtype) for rate in rates]
  outputs = step(*weights, *rates)
  return list(outputs[:num_weights]), list(outputs[num_weights:])
