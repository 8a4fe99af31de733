"""Sinusoid regression tasks, Finn, Abbeel & Levine 2017 (MAML), section 5.1.

A task is y = A * sin(x - phase) with A ~ U[0.1, 5.0], phase ~ U[0, pi] and inputs
x ~ U[-5, 5]; K support points and Q query points are drawn for each task.
"""

import math

import tensorflow as tf

from mann import errors
from mann.data import episode as episode_lib

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)


class SinusoidSampler:
  """Episodes of sinusoid regression, episode `i` a pure function of (seed, i)."""

  def __init__(self, *, num_shots: int, num_queries: int, seed: int,
               amplitude_range: tuple[float, float] = AMPLITUDE_RANGE,
               phase_range: tuple[float, float] = PHASE_RANGE,
               input_range: tuple[float, float] = INPUT_RANGE):
    """Args:
      num_shots: K, support points per task.
      num_queries: Q, query points per task.
      seed: int, the seed of every draw.
      amplitude_range, phase_range, input_range: (low, high) of the uniform draws;
        the defaults are the MAML paper's.
    """
    if num_shots < 1 or num_queries < 0:
      raise errors.UserInputError(
          f"need num_shots >= 1 and num_queries >= 0, got {num_shots}, {num_queries}")
    for name, (low, high) in (("amplitude_range", amplitude_range),
                              ("phase_range", phase_range), ("input_range", input_range)):
      if not low <= high:
        raise errors.UserInputError(f"{name}=({low}, {high}) needs low <= high")
    self.num_shots = num_shots
    self.num_queries = num_queries
    self.seed = seed
    self.amplitude_range = amplitude_range
    self.phase_range = phase_range
    self.input_range = input_range

  @property
  def element_spec(self) -> episode_lib.Episode:
    k, q = self.num_shots, self.num_queries
    return episode_lib.Episode(
        support_x=tf.TensorSpec([k, 1], tf.float32),
        support_y=tf.TensorSpec([k, 1], tf.float32),
        query_x=tf.TensorSpec([q, 1], tf.float32),
        query_y=tf.TensorSpec([q, 1], tf.float32))

  def _seeds(self, index):
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=2))

  def task_parameters(self, index) -> tuple[tf.Tensor, tf.Tensor]:
    """(amplitude, phase) of task `index`, float32 scalars."""
    task_seed, _ = self._seeds(index)
    low = tf.constant([self.amplitude_range[0], self.phase_range[0]], tf.float32)
    high = tf.constant([self.amplitude_range[1], self.phase_range[1]], tf.float32)
    draws = tf.random.stateless_uniform([2], task_seed, minval=low, maxval=high)
    return draws[0], draws[1]

  def episode(self, index) -> episode_lib.Episode:
    """Episode `index`: x, y of shape [K, 1] (support) and [Q, 1] (query)."""
    amplitude, phase = self.task_parameters(index)
    _, input_seed = self._seeds(index)
    x = tf.random.stateless_uniform(
        [self.num_shots + self.num_queries, 1], input_seed,
        minval=self.input_range[0], maxval=self.input_range[1])
    y = amplitude * tf.sin(x - phase)
    return episode_lib.Episode(
        support_x=x[:self.num_shots], support_y=y[:self.num_shots],
        query_x=x[self.num_shots:], query_y=y[self.num_shots:])
