"""MAML (Finn, Abbeel & Levine 2017), first-order MAML, and MAML++ options, over any Keras model.

The meta-batch is mapped task by task with tf.map_fn (one traced task, a graph whose
size does not grow with the meta-batch, static shapes for XLA), or, with
vectorize=True, with tf.vectorized_map, which turns the tasks into batched ops: much
faster for small dense models (sinusoid), slower for convolutions, whose filter
gradients it cannot batch (TF falls back to a loop for Conv2DBackpropFilter).

Options of Antoniou, Edwards & Storkey 2019 ("How to train your MAML"):
  learn_inner_lrs: a learned learning rate per inner step and per weight tensor
    (LSLR; Meta-SGD, Li et al. 2017, learns one per parameter, this one per layer);
  multi_step_loss: the meta-loss weights the query loss after every inner step,
    annealed over `multi_step_anneal_steps` meta-steps toward the last step alone.

Batch norm: every forward pass, inner and outer, at meta-training and meta-test,
normalises with the statistics of the batch it is given (support or query set), as
the MAML code does; running statistics are never used. At meta-test this is
transductive: the query images of a task are normalised together.
"""

from typing import Optional

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import inner_loop
from mann.meta import losses


class GradientMetaLearner:
  """What MAML and Reptile share: an initialisation adapted by SGD on the support set."""

  def __init__(self, model: keras.Model, *, objective: losses.TaskObjective,
               num_inner_steps: int, inner_lr: float, vectorize: bool = False):
    if num_inner_steps < 0:
      raise ValueError(f"num_inner_steps must be >= 0, got {num_inner_steps}")
    self.model = model
    self.vectorize = vectorize
    self.objective = objective
    self.num_inner_steps = num_inner_steps
    self.inner_lr = inner_lr

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    return list(self.model.trainable_variables)

  def checkpoint_items(self) -> dict:
    """What a checkpoint must hold to resume this learner."""
    return {"model": self.model}

  @property
  def dtype(self) -> tf.DType:
    """The float type of the model's weights (float32, or float64 in gradient checks)."""
    return self.model.trainable_variables[0].dtype

  def _map_tasks(self, one_task, meta_batch, signature):
    """one_task over the tasks of meta_batch (axis 0), outputs stacked on axis 0."""
    if self.vectorize:
      return tf.vectorized_map(one_task, meta_batch, fallback_to_while_loop=True)
    return tf.map_fn(one_task, meta_batch, fn_output_signature=signature)

  def _weights(self) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    return ([v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables])

  def _learning_rates(self, num_steps: int) -> list[list[tf.Tensor]]:
    """learning_rates[s][i]: the rate of weight i at inner step s."""
    num_weights = len(self.model.trainable_variables)
    return [[tf.constant(self.inner_lr, self.dtype)] * num_weights] * num_steps

  def evaluate_tasks(self, meta_batch: episode_lib.Episode,
                     num_steps: int) -> dict[str, tf.Tensor]:
    """Adapts to each task of a meta-batch and scores its query set after every step.

    Args:
      meta_batch: Episode with a leading task axis [T, ...].
      num_steps: inner steps on each support set.

    Returns:
      {"loss": [T, num_steps + 1], METRIC: [T, num_steps + 1]}: column s is the
      query loss / metric after s steps (column 0: the initialisation itself).
    """
    weights, non_trainable = self._weights()
    rates = self._learning_rates(num_steps)

    def one_task(task):
      trajectory = inner_loop.sgd_adapt(
          self.model, weights, non_trainable, task.support_x, task.support_y,
          objective=self.objective, learning_rates=rates, first_order=True)
      outputs = [inner_loop.forward(self.model, w, non_trainable, task.query_x, training=True)
                 for w in trajectory]
      return (tf.stack([self.objective.loss(task.query_y, o) for o in outputs]),
              tf.stack([self.objective.metric(task.query_y, o) for o in outputs]))

    task_losses, task_metrics = self._map_tasks(one_task, meta_batch,
                                                (self.dtype, self.dtype))
    return {"loss": task_losses, self.objective.metric_name: task_metrics}


class MAML(GradientMetaLearner):
  """MAML: meta-learns an initialisation whose few-step adaptation does well on the query."""

  def __init__(self, model: keras.Model, *, objective: losses.TaskObjective,
               num_inner_steps: int, inner_lr: float, first_order: bool = False,
               learn_inner_lrs: bool = False, multi_step_loss: bool = False,
               multi_step_anneal_steps: int = 10000, vectorize: bool = False):
    """Args:
      model: any built Keras model; its variables hold the initialisation.
      objective: losses.CLASSIFICATION or losses.REGRESSION.
      num_inner_steps: SGD steps on the support set during meta-training.
      inner_lr: their learning rate (the initial value when learned).
      first_order: drop second-order terms (FOMAML).
      learn_inner_lrs: learn one rate per inner step and weight tensor (MAML++ LSLR).
      multi_step_loss: MAML++ multi-step loss (see the module docstring).
      multi_step_anneal_steps: meta-steps over which it anneals to the last step.
      vectorize: map tasks with tf.vectorized_map instead of tf.map_fn.
    """
    super().__init__(model, objective=objective, num_inner_steps=num_inner_steps,
                     inner_lr=inner_lr, vectorize=vectorize)
    self.first_order = first_order
    self.multi_step_loss = multi_step_loss
    self.multi_step_anneal_steps = multi_step_anneal_steps
    self.inner_lrs: Optional[list[list[tf.Variable]]] = None
    if learn_inner_lrs:
      self.inner_lrs = [[tf.Variable(inner_lr, dtype=self.dtype, name=f"inner_lr_{s}_{i}")
                         for i in range(len(model.trainable_variables))]
                        for s in range(num_inner_steps)]

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    learned = [rate for step in self.inner_lrs or [] for rate in step]
    return list(self.model.trainable_variables) + learned

  def checkpoint_items(self) -> dict:
    items = super().checkpoint_items()
    if self.inner_lrs is not None:
      items["inner_lrs"] = [rate for step in self.inner_lrs for rate in step]
    return items

  def _learning_rates(self, num_steps):
    if self.inner_lrs is None:
      return super()._learning_rates(num_steps)
    # Past the trained number of steps (longer adaptation at test), keep the last rates.
    learned = [[tf.convert_to_tensor(rate) for rate in step] for step in self.inner_lrs]
    return [learned[min(s, len(learned) - 1)] for s in range(num_steps)]

  def _step_loss_weights(self, step) -> tf.Tensor:
    """[num_inner_steps] weights of the query losses after steps 1..S (MAML++ MSL)."""
    num = self.num_inner_steps
    if not self.multi_step_loss or num <= 1:
      return (tf.one_hot(num - 1, num, dtype=self.dtype) if num > 0
              else tf.ones([1], self.dtype))
    progress = tf.minimum(tf.cast(step, self.dtype) / self.multi_step_anneal_steps, 1.0)
    early = (1.0 - progress) / num  # each non-final step's weight, falling to 0
    return tf.concat([tf.fill([num - 1], early), [1.0 - (num - 1) * early]], axis=0)

  def meta_loss(self, meta_batch: episode_lib.Episode,
                step=0) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Mean query loss over the tasks after adaptation: the quantity MAML minimises.

    Must run under the tape that differentiates it: the initial weights are read
    from the model's variables here.

    Args:
      meta_batch: Episode with a leading task axis [T, ...].
      step: the meta-step (for the multi-step loss annealing).

    Returns:
      The scalar meta-loss, and {"loss", METRIC}: task means of the query loss and
      metric after the last inner step.
    """
    weights, non_trainable = self._weights()
    rates = self._learning_rates(self.num_inner_steps)
    step_weights = self._step_loss_weights(step)

    def one_task(task):
      trajectory = inner_loop.sgd_adapt(
          self.model, weights, non_trainable, task.support_x, task.support_y,
          objective=self.objective, learning_rates=rates, first_order=self.first_order)
      scored = trajectory[1:] if self.num_inner_steps > 0 else trajectory
      outputs = [inner_loop.forward(self.model, w, non_trainable, task.query_x, training=True)
                 for w in scored]
      step_losses = tf.stack([self.objective.loss(task.query_y, o) for o in outputs])
      return (tf.reduce_sum(step_weights * step_losses), step_losses[-1],
              self.objective.metric(task.query_y, outputs[-1]))

    objective, final_loss, final_metric = self._map_tasks(one_task, meta_batch,
                                                          (self.dtype,) * 3)
    return tf.reduce_mean(objective), {
        "loss": tf.reduce_mean(final_loss),
        self.objective.metric_name: tf.reduce_mean(final_metric)}

  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Meta-gradients of meta_loss for trainable_variables, and the step's metrics."""
    with tf.GradientTape() as tape:
      loss, metrics = self.meta_loss(meta_batch, step)
    gradients = tape.gradient(loss, self.trainable_variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return gradients, metrics
