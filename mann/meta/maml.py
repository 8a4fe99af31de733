"""MAML (Finn, Abbeel & Levine 2017), first-order MAML, and MAML++ options, over any Keras model.

How the tasks of a meta-batch run (task_mapping), what a task feeds the model (its
examples, or sequences for the MANN and the LSTM) and which weights adapt: see
mann.meta.gradient_learner.

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

from typing import Optional, Sequence

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import gradient_learner
from mann.meta import learner
from mann.meta import losses
from mann.meta import task_format as task_format_lib


class MAML(gradient_learner.GradientMetaLearner):
  """MAML: meta-learns an initialisation whose few-step adaptation does well on the query."""

  def __init__(
    self,
    model: keras.Model,
    *,
    objective: losses.TaskObjective,
    num_inner_steps: int,
    inner_lr: float,
    first_order: bool = False,
    learn_inner_lrs: bool = False,
    multi_step_loss: bool = False,
    multi_step_anneal_steps: int = 10000,
    task_mapping: str = "auto",
    batch_norm: str = "transductive",
    checkpoint_inner_steps: bool = False,
    task_format: Optional[task_format_lib.TaskFormat] = None,
    adapted_weights: Optional[Sequence[bool]] = None,
    inner_step_tracing: str = "auto",
    shared_first_step: bool = False,
    pre_adaptation_loss_weight: float = 0.0,
  ):
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
    task_format, adapted_weights, inner_step_tracing, shared_first_step: see
      gradient_learner.GradientMetaLearner (not with checkpoint_inner_steps, whose
      steps take plain tensors).
    pre_adaptation_loss_weight: lambda >= 0 of a joint objective: each task's meta-loss
      is its query loss after the inner steps plus lambda times its query loss before
      them, under the initialisation itself (for a memory model: what its memory alone
      predicts from the support sequence), so the initialisation is trained to solve the
      task without a gradient step too. 0: MAML's loss. The step's metrics then hold
      loss_before_adaptation and METRIC_before_adaptation.
    """
    super().__init__(
      model,
      objective=objective,
      num_inner_steps=num_inner_steps,
      inner_lr=inner_lr,
      task_mapping=task_mapping,
      batch_norm=batch_norm,
      task_format=task_format,
      adapted_weights=adapted_weights,
      inner_step_tracing=inner_step_tracing,
      shared_first_step=shared_first_step,
    )
    self.first_order = first_order
    if checkpoint_inner_steps and self.task_mapping != "batched":
      # Inside tf.map_fn, TF cannot differentiate a custom gradient whose recomputation
      # reads the Keras layers' variables; the batched model reads none.
      raise ValueError(
        "checkpoint_inner_steps needs task_mapping='batched' (conv4, mlp, mann, lstm)"
      )
    if checkpoint_inner_steps and shared_first_step:
      raise ValueError(
        "checkpoint_inner_steps and shared_first_step do not combine: a checkpointed "
        "step takes plain per-task tensors; drop one of them"
      )
    self.checkpoint_inner_steps = checkpoint_inner_steps
    # A checkpointed step's custom gradient takes tensors only.
    self._low_rank_kernels = not checkpoint_inner_steps
    self.multi_step_loss = multi_step_loss
    self.multi_step_anneal_steps = multi_step_anneal_steps
    if pre_adaptation_loss_weight < 0:
      raise ValueError(f"pre_adaptation_loss_weight must be >= 0, got {pre_adaptation_loss_weight}")
    self.pre_adaptation_loss_weight = float(pre_adaptation_loss_weight)
    self.inner_lrs: Optional[list[list[tf.Variable]]] = None
    if learn_inner_lrs and num_inner_steps < 1:
      raise ValueError(
        f"learn_inner_lrs learns a rate per inner step: num_inner_steps must be >= 1, "
        f"got {num_inner_steps}"
      )
    if learn_inner_lrs:
      self.inner_lrs = [
        [
          tf.Variable(inner_lr, dtype=self.dtype, name=f"inner_lr_{s}_{i}")
          for i in range(len(model.trainable_variables))
        ]
        for s in range(num_inner_steps)
      ]

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    learned = [rate for step in self.inner_lrs or [] for rate in step]
    return list(self.model.trainable_variables) + learned

  def checkpoint_items(self) -> dict:
    items = super().checkpoint_items()
    if self.inner_lrs is not None:
      items["inner_lrs"] = [rate for step in self.inner_lrs for rate in step]
    return items

  def inner_learning_rates(self, num_steps):
    if self.inner_lrs is None:
      return super().inner_learning_rates(num_steps)
    # Past the trained number of steps (longer adaptation at test), keep the last rates.
    learned = [[tf.convert_to_tensor(rate) for rate in step] for step in self.inner_lrs]
    return [learned[min(s, len(learned) - 1)] for s in range(num_steps)]

  def _step_loss_weights(self, step) -> tf.Tensor:
    """[num_inner_steps] weights of the query losses after steps 1..S (MAML++ MSL; two
    steps or more)."""
    num = self.num_inner_steps
    progress = tf.minimum(tf.cast(step, self.dtype) / self.multi_step_anneal_steps, 1.0)
    early = (1.0 - progress) / num  # each non-final step's weight, falling to 0
    return tf.concat([tf.fill([num - 1], early), [1.0 - (num - 1) * early]], axis=0)

  @learner.traced_as_written
  def meta_loss(
    self, meta_batch: episode_lib.Episode, step=0
  ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
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

  def _meta_loss_and_statistics(self, meta_batch, step, task_start_weights=None):
    """meta_loss, and the task-averaged batch-norm statistics of each pass (for the
    per-step running statistics): a flat list, step by step. task_start_weights: see
    GradientMetaLearner._map_tasks."""
    num_steps = self.num_inner_steps
    rates = self.inner_learning_rates(num_steps)
    statistics = [self._statistics(s) for s in range(num_steps + 1)]
    # Only the last step's query loss counts unless the multi-step loss weighs them all.
    every_step = self.multi_step_loss and num_steps > 1
    step_weights = self._step_loss_weights(step) if every_step else None
    keep_statistics = self.step_statistics is not None
    joint = self.pre_adaptation_loss_weight > 0

    def one_task(task, model, weights):
      # Under the initialisation, before the inner steps (the joint objective's term).
      before = (
        self._query_scores(model, weights, statistics[0], task, training=True) if joint else None
      )
      query = lambda w, s: self._query_outputs(model, w, statistics[s], task, training=True)
      loss = lambda outputs: self.objective.loss(task.query_y, outputs)
      metric = lambda outputs: self.objective.metric(task.query_y, outputs)
      new_statistics = []
      if keep_statistics:  # per-step statistics: every step's pass its own, unrolled
        trajectory, support_statistics = self._adapt(
          model,
          weights,
          statistics[:-1],
          task,
          learning_rates=rates,
          first_order=self.first_order,
          checkpoint=self.checkpoint_inner_steps,
        )
        scored = range(1, num_steps) if every_step else []
        step_losses = [loss(query(trajectory[s], s)[0]) for s in scored]
        outputs, query_statistics = query(trajectory[-1], num_steps)
        step_losses.append(loss(outputs))
        final_loss, final_metric = step_losses[-1], metric(outputs)
        # the last query pass updates the statistics of step S
        new_statistics = [
          tf.stop_gradient(v)
          for v in [v for per_step in support_statistics for v in per_step] + list(query_statistics)
        ]
        step_losses = tf.stack(step_losses, axis=-1)
      else:  # the steps to the last, with the query scores after each where they count
        score = lambda w: self._query_scores(model, w, statistics[0], task, training=True)
        adapted, scores = self._adapt_to_end(
          model,
          weights,
          statistics[0],
          task,
          learning_rates=rates,
          first_order=self.first_order,
          checkpoint=self.checkpoint_inner_steps,
          score=score if every_step else None,
          differentiated=True,
        )
        if scores is None:
          scores = score(adapted)[..., None]
        step_losses = scores[..., 0, :]
        final_loss, final_metric = step_losses[..., -1], scores[..., 1, -1]
      objective = tf.reduce_sum(step_weights * step_losses, axis=-1) if every_step else final_loss
      if joint:
        objective = objective + self.pre_adaptation_loss_weight * before[..., 0]
        return objective, final_loss, final_metric, new_statistics, before[..., 0], before[..., 1]
      return objective, final_loss, final_metric, new_statistics

    signature = (
      self.dtype,
      self.dtype,
      self.dtype,
      [tf.TensorSpec(v.shape, v.dtype) for per_step in statistics for v in per_step]
      if keep_statistics
      else [],
    ) + ((self.dtype, self.dtype) if joint else ())
    objective, final_loss, final_metric, new_statistics, *before = self._map_tasks(
      one_task, meta_batch, signature, task_start_weights
    )
    metric_name = self.objective.metric_name
    metrics = {"loss": tf.reduce_mean(final_loss), metric_name: tf.reduce_mean(final_metric)}
    if joint:
      metrics["loss_before_adaptation"] = tf.reduce_mean(before[0])
      metrics[f"{metric_name}_before_adaptation"] = tf.reduce_mean(before[1])
    return (
      tf.reduce_mean(objective),
      metrics,
      [tf.reduce_mean(v, axis=0) for v in new_statistics],
    )

  @learner.traced_as_written
  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Meta-gradients of meta_loss for trainable_variables, and the step's metrics.

    Where the tasks run batched with plain per-task weights (conv4, mlp; two tasks or
    more), the metrics hold task_update_cosine: the mean pairwise cosine of the tasks'
    own meta-gradients, from the same backward pass.
    """
    if self.batch_norm == "running":
      raise ValueError(
        "batch_norm='running' is a meta-test mode: meta-training "
        "normalises with batch statistics (transductive or per_step)"
      )
    task_start_weights: list[list[tf.Tensor]] = []
    with tf.GradientTape() as tape:
      loss, metrics, statistics = self._meta_loss_and_statistics(
        meta_batch, step, task_start_weights
      )
    if meta_batch.support_x.shape[0] < 2:
      task_start_weights = []
    variables = self.trainable_variables
    gradients = tape.gradient(
      loss, variables + task_start_weights, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    gradients, per_task = gradients[: len(variables)], gradients[len(variables) :]
    if per_task:
      metrics[gradient_learner.TASK_UPDATE_COSINE] = gradient_learner.task_update_cosine(per_task)
    if self.step_statistics is not None:
      for variable, value in zip(
        [v for per_step in self.step_statistics for v in per_step], statistics
      ):
        variable.assign(value)
    return gradients, metrics
