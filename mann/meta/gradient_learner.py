"""What MAML, Reptile and Transfer share: an initialisation adapted by SGD on each task.

How the tasks of a meta-batch run (task_mapping):
  "batched": all tasks in one set of ops, each with its own weights: conv4 and the MLP
    through mann.models.task_batched (tasks folded into channels, grouped
    convolutions, batched matmuls), the MANN and the LSTM through
    mann.models.task_batched_sequence (one recurrence for all tasks);
  "map_fn": tf.map_fn over a per-task function, any Keras model (one traced task);
  "vectorized_map": tf.vectorized_map over it (falls back to a loop for convolution
    filter gradients);
  "auto" (default): "batched" when the model allows it, else "map_fn".
Each gives a graph whose size does not grow with the meta-batch, with static shapes.

What a task feeds the model is the task format's (mann.meta.task_format): its
examples (conv4, MLP), or sequences built from the support set (MANN, LSTM).
Which weights the inner loop adapts is `adapted` (ANIL adapts only the head); the
others stay at the initialisation within a task, and all are meta-learned.
"""

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import inner_loop
from mann.meta import learner
from mann.meta import losses
from mann.meta import task_format as task_format_lib
from mann.models import task_batched
from mann.models import task_batched_sequence
from mann.models import task_engine

TASK_MAPPINGS = ("auto", "batched", "map_fn", "vectorized_map")
# How the inner steps are traced (inner_loop.adapt_to_end): see GradientMetaLearner.
INNER_STEP_TRACINGS = ("auto", "loop", "unrolled")
TASK_UPDATE_COSINE = "task_update_cosine"


def pairwise_cosines(per_task: Sequence[tf.Tensor]) -> tf.Tensor:
  """Every pair's cosine similarity of the tasks' updates: [T (T - 1) / 2], pairs (i, j)
  with i < j in row-major order; per_task as task_update_cosine's (a zero update is
  orthogonal to every other)."""
  num_tasks = per_task[0].shape[0]
  flat = tf.concat([tf.reshape(u, [num_tasks, -1]) for u in per_task], axis=1)
  unit = tf.math.divide_no_nan(flat, tf.norm(flat, axis=1, keepdims=True))
  similarity = tf.matmul(unit, unit, transpose_b=True)
  rows, columns = np.triu_indices(num_tasks, k=1)
  return tf.gather_nd(similarity, np.stack([rows, columns], axis=1))


def task_update_cosine(per_task: Sequence[tf.Tensor]) -> tf.Tensor:
  """Mean cosine similarity over the pairs of tasks' updates: do the tasks of a
  meta-batch pull the initialisation the same way (1), apart (0) or against (< 0)?

  Args:
    per_task: one update per weight tensor, each [T, *shape] (T >= 2 tasks); a task's
      update is its slices, flattened and joined across the weight tensors.

  Returns:
    A scalar, the mean over the T (T - 1) / 2 pairs; a task with a zero update counts
    as orthogonal to every other.
  """
  num_tasks = per_task[0].shape[0]
  if num_tasks is None or num_tasks < 2:
    raise ValueError(f"need at least two tasks' updates, got {num_tasks}")
  flat = tf.concat([tf.reshape(u, [num_tasks, -1]) for u in per_task], axis=1)
  unit = tf.math.divide_no_nan(flat, tf.norm(flat, axis=1, keepdims=True))
  similarity = tf.matmul(unit, unit, transpose_b=True)
  off_diagonal = tf.reduce_sum(similarity) - tf.linalg.trace(similarity)
  return off_diagonal / (num_tasks * (num_tasks - 1))


def _task_batched_model(
  model: keras.Model, shared_first_step: bool = False
) -> tuple[Optional[task_engine.TaskEngine], Optional[str]]:
  """The task-batched form of `model`, or (None, why there is none)."""
  reason = task_batched.unsupported_reason(model)
  if reason is None:
    return task_batched.TaskBatchedModel(model, shared_kernels=shared_first_step), None
  sequence_reason = task_batched_sequence.unsupported_reason(model)
  if sequence_reason is None:
    return task_batched_sequence.TaskBatchedSequenceModel(model), None
  return None, f"{reason}; {sequence_reason}"


class GradientMetaLearner:
  """An initialisation adapted by SGD on each task's support set, scored on its queries."""

  # running: meta-test only, every pass normalises with the model's running statistics
  # (as the episodic learner tests): fine-tuning a model trained without an inner loop.
  BATCH_NORM_MODES = ("transductive", "per_step", "running")

  def __init__(
    self,
    model: keras.Model,
    *,
    objective: losses.TaskObjective,
    num_inner_steps: int,
    inner_lr: float,
    task_mapping: str = "auto",
    batch_norm: str = "transductive",
    task_format: Optional[task_format_lib.TaskFormat] = None,
    adapted_weights: Optional[Sequence[bool]] = None,
    inner_step_tracing: str = "auto",
    shared_first_step: bool = False,
  ):
    """Args:
    model: any built Keras model; its variables hold the initialisation.
    objective: losses.CLASSIFICATION, STRING_CLASSIFICATION or REGRESSION.
    num_inner_steps: SGD steps on the support set during meta-training.
    inner_lr: their learning rate.
    task_mapping: how the tasks of a meta-batch run (see the module docstring).
    batch_norm: "transductive", "per_step" (see mann.meta.maml) or "running"
      (meta-test only: the model's running statistics in every pass).
    task_format: what the model reads of a task (default: its examples,
      task_format.ExampleFormat; sequence models: task_format.SequenceFormat).
    adapted_weights: per weight of model.trainable_weights, whether the inner loop
      adapts it (None: all).
    inner_step_tracing: "loop": the inner steps traced once as a tf.while_loop
      (inner_loop.adapt_to_end: a graph and a trace that do not grow with the steps);
      "unrolled": each step traced on its own, as Python unrolls them; "auto": a loop
      where no meta-gradient flows back through the steps (meta-test evaluation and
      Reptile; the evaluation measured within noise of unrolled per call, 0.92x to
      1.09x), unrolled where one does (MAML's meta-loss: 1.7-3.2% faster per step than
      the loop, for a trace about 1 s longer; results/inner_step_tracing.json). Steps
      with per-step statistics, low-rank kernels or checkpointing are unrolled in any
      case.
    shared_first_step: run the first inner step's support pass, where every task
      still has the initialisation, as ordinary convolutions over all the tasks'
      images, only the kernels' gradients per task (task_batched.SharedKernel): the
      same values and meta-gradients; the conv4 5w1s second-order meta-gradient in
      0.86x the time at 1 query per class, 0.95x at 15, first order no faster
      (results/shared_first_step.json). The tasks' own meta-gradients of the
      initial kernels are then never formed, so MAML reports no task_update_cosine.
      Needs task_mapping "batched" and a model with Conv2D layers.
    """
    if task_mapping not in TASK_MAPPINGS:
      raise ValueError(f"task_mapping must be one of {TASK_MAPPINGS}, got {task_mapping!r}")
    if num_inner_steps < 0:
      raise ValueError(f"num_inner_steps must be >= 0, got {num_inner_steps}")
    if inner_step_tracing not in INNER_STEP_TRACINGS:
      raise ValueError(
        f"inner_step_tracing must be one of {INNER_STEP_TRACINGS}, got {inner_step_tracing!r}"
      )
    if batch_norm not in self.BATCH_NORM_MODES:
      raise ValueError(f"batch_norm must be one of {self.BATCH_NORM_MODES}, got {batch_norm!r}")
    self.model = model
    batched_model, reason = _task_batched_model(model, shared_first_step)
    if task_mapping == "auto":
      task_mapping = "batched" if batched_model is not None else "map_fn"
    if task_mapping == "batched" and batched_model is None:
      raise ValueError(f"cannot batch tasks of {model.name}: {reason}")
    if shared_first_step and not (
      task_mapping == "batched"
      and isinstance(batched_model, task_batched.TaskBatchedModel)
      and any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    ):
      raise ValueError(
        "shared_first_step shares convolutions: it needs a model with Conv2D layers "
        f"(conv4) and task_mapping='batched', got {model.name} with {task_mapping!r}"
      )
    self.shared_first_step = shared_first_step
    self.task_mapping = task_mapping
    self._batched_model: Optional[task_engine.TaskEngine] = (
      batched_model if task_mapping == "batched" else None
    )
    self.task_format = task_format or task_format_lib.ExampleFormat()
    num_weights = len(model.trainable_weights)
    self.adapted_weights = (
      [True] * num_weights if adapted_weights is None else list(adapted_weights)
    )
    if len(self.adapted_weights) != num_weights or not any(self.adapted_weights):
      raise ValueError(
        f"adapted_weights must mark some of the model's {num_weights} "
        f"weights, got {adapted_weights}"
      )
    self.batch_norm = batch_norm
    self.inner_step_tracing = inner_step_tracing
    # Per-step running statistics: step_statistics[s] mirrors model.non_trainable_variables.
    # Under several replicas each moves them by its own tasks' statistics; the mean is kept.
    self.step_statistics: Optional[list[list[tf.Variable]]] = None
    if batch_norm == "per_step":
      self.step_statistics = [
        [
          tf.Variable(
            v.value,
            trainable=False,
            name=f"step{s}_{v.name}",
            aggregation=tf.VariableAggregation.MEAN,
          )
          for v in model.non_trainable_variables
        ]
        for s in range(num_inner_steps + 1)
      ]
    self.objective = objective
    self.num_inner_steps = num_inner_steps
    self.inner_lr = inner_lr

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    return list(self.model.trainable_variables)

  @property
  def not_separable_because(self) -> Optional[str]:
    """None where compute_gradients is the mean over the tasks of each task's own
    gradients and metrics, with nothing updated once per meta-batch, so that a
    meta-batch may run in chunks of tasks (mann.meta.task_chunks): each task adapts and
    is normalised on its own. Otherwise why not: per-step running statistics move once
    per meta-batch."""
    if self.step_statistics is None:
      return None
    return "batch_norm='per_step' moves its running statistics once per meta-batch"

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
    return [
      tf.convert_to_tensor(v)
      for v in self.step_statistics[min(step, len(self.step_statistics) - 1)]
    ]

  def support_loss(
    self, weights: Sequence[tf.Tensor], task: episode_lib.Episode, *, step: int = 0
  ) -> tf.Tensor:
    """The loss inner step `step` descends on one task (scalar): the objective's loss of
    the task's support outputs, as its task format feeds them, under `weights` (one per
    model.trainable_weights) and the step's statistics and batch-norm mode."""
    forward = self.task_format.support_forward(
      self.model, task, training=self.batch_norm == "transductive"
    )
    return self.objective.loss(task.support_y, forward(list(weights), self._statistics(step))[0])

  def query_loss(
    self, weights: Sequence[tf.Tensor], task: episode_lib.Episode, *, step: int = 0
  ) -> tf.Tensor:
    """The objective's loss of one task's query outputs (scalar) under `weights` and the
    statistics and batch-norm mode of the forward pass after `step` inner steps."""
    training = self.batch_norm == "transductive"
    outputs = self._query_outputs(
      self.model, list(weights), self._statistics(step), task, training=training
    )[0]
    return self.objective.loss(task.query_y, outputs)

  @property
  def dtype(self) -> tf.DType:
    """The float type of the model's weights (float32, or float64 in gradient checks)."""
    return self.model.trainable_variables[0].dtype

  def _map_tasks(self, one_task, meta_batch, signature, task_start_weights=None):
    """Runs one_task(task, model, weights) for every task of meta_batch (axis 0).

    one_task is written for a single task: it runs the model through the task format's
    forward functions and reduces losses over the example axis only. With
    task_mapping="batched" it is called once, on the whole meta-batch, with the
    task-batched model and the initial weights broadcast to [T, ...]; otherwise once
    per task.

    Args:
      task_start_weights: a list, or None; batched, when every task's weights are plain
        [T, ...] tensors, they are appended to it (a tape that watched the call can
        differentiate by them: one gradient per task).

    Returns:
      one_task's outputs with a leading task axis [T, ...]; signature describes one
      task's outputs (for tf.map_fn).
    """
    weights, _ = self._weights()
    if self._batched_model is not None:
      num_tasks = meta_batch.support_x.shape[0]
      if self._low_rank_kernels:
        stacked = self._batched_model.task_weights(weights, num_tasks)
      else:
        stacked = [tf.broadcast_to(w[None], [num_tasks, *w.shape]) for w in weights]
      if task_start_weights is not None and all(isinstance(w, tf.Tensor) for w in stacked):
        task_start_weights.extend(stacked)
      return one_task(meta_batch, self._batched_model, stacked)
    per_task = lambda task: one_task(task, self.model, weights)
    if self.task_mapping == "vectorized_map":
      # warn=False: the loop fallback for ops pfor lacks is this mapping's documented cost.
      return tf.vectorized_map(per_task, meta_batch, fallback_to_while_loop=True, warn=False)
    return tf.map_fn(per_task, meta_batch, fn_output_signature=signature)

  # Per-task recurrent kernels as low-rank updates (mann.models.low_rank) where the
  # batched model offers them; False where a step needs plain tensors (checkpointing).
  _low_rank_kernels = True

  def _weights(self) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    return (
      [v.value for v in self.model.trainable_variables],
      [v.value for v in self.model.non_trainable_variables],
    )

  def inner_learning_rates(self, num_steps: int) -> list[list[tf.Tensor]]:
    """learning_rates[s][i]: the rate of weight i at inner step s."""
    num_weights = len(self.model.trainable_variables)
    return [[tf.constant(self.inner_lr, self.dtype)] * num_weights] * num_steps

  def _support_arguments(self, model, task, training) -> dict:
    """What inner_loop.adapt and adapt_to_end take of a task: its support set's
    forward pass (as the task format feeds it) and labels, the loss, the adapted set."""
    return dict(
      forward=self.task_format.support_forward(model, task, training=training),
      y=task.support_y,
      objective=self.objective,
      adapted=self.adapted_weights,
    )

  def _adapt(
    self,
    model,
    weights,
    statistics,
    task,
    *,
    learning_rates,
    first_order,
    training=True,
    checkpoint=False,
  ):
    """inner_loop.adapt on the task's support set."""
    return inner_loop.adapt(
      weights=weights,
      statistics=statistics,
      learning_rates=learning_rates,
      first_order=first_order,
      checkpoint=checkpoint,
      **self._support_arguments(model, task, training),
    )

  def _adapt_to_end(
    self,
    model,
    weights,
    statistics,
    task,
    *,
    learning_rates,
    first_order,
    training=True,
    checkpoint=False,
    score=None,
    differentiated=False,
  ):
    """inner_loop.adapt_to_end on the task's support set; differentiated: a
    meta-gradient flows back through the steps (see inner_step_tracing)."""
    tracing = self.inner_step_tracing
    return inner_loop.adapt_to_end(
      weights=weights,
      statistics=statistics,
      learning_rates=learning_rates,
      first_order=first_order,
      checkpoint=checkpoint,
      score=score,
      unroll=tracing == "unrolled" or (tracing == "auto" and differentiated),
      **self._support_arguments(model, task, training),
    )

  def _query_scores(self, model, weights, statistics, task, *, training) -> tf.Tensor:
    """The query loss and metric under `weights`, stacked [..., 2]."""
    outputs = self._query_outputs(model, weights, statistics, task, training=training)[0]
    return tf.stack(
      [self.objective.loss(task.query_y, outputs), self.objective.metric(task.query_y, outputs)],
      axis=-1,
    )

  def _query_outputs(self, model, weights, statistics, task, *, training):
    """(query outputs aligned with task.query_y, the statistics after the pass)."""
    return self.task_format.query_forward(model, task, training=training)(weights, statistics)

  @learner.traced_as_written
  def evaluate_tasks(self, meta_batch: episode_lib.Episode, num_steps: int) -> dict[str, tf.Tensor]:
    """Adapts to each task of a meta-batch and scores its query set after every step.

    Args:
      meta_batch: Episode with a leading task axis [T, ...].
      num_steps: inner steps on each support set.

    Returns:
      {"loss": [T, num_steps + 1], METRIC: [T, num_steps + 1]}: column s is the
      query loss / metric after s steps (column 0: the initialisation itself).
    """
    rates = self.inner_learning_rates(num_steps)
    statistics = [self._statistics(s) for s in range(num_steps + 1)]
    transductive = self.batch_norm == "transductive"

    def one_task(task, model, weights):
      def score(w, s=0):
        return self._query_scores(model, w, statistics[s], task, training=transductive)

      if self.step_statistics is None:  # one set of statistics: the steps may loop
        _, scores = self._adapt_to_end(
          model,
          weights,
          statistics[0],
          task,
          learning_rates=rates,
          first_order=True,
          training=transductive,
          score=score,
        )
        scores = [score(weights)[..., None]] + ([scores] if scores is not None else [])
      else:
        trajectory, _ = self._adapt(
          model,
          weights,
          statistics[:-1],
          task,
          learning_rates=rates,
          first_order=True,
          training=transductive,
        )
        scores = [score(w, s)[..., None] for s, w in enumerate(trajectory)]
      scores = tf.concat(scores, axis=-1)  # [..., 2, num_steps + 1]
      return scores[..., 0, :], scores[..., 1, :]

    task_losses, task_metrics = self._map_tasks(one_task, meta_batch, (self.dtype, self.dtype))
    return {"loss": task_losses, self.objective.metric_name: task_metrics}
