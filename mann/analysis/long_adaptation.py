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


class FineTuner:
  """Adapts every task of a meta-batch by SGD and scores its queries at step checkpoints.

  The step and the scoring pass are compiled once per FineTuner (and meta-batch shape),
  the meta-batch a tensor argument: one FineTuner serves every batch of an evaluation.
  """

  def __init__(self, learner: gradient_learner.GradientMetaLearner):
    """Args:
    learner: a GradientMetaLearner (MAML, FOMAML, Reptile, Transfer) whose model has a
      task-batched form (conv4, mlp, the MANN, the LSTM), whatever its task_mapping.
    """
    self.learner = learner
    model = learner._batched_model  # pylint: disable=protected-access
    if model is None:
      model, reason = gradient_learner._task_batched_model(learner.model)  # pylint: disable=protected-access
    if model is None:
      raise ValueError(f"fine-tuning curves need a task-batched model: {reason}")
    self._model = model
    training = learner.batch_norm == "transductive"

    @tf.function
    def step(meta_batch, current, step_rates, step_statistics):
      trajectory, _ = learner._adapt(  # pylint: disable=protected-access
        model,
        current,
        [step_statistics],
        meta_batch,
        learning_rates=[step_rates],
        first_order=True,
        training=training,
      )
      return trajectory[-1]

    @tf.function
    def score(meta_batch, current, step_statistics):
      outputs, _ = learner._query_outputs(  # pylint: disable=protected-access
        model, current, step_statistics, meta_batch, training=training
      )
      return (
        learner.objective.loss(meta_batch.query_y, outputs),
        learner.objective.metric(meta_batch.query_y, outputs),
      )

    self._step, self._score = step, score

  def scores(self, meta_batch: episode_lib.Episode, *, checkpoints: Sequence[int]) -> dict:
    """Fine-tunes meta_batch's tasks from the learner's initialisation.

    Args:
      meta_batch: Episode with a leading task axis [T, ...].
      checkpoints: increasing step counts (0 = the initialisation itself).

    Returns:
      {"loss": [T, C], METRIC: [T, C], "weights": C lists of [T, *shape] arrays (the
      adapted weights at each checkpoint, model.trainable_weights order)}, numpy.
    """
    checkpoints = list(checkpoints)
    if not checkpoints or checkpoints != sorted(set(checkpoints)) or checkpoints[0] < 0:
      raise ValueError(f"checkpoints must be increasing step counts >= 0, got {checkpoints}")
    inner_optimizer = getattr(self.learner, "inner_optimizer", "sgd")
    if checkpoints[-1] > 0 and inner_optimizer != "sgd":
      raise ValueError(
        f"fine-tuning curves take SGD steps; this learner's inner optimiser is "
        f"{inner_optimizer} (score it at 0 steps only, or evaluate it)"
      )
    learner = self.learner
    num_tasks = meta_batch.support_x.shape[0]
    weights, _ = learner._weights()  # pylint: disable=protected-access
    # Dense per-task tensors: a low-rank kernel's structure would grow with every step.
    task_weights = [tf.broadcast_to(w[None], [num_tasks, *w.shape]) for w in weights]
    rates = learner.inner_learning_rates(max(checkpoints[-1], 1))
    statistics = learner._statistics  # pylint: disable=protected-access
    losses, metrics, snapshots = [], [], []
    done = 0
    for checkpoint in checkpoints:
      while done < checkpoint:
        task_weights = self._step(meta_batch, task_weights, rates[done], statistics(done))
        done += 1
      loss, metric = self._score(meta_batch, task_weights, statistics(done))
      losses.append(loss.numpy())
      metrics.append(metric.numpy())
      snapshots.append([w.numpy() for w in task_weights])
    return {
      "loss": np.stack(losses, axis=-1).astype(np.float64),
      learner.objective.metric_name: np.stack(metrics, axis=-1).astype(np.float64),
      "weights": snapshots,
    }


def fine_tune_scores(
  learner: gradient_learner.GradientMetaLearner,
  meta_batch: episode_lib.Episode,
  *,
  checkpoints: Sequence[int],
) -> dict:
  """FineTuner(learner).scores(meta_batch, checkpoints=...) for a single meta-batch
  (several batches: make one FineTuner, so its step is compiled once)."""
  return FineTuner(learner).scores(meta_batch, checkpoints=checkpoints)
