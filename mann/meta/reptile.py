"""Reptile (Nichol, Achiam & Schulman 2018): move the initialisation toward adapted weights.

Each task adapts on its support set; the meta-"gradient" is the mean over tasks of
(initial - adapted) weights, so an outer SGD step of size epsilon is the paper's update
w <- w + epsilon * mean(w_task - w). The inner optimiser is SGD (the form whose update
the paper analyses) or, with inner_optimizer="adam", the paper's: Adam with beta1 = 0
(its first moment is the gradient itself), beta2 = 0.999, epsilon 1e-8, at inner_lr,
its second moment started afresh for every task (the paper's code keeps it across
tasks); at test too (evaluate_tasks).
"""

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import gradient_learner
from mann.meta import inner_loop
from mann.meta import learner
from mann.models import low_rank

ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


class Reptile(gradient_learner.GradientMetaLearner):
  """Reptile over any Keras model; no second-order terms, no query set in the update."""

  def __init__(self, model, *, inner_optimizer: str = "sgd", **kwargs):
    """Args: inner_optimizer "sgd" or "adam" (see the module); the rest as
    GradientMetaLearner's."""
    if inner_optimizer not in ("sgd", "adam"):
      raise ValueError(f"inner_optimizer must be sgd or adam, got {inner_optimizer!r}")
    if inner_optimizer == "adam" and kwargs.get("shared_first_step"):
      raise ValueError("shared_first_step takes an SGD first step; not with inner Adam")
    super().__init__(model, **kwargs)
    self.inner_optimizer = inner_optimizer

  def _adam_adapt(self, model, weights, statistics, task, num_steps, *, training, score=None):
    """num_steps Adam steps (module's settings) on the task's support loss, without
    gradients through them: (adapted weights, score's tensors after steps 1..S on a new
    last axis [..., S], or None without score or steps)."""
    forward = self.task_format.support_forward(model, task, training=training)
    start = [tf.stop_gradient(low_rank.dense(w)) for w in weights]

    def adam_step(step, moving_weights, full, *second_moments):
      with tf.GradientTape() as tape:
        tape.watch(moving_weights)
        outputs, _ = forward(full(moving_weights), statistics)
        loss = tf.reduce_sum(self.objective.loss(task.support_y, outputs))
      gradients = tape.gradient(
        loss, moving_weights, unconnected_gradients=tf.UnconnectedGradients.ZERO
      )
      correction = 1.0 - tf.pow(tf.constant(ADAM_BETA2, self.dtype), tf.cast(step + 1, self.dtype))
      second_moments = [
        ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * tf.square(g)
        for v, g in zip(second_moments, gradients)
      ]
      moving_weights = [
        w - self.inner_lr * g / (tf.sqrt(v / correction) + ADAM_EPSILON)
        for w, g, v in zip(moving_weights, gradients, second_moments)
      ]
      return moving_weights, tuple(second_moments)

    return inner_loop.loop_steps(
      adam_step,
      start,
      self.adapted_weights,
      num_steps,
      score=score,
      state=lambda moving_start: tuple(tf.zeros_like(w) for w in moving_start),
    )

  @learner.traced_as_written
  def evaluate_tasks(self, meta_batch: episode_lib.Episode, num_steps: int) -> dict:
    """As GradientMetaLearner's; with inner Adam, the test steps are Adam steps too."""
    if self.inner_optimizer == "sgd":
      return super().evaluate_tasks(meta_batch, num_steps)
    statistics = self._statistics(0)
    transductive = self.batch_norm == "transductive"

    def one_task(task, model, weights):
      def score(w):
        return self._query_scores(model, w, statistics, task, training=transductive)

      _, after = self._adam_adapt(
        model, weights, statistics, task, num_steps, training=transductive, score=score
      )
      start = [low_rank.dense(w) for w in weights]
      scores = tf.concat([score(start)[..., None]] + ([after] if after is not None else []), -1)
      return scores[..., 0, :], scores[..., 1, :]

    task_losses, task_metrics = self._map_tasks(one_task, meta_batch, (self.dtype, self.dtype))
    return {"loss": task_losses, self.objective.metric_name: task_metrics}

  def _task_updates(self, meta_batch: episode_lib.Episode):
    """Each task's (initial - adapted) weights [T, *shape] per weight tensor, and its
    query loss and metric after adaptation [T]."""
    weights, non_trainable = self._weights()
    rates = self.inner_learning_rates(self.num_inner_steps)

    def one_task(task, model, weights):
      if self.inner_optimizer == "adam":
        adapted, _ = self._adam_adapt(
          model, weights, non_trainable, task, self.num_inner_steps, training=True
        )
      else:
        adapted, _ = self._adapt_to_end(
          model, weights, non_trainable, task, learning_rates=rates, first_order=True
        )
      outputs, _ = self._query_outputs(model, adapted, non_trainable, task, training=True)
      return (
        [low_rank.dense(w) - low_rank.dense(a) for w, a in zip(weights, adapted)],
        self.objective.loss(task.query_y, outputs),
        self.objective.metric(task.query_y, outputs),
      )

    signature = ([tf.TensorSpec(w.shape, w.dtype) for w in weights], self.dtype, self.dtype)
    return self._map_tasks(one_task, meta_batch, signature)

  @learner.traced_as_written
  def task_updates(self, meta_batch: episode_lib.Episode) -> list[tf.Tensor]:
    """Each task's update, initial minus adapted weights: [T, *shape] per weight tensor
    (model.trainable_weights order); their mean is compute_gradients' gradient."""
    return self._task_updates(meta_batch)[0]

  @learner.traced_as_written
  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """(initial - adapted) weights averaged over tasks, as gradients for an outer
    optimiser, and the query loss / metric after adaptation and (two tasks or more)
    the mean pairwise cosine of the tasks' updates (task_update_cosine), for logging."""
    del step
    differences, task_loss, task_metric = self._task_updates(meta_batch)
    gradients = [tf.reduce_mean(d, axis=0) for d in differences]
    metrics = {
      "loss": tf.reduce_mean(task_loss),
      self.objective.metric_name: tf.reduce_mean(task_metric),
    }
    if meta_batch.support_x.shape[0] >= 2:
      metrics[gradient_learner.TASK_UPDATE_COSINE] = gradient_learner.task_update_cosine(
        differences
      )
    return gradients, metrics
