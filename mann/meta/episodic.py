"""Episodic training without an inner loop: a sequence model learns within the episode.

The MANN protocol of Santoro et al. 2016: an episode is a sequence of N*L images in
random order (mann.data.santoro.SequenceSampler); step t is fed the image x_t and
the one-hot label of step t-1, and is scored on predicting label y_t. The weights
are meta-trained end to end over episodes; adaptation to a new episode happens in
the model's state (its memory), not in its weights.

The few-shot protocol (the tasks MAML is scored on: N-way K-shot, Q queries per
class) in the same format: each query becomes one sequence, the support set (in a
random order) followed by that query; the query step is fed the last support label,
as any step is, and its own label never enters. Its prediction is the query's: the
(K+1)-th presentation of the query's class, after the support was written to memory.
A model trained on online sequences is scored in this protocol unchanged. Training
in it scores every step of these sequences, support steps included, like online.
An episode with an empty query set (online) is one sequence, its support.
"""

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.data import santoro
from mann.meta import learner
from mann.meta import losses
from mann.meta import task_format

# The sequence format shared with gradient-based learners over sequence models.
sequence_inputs = task_format.sequence_inputs


class Episodic:
  """Meta-trains a sequence model over Santoro episodes (no inner gradient steps)."""

  def __init__(
    self, model: keras.Model, *, num_classes: int, num_instances: int, string_labels: bool = False
  ):
    """Args:
    model: maps [T, L, D] to logits [T, L, num_classes] (models.mann, an LSTM);
      [T, L, 25] with string labels.
    num_classes: N.
    num_instances: L, presentations of each class in an episode.
    string_labels: labels are Santoro et al.'s 5-character strings (integers in
      [0, 3125)), read as 5 one-hots and predicted by 5 softmaxes; a step is right
      when all 5 characters are.
    """
    self.model = model
    self.num_classes = num_classes
    self.num_instances = num_instances
    self.string_labels = string_labels
    self.objective = losses.STRING_CLASSIFICATION if string_labels else losses.CLASSIFICATION

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    return list(self.model.trainable_variables)

  def checkpoint_items(self) -> dict:
    return {"model": self.model}

  def _sequences(self, meta_batch: episode_lib.Episode) -> tuple[tf.Tensor, tf.Tensor]:
    """The episodes as sequences: images [S, L, ...] and labels [S, L].

    Online (no queries): S = T, the support sequences. Few-shot: S = T * NQ, the
    sequence of task t and query j (row t * NQ + j) is task t's support, then query j.
    """
    num_queries = meta_batch.query_x.shape[1]
    if num_queries == 0:
      return meta_batch.support_x, meta_batch.support_y

    def with_each_query(support, query):  # [T, NK, ...], [T, NQ, ...] -> [T*NQ, NK+1, ...]
      sequences = task_format.query_sequences(support, query, num_lead_axes=1)
      return tf.reshape(sequences, [-1, *sequences.shape[2:]])

    return (
      with_each_query(meta_batch.support_x, meta_batch.query_x),
      with_each_query(meta_batch.support_y, meta_batch.query_y),
    )

  def _logits(self, images: tf.Tensor, labels: tf.Tensor, training: bool) -> tf.Tensor:
    return self.model(
      sequence_inputs(images, labels, self.num_classes, self.string_labels), training=training
    )

  # The model runs on all episodes at once: a batch-norm encoder normalises them together
  # and moves its running statistics once per call.
  not_separable_because = "Episodic runs all episodes as one batch (the encoder's batch norm)"

  @learner.traced_as_written
  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Gradients of the mean cross-entropy over every step of every sequence."""
    del step
    images, labels = self._sequences(meta_batch)
    with tf.GradientTape() as tape:
      logits = self._logits(images, labels, training=True)
      loss = tf.reduce_mean(self.objective.loss(labels, logits))
    gradients = tape.gradient(
      loss, self.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return gradients, {
      "loss": loss,
      "accuracy": tf.reduce_mean(self.objective.metric(labels, logits)),
    }

  @learner.traced_as_written
  def evaluate_tasks(
    self, meta_batch: episode_lib.Episode, num_steps: int = 0
  ) -> dict[str, tf.Tensor]:
    """Scores T episodes.

    Online (no queries): accuracy by instance, column i the mean correctness, per
    episode, over the steps that show a class for the (i+1)-th time.
    Few-shot: the query loss and accuracy of each task, as one column, the format of
    GradientMetaLearner.evaluate_tasks after zero steps.

    Args:
      meta_batch: T episodes.
      num_steps: unused (no inner steps); kept for the shared evaluation loop.

    Returns:
      online: {"accuracy_by_instance": [T, L]}; few-shot: {"loss": [T, 1],
      "accuracy": [T, 1]}.
    """
    del num_steps
    num_tasks, num_queries = meta_batch.query_y.shape[:2]
    if num_queries:
      images, labels = self._sequences(meta_batch)
      query_logits = self._logits(images, labels, training=False)[:, -1]  # [T*NQ, N]
      per_query = {
        name: tf.reshape(function(labels[:, -1:], query_logits[:, None]), [num_tasks, num_queries])
        for name, function in (("loss", self.objective.loss), ("accuracy", self.objective.metric))
      }
      return {
        name: tf.reduce_mean(value, axis=1, keepdims=True) for name, value in per_query.items()
      }
    logits = self._logits(meta_batch.support_x, meta_batch.support_y, training=False)
    # The metric of each step alone (one example): 1 where right, 0 where wrong.
    correct = tf.cast(
      self.objective.metric(meta_batch.support_y[..., None], logits[..., None, :]), tf.float32
    )
    instance = santoro.instance_numbers(meta_batch.support_y)  # [T, L*N], 1-based
    columns = tf.one_hot(instance - 1, self.num_instances)  # [T, steps, L]
    return {
      "accuracy_by_instance": tf.einsum("ts,tsl->tl", correct, columns)
      / tf.reduce_sum(columns, axis=1)
    }
