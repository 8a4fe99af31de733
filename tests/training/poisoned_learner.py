"""A learner that breaks on purpose, for the tests of non-finite meta-steps."""

import tensorflow as tf

from mann import meta


class PoisonedMAML(meta.MAML):
  """MAML whose meta-gradients are NaN at the given 0-based meta-steps."""

  def __init__(self, *args, poisoned_steps=(), **kwargs):
    super().__init__(*args, **kwargs)
    self.poisoned_steps = tf.constant(list(poisoned_steps) or [-1], tf.int64)

  def compute_gradients(self, meta_batch, step=0):
    gradients, metrics = super().compute_gradients(meta_batch, step)
    poisoned = tf.reduce_any(tf.equal(tf.cast(step, tf.int64), self.poisoned_steps))
    return [tf.where(poisoned, tf.constant(float("nan")), g) for g in gradients], metrics
