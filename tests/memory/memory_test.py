"""Tests of mann/memory against hand-worked cases, each eager and under tf.function."""

import numpy as np
import pytest
import tensorflow as tf

from mann import memory


@pytest.fixture(params=["eager", "tf.function"])
def run(request):
  """Calls a memory function eagerly or compiled."""
  if request.param == "eager":
    return lambda fn, *args, **kwargs: fn(*args, **kwargs)
  return lambda fn, *args, **kwargs: tf.function(fn)(*args, **kwargs)


def _memory():
  """[1, 4, 3]: rows e0, e1, e2 and the zero row."""
  return tf.constant([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [0, 0, 0]]])


def test_cosine_similarity_by_hand(run):
  keys = tf.constant([[[1.0, 1.0, 0.0]]])
  similarity = run(memory.cosine_similarity, _memory(), keys)
  np.testing.assert_allclose(similarity, [[[1 / np.sqrt(2), 1 / np.sqrt(2), 0.0, 0.0]]], rtol=1e-6)


def test_one_hot_keys_select_rows_and_weights_sum_to_one(run):
  keys = tf.constant([[[0.0, 5.0, 0.0], [0.0, 0.0, 1.0]]])  # 2 heads: rows 1 and 2
  weights = run(memory.content_weights, _memory(), keys, tf.constant([[50.0, 50.0]]))
  np.testing.assert_allclose(tf.reduce_sum(weights, -1), [[1.0, 1.0]], rtol=1e-6)
  assert list(np.argmax(weights[0], axis=-1)) == [1, 2]
  assert float(weights[0, 0, 1]) > 0.999
  read = run(memory.read, _memory(), weights)
  np.testing.assert_allclose(read[0], [[0, 2.0, 0], [0, 0, 3.0]], atol=1e-3)
  # Without a strength (equation (3) as printed): softmax of the cosines, by hand.
  plain = run(memory.content_weights, _memory(), keys[:, :1])
  expected = np.exp([0.0, 1.0, 0.0, 0.0]) / np.exp([0.0, 1.0, 0.0, 0.0]).sum()
  np.testing.assert_allclose(plain[0, 0], expected, rtol=1e-6)


def test_read_is_the_weighted_sum_of_rows(run):
  weights = tf.constant([[[0.5, 0.25, 0.25, 0.0]]])
  np.testing.assert_allclose(run(memory.read, _memory(), weights), [[[0.5, 0.5, 0.75]]])


def test_usage_decays_by_gamma_and_adds_reads_and_writes(run):
  usage = tf.constant([[1.0, 0.5, 0.0, 2.0]])
  reads = tf.constant([[[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]]])
  writes = tf.constant([[[0.0, 0.0, 0.0, 1.0]]])
  updated = run(memory.update_usage, usage, reads, writes, 0.95)
  np.testing.assert_allclose(updated, [[0.95 + 0.5, 0.475 + 1.0, 0.5, 1.9 + 1.0]], rtol=1e-6)
  untouched = run(memory.update_usage, usage, tf.zeros_like(reads), tf.zeros_like(writes), 0.9)
  np.testing.assert_allclose(untouched, 0.9 * usage.numpy(), rtol=1e-6)


def test_least_used_marks_exactly_the_n_smallest(run):
  usage = tf.constant([[0.3, 0.1, 0.7, 0.2], [0.0, 0.0, 0.0, 1.0]])
  np.testing.assert_array_equal(
    run(memory.least_used_weights, usage, 2), [[0, 1, 0, 1], [1, 1, 0, 0]]
  )  # ties: lower index first
  np.testing.assert_array_equal(
    run(memory.least_used_weights, usage, 1), [[0, 1, 0, 0], [1, 0, 0, 0]]
  )


def test_write_weights_interpolate_previous_read_and_least_used(run):
  previous_read = tf.constant([[[1.0, 0.0, 0.0, 0.0]]])
  least_used = tf.constant([[0.0, 0.0, 0.0, 1.0]])
  to_read = run(memory.write_weights, tf.constant([[20.0]]), previous_read, least_used)
  to_unused = run(memory.write_weights, tf.constant([[-20.0]]), previous_read, least_used)
  half = run(memory.write_weights, tf.constant([[0.0]]), previous_read, least_used)
  np.testing.assert_allclose(to_read, [[[1.0, 0, 0, 0]]], atol=1e-6)
  np.testing.assert_allclose(to_unused, [[[0, 0, 0, 1.0]]], atol=1e-6)
  np.testing.assert_allclose(half, [[[0.5, 0, 0, 0.5]]], atol=1e-6)


def test_write_zeroes_the_least_used_row_then_lands_there(run):
  memory_before = tf.constant([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [4.0, 4.0, 4.0]]])
  usage = tf.constant([[0.9, 0.8, 0.7, 0.1]])  # row 3 is least used
  least_used = memory.least_used_weights(usage, 1)
  weights = memory.write_weights(tf.constant([[-30.0]]), tf.zeros([1, 1, 4]), least_used)
  written = run(memory.write, memory_before, weights, tf.constant([[[7.0, 8.0, 9.0]]]), least_used)
  # Row 3 held (4, 4, 4): wiped first, so it now holds exactly the written key.
  np.testing.assert_allclose(written[0, 3], [7.0, 8.0, 9.0], atol=1e-4)
  np.testing.assert_allclose(written[0, :3], memory_before[0, :3], atol=1e-4)


def test_safe_norm_equals_tf_norm_and_has_finite_second_derivatives_at_zero(run):
  x = tf.constant([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], tf.float64)
  np.testing.assert_array_equal(run(memory.safe_norm, x), tf.norm(x, axis=-1))

  def second_derivatives(norm):
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        y = tf.reduce_sum(norm(x) ** 3)  # a smooth use of the norm
      first = inner.gradient(y, x)
      total = tf.reduce_sum(first * tf.constant([[1.0, 2.0]] * 3, tf.float64))
    return first, outer.gradient(total, x)

  first, second = second_derivatives(memory.safe_norm)
  _, naive_second = second_derivatives(lambda v: tf.norm(v, axis=-1))
  assert not np.all(np.isfinite(naive_second[1]))  # what tf.norm gives at a zero row
  assert np.all(np.isfinite(first)) and np.all(np.isfinite(second))
  np.testing.assert_array_equal(first[1], [0.0, 0.0])  # d(|x|^3) = 3|x| x = 0 at 0
  # Non-zero rows: by hand, d/dx_i of sum_j c_j 3 |x| x_j = 3 (x_i (c.x) / |x| + |x| c_i).
  for row in (0, 2):
    v, c = x[row].numpy(), np.array([1.0, 2.0])
    expected = 3 * (v * (c @ v) / np.linalg.norm(v) + np.linalg.norm(v) * c)
    np.testing.assert_allclose(second[row], expected, rtol=1e-12)


def test_cosine_similarity_of_zero_rows_is_zero_with_finite_second_derivatives():
  memory_rows = tf.constant([[[0.0, 0.0], [1.0, 2.0]]], tf.float64)
  keys = tf.constant([[[0.5, -1.0]]], tf.float64)
  with tf.GradientTape() as outer:
    outer.watch(memory_rows)
    with tf.GradientTape() as inner:
      inner.watch(memory_rows)
      similarity = memory.cosine_similarity(memory_rows, keys)
      loss = tf.reduce_sum(tf.exp(similarity))
    first = inner.gradient(loss, memory_rows)
    total = tf.reduce_sum(first)
  second = outer.gradient(total, memory_rows)
  assert float(similarity[0, 0, 0]) == 0.0
  np.testing.assert_allclose(
    similarity[0, 0, 1], (0.5 - 2.0) / (np.sqrt(1.25) * np.sqrt(5)), rtol=1e-7
  )
  assert np.all(np.isfinite(first)) and np.all(np.isfinite(second))
