"""A learner that breaks on purpose, for the tests of non-finite meta-steps."""

import keras
import tensorflow as tf

from mann import data
from mann import meta
from mann import models


class PoisonedMAML(meta.MAML):
  """MAML whose meta-gradients are NaN at the given 0-based meta-steps."""

  def __init__(self, *args, poisoned_steps=(), **kwargs):
    super().__init__(*args, **kwargs)
    self.poisoned_steps = tf.constant(list(poisoned_steps) or [-1], tf.int64)

  def compute_gradients(self, meta_batch, step=0):
    gradients, metrics = super().compute_gradients(meta_batch, step)
    poisoned = tf.reduce_any(tf.equal(tf.cast(step, tf.int64), self.poisoned_steps))
    return [tf.where(poisoned, tf.constant(float("nan")), g) for g in gradients], metrics


def sinusoid_maml(*, hidden_sizes: tuple[int, ...], poisoned_steps=()):
  """A seeded MLP, PoisonedMAML over it (1 inner step at 0.01), and make_batches for
  mann.training.train: meta-batches of 4 sinusoid tasks, 5 shots and 5 queries each.

  Returns (model, learner, make_batches).
  """
  keras.utils.set_random_seed(0)
  model = models.mlp(input_size=1, hidden_sizes=hidden_sizes, output_size=1)
  learner = PoisonedMAML(
    model,
    objective=meta.REGRESSION,
    num_inner_steps=1,
    inner_lr=0.01,
    poisoned_steps=poisoned_steps,
  )
  sampler = data.SinusoidSampler(num_shots=5, num_queries=5, seed=0)
  make_batches = lambda start, shard: data.meta_batches(
    sampler, meta_batch_size=4, start_step=start, shard=shard
  )
  return model, learner, make_batches
