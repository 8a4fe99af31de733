"""The functional inner loop: gradient steps on a list of weight tensors, never on variables.

Weights are run through `model.stateless_call(trainable, non_trainable, x)`, so the
model's variables stay as they are while a task adapts, and second-order
meta-gradients flow through nested tf.GradientTapes back to the initial weights.
`model` may also be a task-batched model (mann.models.task_batched), with weights,
inputs and labels carrying a leading task axis: then every function here adapts all
tasks at once (the sum of the task losses has each task's gradient in its weights).

`adapt` unrolls the steps in Python and returns every step's weights; `adapt_to_end`,
for the callers that need only the last weights and a score of each step (MAML's
meta-loss, meta-test evaluation, Reptile), traces the steps once as a tf.while_loop.

`adapt` takes the forward pass as a function of the weights, so that what a task's
inputs are (examples, or sequences built from the support set: mann.meta.task_format)
is the caller's choice, not the inner loop's. A weight may be a
mann.models.low_rank.RecordedKernel, which a step updates from the products it records:
a LowRankKernel (per-task kernels as the initialisation plus low-rank updates, kept in
that form) or a task_batched.SharedKernel (convolution kernels still at the shared
initialisation, which the first step turns into per-task tensors).
"""

from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

from mann.meta import losses
from mann.models import low_rank

Weights = list[tf.Tensor]
# (weights, non-trainable weights) -> (outputs, non-trainable weights after the pass)
Forward = Callable[[Weights, Weights], tuple[tf.Tensor, Weights]]


def forward(
  model: keras.Model, weights: Weights, non_trainable: Weights, x: tf.Tensor, *, training: bool
) -> tf.Tensor:
  """The model's outputs [B, ...] for inputs x [B, ...] under the given weights.

  training=True normalises batch norm with the batch's own statistics (MAML's
  transductive choice); the running statistics it would update are discarded.
  """
  outputs, _ = model.stateless_call(weights, non_trainable, x, training=training)
  return outputs


def sgd_adapt(
  model: keras.Model,
  weights: Weights,
  non_trainable: Weights,
  x: tf.Tensor,
  y: tf.Tensor,
  *,
  objective: losses.TaskObjective,
  learning_rates: Sequence[Sequence[tf.Tensor]],
  first_order: bool,
  training: bool = True,
) -> list[Weights]:
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
  forward = lambda w, s: model.stateless_call(w, s, x, training=training)
  trajectory, _ = adapt(
    forward,
    weights,
    [non_trainable] * len(learning_rates),
    y,
    objective=objective,
    learning_rates=learning_rates,
    first_order=first_order,
  )
  return trajectory


def adapt(
  forward: Forward,
  weights: Weights,
  statistics: Sequence[Weights],
  y: tf.Tensor,
  *,
  objective: losses.TaskObjective,
  learning_rates: Sequence[Sequence[tf.Tensor]],
  first_order: bool,
  adapted: Optional[Sequence[bool]] = None,
  checkpoint: bool = False,
) -> tuple[list[Weights], list[Weights]]:
  """SGD steps on a support loss: step s descends objective.loss(y, forward(w, statistics[s])).

  Args:
    forward: (weights, non-trainable weights) -> (support outputs aligned with y, the
      non-trainable weights as the pass leaves them).
    weights: the initial weights (tensors, in model.trainable_weights order).
    statistics: per step, the non-trainable weights its pass runs with (MAML++
      per-step batch-norm statistics; else the same list for every step).
    y: the support labels [..., B] (or targets [..., B, D]).
    objective: the loss to descend.
    learning_rates: see sgd_adapt.
    first_order: see sgd_adapt.
    adapted: per weight, whether the inner loop updates it (ANIL: only the head);
      the others stay the initial tensors themselves, bit for bit, and are not
      differentiated in the inner loop. None: all.
    checkpoint: bound the memory of many second-order steps: a step keeps only its
      input weights for the backward pass, which recomputes the step (its forward, its
      inner gradient) when it needs the step's derivatives. Same values, same
      gradients; one more support forward and backward per step in the backward pass.

  Returns:
    (trajectory, updated): the weights before and after each step, and per step the
    non-trainable weights after that step's forward pass.
  """
  adapted = [True] * len(weights) if adapted is None else list(adapted)
  if len(adapted) != len(weights):
    raise ValueError(f"adapted has {len(adapted)} entries for {len(weights)} weights")
  trajectory, updated = [list(weights)], []
  step = _checkpointed_sgd_step if checkpoint else _sgd_step
  for step_rates, step_statistics in zip(learning_rates, statistics):
    weights, new_statistics = step(
      forward,
      weights,
      step_statistics,
      y,
      objective=objective,
      rates=step_rates,
      first_order=first_order,
      adapted=adapted,
    )
    trajectory.append(weights)
    updated.append(new_statistics)
  return trajectory, updated


# weights after a step -> one tensor (e.g. the query loss), stacked over the steps.
Score = Callable[[Weights], tf.Tensor]


def adapt_to_end(
  forward: Forward,
  weights: Weights,
  statistics: Weights,
  y: tf.Tensor,
  *,
  objective: losses.TaskObjective,
  learning_rates: Sequence[Sequence[tf.Tensor]],
  first_order: bool,
  adapted: Optional[Sequence[bool]] = None,
  checkpoint: bool = False,
  score: Optional[Score] = None,
  unroll: bool = False,
) -> tuple[Weights, Optional[tf.Tensor]]:
  """adapt's weights after its last step, every pass with the same `statistics`, and
  what `score` says of the weights after each step.

  With two steps or more, plain tensor weights (the adapted ones; kernels at the shared
  initialisation, task_batched.SharedKernel, are tensors after a first step taken on
  its own), every step's rates of one shape and no checkpointing, the steps are one
  tf.while_loop: traced once, so the graph, its trace
  and its optimisation do not grow with the steps (a 20-step evaluation traced in a
  tenth of the unrolled time, results/inner_step_tracing.json); TensorFlow
  differentiates the loop (to second order through the inner gradients). Otherwise the
  steps are adapt's, unrolled.

  Args:
    forward, weights, y, objective, learning_rates, first_order, adapted, checkpoint:
      as adapt's.
    statistics: the non-trainable weights of every step's pass.
    score: weights -> a tensor [...] in the weights' float type, called on the
      weights after each step; None: nothing.
    unroll: unroll the steps in any case (a graph per step, as before the loop).

  Returns:
    (the weights after the last step, score's tensors after steps 1..S stacked on a
    new last axis [..., S], or None without score).
  """
  num_steps = len(learning_rates)
  adapted = [True] * len(weights) if adapted is None else list(adapted)
  # The loop carries the adapted weights only; the others stay the initial objects.
  plain = lambda ws: all(isinstance(w, tf.Tensor) for w, a in zip(ws, adapted) if a)
  rate_shapes = {tuple(tf.convert_to_tensor(r).shape) for step in learning_rates for r in step}
  loopable = not (unroll or num_steps < 2 or checkpoint or len(rate_shapes) > 1)
  recorded = [w for w, a in zip(weights, adapted) if a and isinstance(w, low_rank.RecordedKernel)]
  if loopable and recorded and all(w.tensors_after_a_step for w in recorded):
    # Kernels at the shared initialisation (task_batched.SharedKernel) are per-task
    # tensors after one step: that step on its own, the rest in the loop.
    first, _ = _sgd_step(
      forward,
      weights,
      statistics,
      y,
      objective=objective,
      rates=learning_rates[0],
      first_order=first_order,
      adapted=adapted,
    )
    final, rest = adapt_to_end(
      forward,
      first,
      statistics,
      y,
      objective=objective,
      learning_rates=learning_rates[1:],
      first_order=first_order,
      adapted=adapted,
      score=score,
    )
    if score is None:
      return final, None
    return final, tf.concat([score(first)[..., None], rest], axis=-1)
  if not loopable or not plain(weights):
    trajectory, _ = adapt(
      forward,
      weights,
      [statistics] * num_steps,
      y,
      objective=objective,
      learning_rates=learning_rates,
      first_order=first_order,
      adapted=adapted,
      checkpoint=checkpoint,
    )
    if score is None or not num_steps:
      return trajectory[-1], None
    return trajectory[-1], tf.stack([score(w) for w in trajectory[1:]], axis=-1)
  # rates[i][s]: weight i's rate at step s, read in the loop at its step counter.
  rates = [
    tf.stack([tf.convert_to_tensor(learning_rates[s][i], w.dtype) for s in range(num_steps)])
    for i, w in enumerate(weights)
  ]

  def sgd_step(step, moving_weights, full):
    new_weights, _ = _sgd_step(
      forward,
      full(moving_weights),
      statistics,
      y,
      objective=objective,
      rates=[tf.gather(r, step) for r in rates],
      first_order=first_order,
      adapted=adapted,
    )
    return [new_weights[i] for i, a in enumerate(adapted) if a], ()

  return loop_steps(sgd_step, weights, adapted, num_steps, score=score)


StepFunction = Callable[..., tuple[Weights, tuple]]


def loop_steps(
  step_function: StepFunction,
  weights: Weights,
  adapted: Sequence[bool],
  num_steps: int,
  *,
  score: Optional[Score] = None,
  state: Callable[[list], tuple] = lambda moving_weights: (),
) -> tuple[Weights, Optional[tf.Tensor]]:
  """num_steps steps of an inner optimiser as one tf.while_loop over the adapted weights.

  Args:
    step_function: (step int32 scalar, the adapted weights, full, *state) -> (the adapted
      weights after the step, the new state); full(adapted weights) gives every weight,
      the others as `weights` has them.
    weights: every weight before the first step; the adapted ones plain tensors.
    adapted: which weights the steps move.
    num_steps: S, 0 or more.
    score: weights -> a tensor [...] called after each step; None: nothing.
    state: the adapted weights before the first step -> the optimiser's own tensors
      carried from step to step (e.g. Adam's moments); by default none.

  Returns:
    (the weights after the last step, score's tensors after steps 1..S on a new last
    axis [..., S], or None without score or steps).
  """
  moving = [i for i, a in enumerate(adapted) if a]

  def full(moving_weights):
    merged = list(weights)  # the weights left alone stay the initial tensors themselves
    for i, w in zip(moving, moving_weights):
      merged[i] = w
    return merged

  def body(step, moving_weights, state, *scores):
    moving_weights, state = step_function(step, moving_weights, full, *state)
    if score is not None:
      scores = (scores[0].write(step, score(full(moving_weights))),)
    return (step + 1, moving_weights, tuple(state), *scores)

  scores = () if score is None else (tf.TensorArray(weights[0].dtype, size=max(num_steps, 1)),)
  moving_start = [weights[i] for i in moving]
  _, final, _, *scores = tf.while_loop(
    lambda step, *_: step < num_steps,
    body,
    (tf.constant(0), moving_start, tuple(state(moving_start)), *scores),
    maximum_iterations=num_steps,
  )
  if score is None or not num_steps:
    return full(final), None
  stacked = scores[0].stack()  # [S, ...]
  return full(final), tf.transpose(stacked, list(range(1, len(stacked.shape))) + [0])


def _sgd_step(forward, weights, statistics, y, *, objective, rates, first_order, adapted):
  """One SGD step on the support loss: (new weights, the non-trainable weights after the pass).

  A low_rank.RecordedKernel weight is updated from its products in the pass: they are
  recorded, and the kernel's sgd_step takes the loss gradients of their outputs (a
  LowRankKernel appends their rows and those gradients as a factor; a
  task_batched.SharedKernel forms each task's kernel gradient from them).
  """
  low_rank_kernel = lambda w: isinstance(w, low_rank.RecordedKernel)
  weights = [w.recording() if a and low_rank_kernel(w) else w for w, a in zip(weights, adapted)]
  moving = [w for w, a in zip(weights, adapted) if a and not low_rank_kernel(w)]
  recorded = [w for w, a in zip(weights, adapted) if a and low_rank_kernel(w)]
  with tf.GradientTape() as tape:
    # A recorded product must be on the tape even when nothing before it moves.
    tape.watch(moving + [w.base for w in recorded])
    outputs, new_statistics = forward(weights, statistics)
    loss = tf.reduce_sum(objective.loss(y, outputs))  # tasks batched: each its own
  products = [z for w in recorded for _, z in w.uses]
  gradients = iter(
    tape.gradient(loss, moving + products, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  )
  dense_gradients = [next(gradients) for _ in moving]
  product_gradients = list(gradients)
  dense_gradients = iter(dense_gradients)
  new_weights = []
  for w, rate, is_adapted in zip(weights, rates, adapted):
    if not is_adapted:
      new_weights.append(w)
    elif low_rank_kernel(w):
      new_weights.append(w.sgd_step(rate, product_gradients[: len(w.uses)], first_order))
      product_gradients = product_gradients[len(w.uses) :]
    else:
      gradient = next(dense_gradients)
      if first_order:
        gradient = tf.stop_gradient(gradient)
      new_weights.append(w - rate * gradient)
  return new_weights, [tf.stop_gradient(v) for v in new_statistics]


def _checkpointed_sgd_step(
  forward, weights, statistics, y, *, objective, rates, first_order, adapted
):
  """_sgd_step whose backward pass recomputes it instead of keeping its activations."""
  num_weights = len(weights)
  run = lambda w, r: _sgd_step(
    forward,
    w,
    statistics,
    y,
    objective=objective,
    rates=r,
    first_order=first_order,
    adapted=adapted,
  )

  @tf.custom_gradient
  def step(*flat):
    step_weights, step_rates = list(flat[:num_weights]), list(flat[num_weights:])
    new_weights, new_statistics = run(step_weights, step_rates)
    # A weight left as it is would leave the custom gradient's output aliasing its input.
    new_weights = [tf.identity(w) for w in new_weights]

    def backward(*upstream):
      # Inputs that depend on the upstream gradients: a recomputation the graph
      # optimiser cannot merge with the forward pass (which would keep its activations).
      with tf.control_dependencies(upstream[:num_weights]):
        inputs = [tf.identity(t) for t in flat]
      with tf.GradientTape() as tape:
        tape.watch(inputs)
        recomputed, _ = run(inputs[:num_weights], inputs[num_weights:])
      return tape.gradient(
        recomputed,
        inputs,
        output_gradients=list(upstream[:num_weights]),
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
      )

    return new_weights + new_statistics, backward

  rates = [tf.convert_to_tensor(rate, weights[0].dtype) for rate in rates]
  outputs = step(*weights, *rates)
  new_weights = list(outputs[:num_weights])
  # Weights outside the adapted set are the inputs themselves, as in _sgd_step.
  new_weights = [n if a else w for n, w, a in zip(new_weights, weights, adapted)]
  return new_weights, list(outputs[num_weights:])
