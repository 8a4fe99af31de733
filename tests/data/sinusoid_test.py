"""Tests of mann/data/sinusoid.py: the MAML paper's task family."""

import numpy as np
import pytest
import tensorflow as tf

from mann import errors
from mann.data import sinusoid


def test_targets_are_amplitude_sine_of_shifted_inputs():
  sampler = sinusoid.SinusoidSampler(num_shots=10, num_queries=7, seed=4)
  for index in range(20):
    episode = sampler.episode(index)
    amplitude, phase = (float(v) for v in sampler.task_parameters(index))
    for x, y in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
      x64 = np.asarray(x, np.float64)
      np.testing.assert_allclose(np.asarray(y), amplitude * np.sin(x64 - phase), atol=2e-6)
    assert episode.support_x.shape == (10, 1) and episode.query_x.shape == (7, 1)


def test_draws_cover_the_paper_ranges():
  sampler = sinusoid.SinusoidSampler(num_shots=5, num_queries=5, seed=0)
  params = np.array([[float(v) for v in sampler.task_parameters(i)] for i in range(500)])
  inputs = np.concatenate([np.asarray(sampler.episode(i).support_x) for i in range(100)])
  assert 0.1 <= params[:, 0].min() < 0.3 and 4.8 < params[:, 0].max() <= 5.0
  assert 0.0 <= params[:, 1].min() < 0.1 and 3.0 < params[:, 1].max() <= np.pi
  assert -5.0 <= inputs.min() < -4.8 and 4.8 < inputs.max() <= 5.0


@pytest.mark.parametrize("family", [sinusoid.SinusoidSampler, sinusoid.SinusoidSumSampler])
def test_seeded_and_compiled_episodes_agree(family):
  first = family(num_shots=5, num_queries=5, seed=1)
  again = family(num_shots=5, num_queries=5, seed=1)
  other = family(num_shots=5, num_queries=5, seed=2)
  compiled = tf.function(first.episode)
  for index in range(3):
    for a, b, c in zip(
      first.episode(index), again.episode(index), compiled(tf.constant(index, tf.int64))
    ):
      np.testing.assert_array_equal(a, b)
      np.testing.assert_allclose(a, c, atol=1e-6)  # a sum's compiled reduction may round
    assert not np.array_equal(first.episode(index).support_y, other.episode(index).support_y)


def test_bad_sizes_raise():
  with pytest.raises(errors.UserInputError, match="num_shots >= 1"):
    sinusoid.SinusoidSampler(num_shots=0, num_queries=5, seed=0)


def test_sums_of_sinusoids_match_their_formula_and_ranges():
  sampler = sinusoid.SinusoidSumSampler(num_shots=10, num_queries=7, seed=3)
  draws = []
  for index in range(200):
    amplitudes, frequencies, phases = (
      np.asarray(p, np.float64) for p in sampler.task_parameters(index)
    )
    assert amplitudes.shape == frequencies.shape == phases.shape == (5,)
    draws.append(np.stack([amplitudes, frequencies, phases]))
    if index < 20:
      episode = sampler.episode(index)
      for x, y in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
        x64 = np.asarray(x, np.float64)  # [K, 1]
        want = np.sum(amplitudes * np.sin(frequencies * x64 - phases), axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(y), want, atol=2e-5)
  draws = np.stack(draws)  # [tasks, 3, J]
  for row, (low, high) in enumerate(
    (sinusoid.SUM_AMPLITUDE_RANGE, sinusoid.SUM_FREQUENCY_RANGE, sinusoid.SUM_PHASE_RANGE)
  ):
    values = draws[:, row]
    assert low <= values.min() < low + 0.05 * (high - low)
    assert high - 0.05 * (high - low) < values.max() <= high
  # The components of a task are drawn independently, not copies of one another.
  assert np.all(np.std(draws[:, 1], axis=1) > 0)


def test_a_sum_needs_a_component():
  with pytest.raises(errors.UserInputError, match="num_components >= 1"):
    sinusoid.SinusoidSumSampler(num_shots=5, num_queries=5, seed=0, num_components=0)
