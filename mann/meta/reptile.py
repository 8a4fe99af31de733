"""Reptile (Nichol, Achiam & Schulman 2018): move the initialisation toward adapted weights.

Each task adapts by plain SGD on its support set; the meta-"gradient" is the mean over
tasks of (initial - adapted) weights, so an outer SGD step of size epsilon is the
paper's update w <- w + epsilon * mean(w_task - w). (The paper's inner optimiser is
Adam; this one is SGD, the form whose update the paper analyses.)
"""

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import gradient_learner
from mann.meta import learner
from mann.models import low_rank


class Reptile(gradient_learner.GradientMetaLearner):
  """Reptile over any Keras model; no second-order terms, no query set in the update."""

  @learner.traced_as_written
  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """(initial - adapted) weights averaged over tasks, as gradients for an outer
    optimiser, and the query loss / metric after adaptation and (two tasks or more)
    the mean pairwise cosine of the tasks' updates (task_update_cosine), for logging."""
    del step
    weights, non_trainable = self._weights()
    rates = self.inner_learning_rates(self.num_inner_steps)

    def one_task(task, model, weights):
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
    differences, task_loss, task_metric = self._map_tasks(one_task, meta_batch, signature)
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
