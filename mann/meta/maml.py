"""MAML (Finn, Abbeel & Levine 2017), first-order MAML, and MAML++ options, over any Keras model.

How the tasks of a meta-batch run (task_mapping):
  "batched": all tasks in one set of ops, each with its own weights
    (mann.models.task_batched: tasks folded into channels, grouped convolutions,
    batched matmuls); the fastest, for Sequential models of Conv2D, BatchNormalization,
    Dense, ReLU, pooling and Flatten layers (conv4, mlp);
  "map_fn": tf.map_fn over a per-task function, any Keras model (one traced task);
  "vectorized_map": tf.vectorized_map over it (falls back to a loop for convolution
    filter gradients);
  "auto" (default): "batched" when the model allows it, else "map_fn".
Each gives a graph whose size does not grow with the meta-batch, with static shapes.

Options of Antoniou, Edwards & Storkey 2019 ("How to train your MAML"):
  learn_inner_lrs: a learned learning rate per inner step and per weight tensor
    (LSLR; Meta-SGD, Li et al. 2017, learns one per parameter, this one per layer);
  multi_step_loss: the meta-loss weights the query loss after every inner step,
    annealed over `multi_step_anneal_steps` meta-steps toward the last step alone.

Batch norm, batch_norm="transductive" (the default, as the MAML code does): every
forward pass, inner and outer, at meta-training and meta-test, normalises with the
statistics of the batch it is given (support or query set); running statistics are
never used, and meta-test is transductive: a task's query images are normalised
together. batch_norm="per_step" (MAML++ BNRS, MAML only): training still normalises
with batch statistics, but keeps one set of running statistics per inner step
(s = 0..S-1 for the support passes, S for the query pass), each moved toward the
task-averaged moments of its pass; meta-test normalises with them (training=False),
so each query image is predicted on its own.
"""

from typing import Optional

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import inner_loop
from mann.meta import losses
from mann.models import task_batched

TASK_MAPPINGS = ("auto", "batched", "map_fn", "vectorized_map")


class GradientMetaLearner:
  """What MAML and Reptile share: an initialisation adapted by SGD on the support set."""

  BATCH_NORM_MODES = ("transductive", "per_step")

  def __init__(self, model: keras.Model, *, objective: losses.TaskObjective,
               num_inner_steps: int, inner_lr: float, task_mapping: str = "auto",
               batch_norm: str = "transductive"):
    if task_mapping not in TASK_MAPPINGS:
      raise ValueError(f"task_mapping must be one of {TASK_MAPPINGS}, got {task_mapping!r}")
    if num_inner_steps < 0:
      raise ValueError(f"num_inner_steps must be >= 0, got {num_inner_steps}")
    if batch_norm not in self.BATCH_NORM_MODES:
      raise ValueError(f"batch_norm must be one of {self.BATCH_NORM_MODES}, got {batch_norm!r}")
    self.model = model
    if task_mapping == "auto":
      task_mapping = ("batched" if task_batched.unsupported_reason(model) is None
                      else "map_fn")
    self.task_mapping = task_mapping
    self._batched_model = (task_batched.TaskBatchedModel(model)
                           if task_mapping == "batched" else None)
    self.batch_norm = batch_norm
    # Per-step running statistics: step_statistics[s] mirrors model.non_trainable_variables.
    self.step_statistics: Optional[list[list[tf.Variable]]] = None
    if batch_norm == "per_step":
      self.step_statistics = [
          [tf.Variable(v.value, trainable=False, name=f"step{s}_{v.name}")
           for v in model.non_trainable_variables] for s in range(num_inner_steps + 1)]
    self.objective = objective
    self.num_inner_steps = num_inner_steps
    self.inner_lr = inner_lr

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    return list(self.model.trainable_variables)

  def checkpoint_items(self) -> dict:
    """What a checkpoint must hold to resume this learner."""
    items = {"model": self.model}
    if self.step_statistics is not None:
      items["step_statistics"] = [v for step in self.step_statistics for v in step]
    return items

  def _statistics(self, step: int) -> list[tf.Tensor]:
    """The non-trainable weights that forward passes after `step` inner steps use."""
    if self.step_statistics is None:
      return [v.value for v in self.model.non_trainable_variables]
    return [tf.convert_to_tensor(v)
            for v in self.step_statistics[min(step, len(self.step_statistics) - 1)]]

  @property
  def dtype(self) -> tf.DType:
    """The float type of the model's weights (float32, or float64 in gradient checks)."""
    return self.model.trainable_variables[0].dtype

  def _map_tasks(self, one_task, meta_batch, signature):
    """Runs one_task(task, model, weights) for every task of meta_batch (axis 0).

    one_task is written for a single task: it calls model.stateless_call and
    reduces losses over the last (example) axis only. With task_mapping="batched" it
    is called once, on the whole meta-batch, with the task-batched model and the
    initial weights broadcast to [T, ...]; otherwise once per task.

    Returns:
      one_task's outputs with a leading task axis [T, ...]; signature describes one
      task's outputs (for tf.map_fn).
    """
    weights, _ = self._weights()
    if self._batched_model is not None:
      num_tasks = meta_batch.support_x.shape[0]
      stacked = [tf.broadcast_to(w[None], [num_tasks, *w.shape]) for w in weights]
      return one_task(meta_batch, self._batched_model, stacked)
    per_task = lambda task: one_task(task, self.model, weights)
    if self.task_mapping == "vectorized_map":
      return tf.vectorized_map(per_task, meta_batch, fallback_to_while_loop=True)
    return tf.map_fn(per_task, meta_batch, fn_output_signature=signature)

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
    rates = self._learning_rates(num_steps)
    statistics = [self._statistics(s) for s in range(num_steps + 1)]
    transductive = self.batch_norm == "transductive"

    def one_task(task, model, weights):
      trajectory, _ = inner_loop.sgd_adapt_with_statistics(
          model, weights, statistics[:-1], task.support_x, task.support_y,
          objective=self.objective, learning_rates=rates, first_order=True,
          training=transductive)
      outputs = [inner_loop.forward(model, w, statistics[s], task.query_x,
                                    training=transductive)
                 for s, w in enumerate(trajectory)]
      return (tf.stack([self.objective.loss(task.query_y, o) for o in outputs], axis=-1),
              tf.stack([self.objective.metric(task.query_y, o) for o in outputs], axis=-1))

    task_losses, task_metrics = self._map_tasks(one_task, meta_batch,
                                                (self.dtype, self.dtype))
    return {"loss": task_losses, self.objective.metric_name: task_metrics}


class MAML(GradientMetaLearner):
  """MAML: meta-learns an initialisation whose few-step adaptation does well on the query."""

  def __init__(self, model: keras.Model, *, objective: losses.TaskObjective,
               num_inner_steps: int, inner_lr: float, first_order: bool = False,
               learn_inner_lrs: bool = False, multi_step_loss: bool = False,
               multi_step_anneal_steps: int = 10000, task_mapping: str = "auto",
               batch_norm: str = "transductive", checkpoint_inner_steps: bool = False):
    """Args:
      model: any built Keras model; its variables hold the initialisation.
      objective: losses.CLASSIFICATION or losses.REGRESSION.
      num_inner_steps: SGD steps on the support set during meta-training.
      inner_lr: their learning rate (the initial value when learned).
      first_order: drop second-order terms (FOMAML).
      learn_inner_lrs: learn one rate per inner step and weight tensor (MAML++ LSLR).
      multi_step_loss: MAML++ multi-step loss (see the module docstring).
      multi_step_anneal_steps: meta-steps over which it anneals to the last step.
      task_mapping: how the tasks of a meta-batch run (see the module docstring).
      batch_norm: "transductive" or "per_step" (see the module docstring).
      checkpoint_inner_steps: keep only each inner step's input weights for the
        backward pass and recompute the step there (gradient checkpointing): memory
        that does not grow with the inner steps' activations, for about one more
        support forward and backward per step. Needs task_mapping "batched".
    """
    super().__init__(model, objective=objective, num_inner_steps=num_inner_steps,
                     inner_lr=inner_lr, task_mapping=task_mapping, batch_norm=batch_norm)
    self.first_order = first_order
    if checkpoint_inner_steps and self.task_mapping != "batched":
      # Inside tf.map_fn, TF cannot differentiate a custom gradient whose recomputation
      # reads the Keras layers' variables; the batched model reads none.
      raise ValueError("checkpoint_inner_steps needs task_mapping='batched' (a model of "
                       "Conv2D, batch norm, Dense, ReLU, pooling and Flatten layers)")
    self.checkpoint_inner_steps = checkpoint_inner_steps
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
    loss, metrics, _ = self._meta_loss_and_statistics(meta_batch, step)
    return loss, metrics

  def _meta_loss_and_statistics(self, meta_batch, step):
    """meta_loss, and the task-averaged batch-norm statistics of each pass (for the
    per-step running statistics): a flat list, step by step."""
    num_steps = self.num_inner_steps
    rates = self._learning_rates(num_steps)
    statistics = [self._statistics(s) for s in range(num_steps + 1)]
    step_weights = self._step_loss_weights(step)
    keep_statistics = self.step_statistics is not None

    def one_task(task, model, weights):
      trajectory, support_statistics = inner_loop.sgd_adapt_with_statistics(
          model, weights, statistics[:-1], task.support_x, task.support_y,
          objective=self.objective, learning_rates=rates, first_order=self.first_order,
          checkpoint=self.checkpoint_inner_steps)
      outputs = []
      for s in (range(1, num_steps + 1) if num_steps > 0 else [0]):
        query_outputs, query_statistics = model.stateless_call(
            trajectory[s], statistics[s], task.query_x, training=True)
        outputs.append(query_outputs)
      step_losses = tf.stack([self.objective.loss(task.query_y, o) for o in outputs],
                             axis=-1)
      new_statistics = []
      if keep_statistics:  # the last query pass updates the statistics of step S
        new_statistics = [tf.stop_gradient(v) for v in
                          [v for per_step in support_statistics for v in per_step]
                          + list(query_statistics)]
      return (tf.reduce_sum(step_weights * step_losses, axis=-1), step_losses[..., -1],
              self.objective.metric(task.query_y, outputs[-1]), new_statistics)

    signature = (self.dtype, self.dtype, self.dtype,
                 [tf.TensorSpec(v.shape, v.dtype) for per_step in statistics
                  for v in per_step] if keep_statistics else [])
    objective, final_loss, final_metric, new_statistics = self._map_tasks(
        one_task, meta_batch, signature)
    return tf.reduce_mean(objective), {
        "loss": tf.reduce_mean(final_loss),
        self.objective.metric_name: tf.reduce_mean(final_metric)}, [
            tf.reduce_mean(v, axis=0) for v in new_statistics]

  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Meta-gradients of meta_loss for trainable_variables, and the step's metrics."""
    with tf.GradientTape() as tape:
      loss, metrics, statistics = self._meta_loss_and_statistics(meta_batch, step)
    gradients = tape.gradient(loss, self.trainable_variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if self.step_statistics is not None:
      for variable, value in zip([v for per_step in self.step_statistics for v in per_step],
                                 statistics):
        variable.assign(value)
    return gradients, metrics
