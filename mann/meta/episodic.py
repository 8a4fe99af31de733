"""Episodic training without an inner loop: a sequence model learns within the episode.

The MANN protocol of Santoro et al. 2016: an episode is a sequence of N*L images in
random order (mann.data.santoro.SequenceSampler); step t is fed the image x_t and
the one-hot label of step t-1, and is scored on predicting label y_t. The weights
are meta-trained end to end over episodes; adaptation to a new episode happens in
the model's state (its memory), not in its weights.
"""

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.data import santoro
from mann.meta import losses


def sequence_inputs(images: tf.Tensor, labels: tf.Tensor, num_classes: int) -> tf.Tensor:
  """[T, L, H, W, C] images and [T, L] labels -> [T, L, H*W*C + N]: each step's
  flattened image and the previous step's one-hot label."""
  flat = tf.reshape(images, [*images.shape[:2], -1])
  return tf.concat([flat, santoro.previous_label_inputs(labels, num_classes)], axis=-1)


class Episodic:
  """Meta-trains a sequence model over Santoro episodes (no inner gradient steps)."""

  def __init__(self, model: keras.Model, *, num_classes: int, num_instances: int):
    """Args:
      model: maps [T, L, D] to logits [T, L, num_classes] (models.mann, an LSTM).
      num_classes: N.
      num_instances: L, presentations of each class in an episode.
    """
    self.model = model
    self.num_classes = num_classes
    self.num_instances = num_instances
    self.objective = losses.CLASSIFICATION

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    return list(self.model.trainable_variables)

  def checkpoint_items(self) -> dict:
    return {"model": self.model}

  def _logits(self, meta_batch: episode_lib.Episode, training: bool) -> tf.Tensor:
    inputs = sequence_inputs(meta_batch.support_x, meta_batch.support_y, self.num_classes)
    return self.model(inputs, training=training)

  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Gradients of the mean cross-entropy over every step of every episode."""
    del step
    with tf.GradientTape() as tape:
      logits = self._logits(meta_batch, training=True)
      loss = tf.reduce_mean(self.objective.loss(meta_batch.support_y, logits))
    gradients = tape.gradient(loss, self.trainable_variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return gradients, {"loss": loss,
                       "accuracy": tf.reduce_mean(
                           self.objective.metric(meta_batch.support_y, logits))}

  def evaluate_tasks(self, meta_batch: episode_lib.Episode,
                     num_steps: int = 0) -> dict[str, tf.Tensor]:
    """Accuracy by instance: column i is the mean correctness, per episode, over the
    steps that show a class for the (i+1)-th time.

    Args:
      meta_batch: T sequences.
      num_steps: unused (no inner steps); kept for the shared evaluation loop.

    Returns:
      {"accuracy_by_instance": [T, L]}.
    """
    logits = self._logits(meta_batch, training=False)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               meta_batch.support_y), tf.float32)
    instance = santoro.instance_numbers(meta_batch.support_y)  # [T, L*N], 1-based
    del num_steps
    columns = tf.one_hot(instance - 1, self.num_instances)  # [T, steps, L]
    return {"accuracy_by_instance": tf.einsum("ts,tsl->tl", correct, columns)
                                    / tf.reduce_sum(columns, axis=1)}
