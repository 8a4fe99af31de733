"""Sinusoid regression task families.

SinusoidSampler: Finn, Abbeel & Levine 2017 (MAML), section 5.1. A task is
y = A * sin(x - phase) with A ~ U[0.1, 5.0], phase ~ U[0, pi] and inputs x ~ U[-5, 5].

SinusoidSumSampler: a broader family for the universality question (Finn & Levine 2018):
y = sum_j a_j * sin(w_j * x - p_j) over J components, each with its own amplitude,
frequency and phase, inputs x ~ U[-5, 5].

K support points and Q query points are drawn for each task; episode `i` is a pure
function of (seed, i).
"""

import abc
import math

import tensorflow as tf

from mann import errors
from mann.data import episode as episode_lib

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)

SUM_NUM_COMPONENTS = 5
SUM_AMPLITUDE_RANGE = (0.1, 1.0)
SUM_FREQUENCY_RANGE = (0.5, 2.0)
SUM_PHASE_RANGE = (0.0, 2.0 * math.pi)


def _check_ranges(**ranges) -> None:
  for name, (low, high) in ranges.items():
    if not low <= high:
      raise errors.UserInputError(f"{name}=({low}, {high}) needs low <= high")


class _ScalarRegressionSampler(abc.ABC):
  """Episodes of y = f_task(x) with x, y scalars; subclasses draw f_task."""

  def __init__(
    self, *, num_shots: int, num_queries: int, seed: int, input_range: tuple[float, float]
  ):
    if num_shots < 1 or num_queries < 0:
      raise errors.UserInputError(
        f"need num_shots >= 1 and num_queries >= 0, got {num_shots}, {num_queries}"
      )
    _check_ranges(input_range=input_range)
    self.num_shots = num_shots
    self.num_queries = num_queries
    self.seed = seed
    self.input_range = input_range

  @property
  def element_spec(self) -> episode_lib.Episode:
    k, q = self.num_shots, self.num_queries
    return episode_lib.Episode(
      support_x=tf.TensorSpec([k, 1], tf.float32),
      support_y=tf.TensorSpec([k, 1], tf.float32),
      query_x=tf.TensorSpec([q, 1], tf.float32),
      query_y=tf.TensorSpec([q, 1], tf.float32),
    )

  def _seeds(self, index):
    """(task seed, input seed) of episode `index`."""
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=2))

  @abc.abstractmethod
  def function(self, index, x: tf.Tensor) -> tf.Tensor:
    """f_task(x) of task `index`, elementwise on float32 x."""

  def episode(self, index) -> episode_lib.Episode:
    """Episode `index`: x, y of shape [K, 1] (support) and [Q, 1] (query)."""
    _, input_seed = self._seeds(index)
    x = tf.random.stateless_uniform(
      [self.num_shots + self.num_queries, 1],
      input_seed,
      minval=self.input_range[0],
      maxval=self.input_range[1],
    )
    y = self.function(index, x)
    return episode_lib.Episode(
      support_x=x[: self.num_shots],
      support_y=y[: self.num_shots],
      query_x=x[self.num_shots :],
      query_y=y[self.num_shots :],
    )


class SinusoidSampler(_ScalarRegressionSampler):
  """The MAML paper's sinusoids, y = A * sin(x - phase)."""

  def __init__(
    self,
    *,
    num_shots: int,
    num_queries: int,
    seed: int,
    amplitude_range: tuple[float, float] = AMPLITUDE_RANGE,
    phase_range: tuple[float, float] = PHASE_RANGE,
    input_range: tuple[float, float] = INPUT_RANGE,
  ):
    """Args:
    num_shots: K, support points per task.
    num_queries: Q, query points per task.
    seed: int, the seed of every draw.
    amplitude_range, phase_range, input_range: (low, high) of the uniform draws;
      the defaults are the MAML paper's.
    """
    super().__init__(
      num_shots=num_shots, num_queries=num_queries, seed=seed, input_range=input_range
    )
    _check_ranges(amplitude_range=amplitude_range, phase_range=phase_range)
    self.amplitude_range = amplitude_range
    self.phase_range = phase_range

  def task_parameters(self, index) -> tuple[tf.Tensor, tf.Tensor]:
    """(amplitude, phase) of task `index`, float32 scalars."""
    task_seed, _ = self._seeds(index)
    low = tf.constant([self.amplitude_range[0], self.phase_range[0]], tf.float32)
    high = tf.constant([self.amplitude_range[1], self.phase_range[1]], tf.float32)
    draws = tf.random.stateless_uniform([2], task_seed, minval=low, maxval=high)
    return draws[0], draws[1]

  def function(self, index, x):
    amplitude, phase = self.task_parameters(index)
    return amplitude * tf.sin(x - phase)


class SinusoidSumSampler(_ScalarRegressionSampler):
  """Sums of J random sinusoids, y = sum_j a_j * sin(w_j * x - p_j)."""

  def __init__(
    self,
    *,
    num_shots: int,
    num_queries: int,
    seed: int,
    num_components: int = SUM_NUM_COMPONENTS,
    amplitude_range: tuple[float, float] = SUM_AMPLITUDE_RANGE,
    frequency_range: tuple[float, float] = SUM_FREQUENCY_RANGE,
    phase_range: tuple[float, float] = SUM_PHASE_RANGE,
    input_range: tuple[float, float] = INPUT_RANGE,
  ):
    """Args:
    num_shots, num_queries, seed: as SinusoidSampler's.
    num_components: J, sinusoids summed per task.
    amplitude_range, frequency_range, phase_range: (low, high) of each component's
      uniform draws (a_j, w_j in radians per unit of x, p_j).
    input_range: (low, high) of the uniform inputs.
    """
    super().__init__(
      num_shots=num_shots, num_queries=num_queries, seed=seed, input_range=input_range
    )
    if num_components < 1:
      raise errors.UserInputError(f"need num_components >= 1, got {num_components}")
    _check_ranges(
      amplitude_range=amplitude_range, frequency_range=frequency_range, phase_range=phase_range
    )
    self.num_components = num_components
    self.amplitude_range = amplitude_range
    self.frequency_range = frequency_range
    self.phase_range = phase_range

  def task_parameters(self, index) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(amplitudes, frequencies, phases) of task `index`, float32 [J] each."""
    task_seed, _ = self._seeds(index)
    ranges = (self.amplitude_range, self.frequency_range, self.phase_range)
    low = tf.constant([[r[0]] for r in ranges], tf.float32)
    high = tf.constant([[r[1]] for r in ranges], tf.float32)
    draws = tf.random.stateless_uniform(
      [3, self.num_components], task_seed, minval=low, maxval=high
    )
    return draws[0], draws[1], draws[2]

  def function(self, index, x):
    amplitudes, frequencies, phases = self.task_parameters(index)
    # x: [..., 1] broadcast against the J components, summed over them.
    return tf.reduce_sum(amplitudes * tf.sin(frequencies * x - phases), axis=-1, keepdims=True)
