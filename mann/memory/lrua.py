"""Least-recently-used access (LRUA): usage, least-used weights, write weights and the
write itself, equations (5)-(8) of Santoro et al. 2016."""

import tensorflow as tf


def update_usage(
  usage: tf.Tensor, read_weights: tf.Tensor, write_weights: tf.Tensor, decay: float
) -> tf.Tensor:
  """w_u <- gamma * w_u + w_r + w_w, equation (5), summing over read and write heads.

  Args:
    usage: [batch_size, memory_size], the previous usage weights.
    read_weights: [batch_size, num_reads, memory_size] of this step.
    write_weights: [batch_size, num_writes, memory_size] of this step.
    decay: gamma, in [0, 1].

  Returns:
    [batch_size, memory_size].
  """
  return decay * usage + tf.reduce_sum(read_weights, axis=1) + tf.reduce_sum(write_weights, axis=1)


def least_used_weights(usage: tf.Tensor, num_least: int) -> tf.Tensor:
  """w_lu(i) = 1 for the num_least rows of smallest usage, 0 elsewhere, equation (7).

  The paper writes the test as "w_u(i) <= m(w_u, n)", the n-th smallest usage; with
  ties this would mark more than n rows, so exactly n are taken (by tf.math.top_k, which
  breaks ties toward the lower index).

  Args:
    usage: [batch_size, memory_size].
    num_least: n, the number of rows to mark (the number of read heads in the paper).

  Returns:
    [batch_size, memory_size], float 0/1 with exactly num_least ones per row.
  """
  _, indices = tf.math.top_k(-usage, k=num_least)
  return tf.reduce_sum(tf.one_hot(indices, tf.shape(usage)[-1], dtype=usage.dtype), axis=1)


def write_weights(
  gate_logits: tf.Tensor, previous_read_weights: tf.Tensor, previous_least_used: tf.Tensor
) -> tf.Tensor:
  """w_w = sigma(alpha) * w_r_prev + (1 - sigma(alpha)) * w_lu_prev, equation (6).

  Args:
    gate_logits: [batch_size, num_writes], alpha (a learned scalar per write head).
    previous_read_weights: [batch_size, num_writes, memory_size], w_r of step t-1.
    previous_least_used: [batch_size, memory_size], w_lu of step t-1.

  Returns:
    [batch_size, num_writes, memory_size].
  """
  gate = tf.sigmoid(gate_logits)[:, :, None]
  return gate * previous_read_weights + (1.0 - gate) * previous_least_used[:, None, :]


def write(memory: tf.Tensor, weights: tf.Tensor, values: tf.Tensor, wipe: tf.Tensor) -> tf.Tensor:
  """Zeroes the rows marked in wipe, then M(i) <- M(i) + sum_h w_w(h, i) k_h, equation (8).

  Santoro et al.: "Prior to writing to memory, the least used memory location is
  computed from w_u_{t-1} and is set to zero": one row, least_used_weights(usage, 1).

  Args:
    memory: [batch_size, memory_size, word_size].
    weights: [batch_size, num_writes, memory_size], w_w.
    values: [batch_size, num_writes, word_size], the written keys k.
    wipe: [batch_size, memory_size], 1 for each row to zero before the write.

  Returns:
    [batch_size, memory_size, word_size].
  """
  wiped = memory * (1.0 - wipe)[:, :, None]
  return wiped + tf.einsum("bhn,bhw->bnw", weights, values)
