"""Fine-tuning far past the trained number of inner steps, with a graph of one step.

evaluate_tasks unrolls its inner steps into one graph (what second-order MAML needs);
asking "how many fine-tuning steps does each initialisation need?" takes 100 steps and
more, so here one compiled SGD step is called again and again, and the query set is
scored at the requested step counts. Steps are the learner's own (its task format,
inner rates, batch-norm mode and adapted weights), so 0, 1, ..., S steps give
evaluate_tasks' numbers.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import gradient_learner


def fine_tune_scores(learner: gradient_learner.GradientMetaLearner,
                     meta_batch: episode_lib.Episode, *,
                     checkpoints: Sequence[int]) -> dict:
  """Adapts every task of meta_batch by SGD and scores its queries at each checkpoint.

  Args:
    learner: a GradientMetaLearner (MAML, FOMAML, Reptile, Transfer) whose tasks run
      task-batched (conv4, mlp, the MANN, the LSTM).
    meta_batch: Episode with a leading task axis [T, ...].
    checkpoints: increasing step counts (0 = the initialisation itself).

  Returns:
    {"loss": [T, C], METRIC: [T, C], "weights": C lists of [T, *shape] arrays (the
    adapted weights at each checkpoint, model.trainable_weights order)}, numpy.
  """
  checkpoints = list(checkpoints)
  if not checkpoints or checkpoints != sorted(set(checkpoints)) or checkpoints[0] < 0:
    raise ValueError(f"checkpoints must be increasing step counts >= 0, got {checkpoints}")
  model = learner._batched_model  # pylint: disable=protected-access
  if model is None:
    raise ValueError("fine_tune_scores needs task_mapping='batched' (conv4, mlp, mann, lstm)")
  num_tasks = meta_batch.support_x.shape[0]
  weights, _ = learner._weights()  # pylint: disable=protected-access
  # Dense per-task tensors: a low-rank kernel's structure would grow with every step.
  task_weights = [tf.broadcast_to(w[None], [num_tasks, *w.shape]) for w in weights]
  rates = learner._learning_rates(max(checkpoints[-1], 1))  # pylint: disable=protected-access
  training = learner.batch_norm == "transductive"
  statistics = lambda s: learner._statistics(s)  # pylint: disable=protected-access

  @tf.function
  def step(current, step_rates, step_statistics):
    trajectory, _ = learner._adapt(  # pylint: disable=protected-access
        model, current, [step_statistics], meta_batch, learning_rates=[step_rates],
        first_order=True, training=training)
    return trajectory[-1]

  @tf.function
  def score(current, step_statistics):
    outputs, _ = learner._query_outputs(  # pylint: disable=protected-access
        model, current, step_statistics, meta_batch, training=training)
    return (learner.objective.loss(meta_batch.query_y, outputs),
            learner.objective.metric(meta_batch.query_y, outputs))

  losses, metrics, snapshots = [], [], []
  done = 0
  for checkpoint in checkpoints:
    while done < checkpoint:
      task_weights = step(task_weights, rates[done], statistics(done))
      done += 1
    loss, metric = score(task_weights, statistics(done))
    losses.append(loss.numpy())
    metrics.append(metric.numpy())
    snapshots.append([w.numpy() for w in task_weights])
  return {"loss": np.stack(losses, axis=-1).astype(np.float64),
          learner.objective.metric_name: np.stack(metrics, axis=-1).astype(np.float64),
          "weights": snapshots}
