"""Content addressing and reading: equations (2)-(4) of Santoro et al. 2016,
"Meta-Learning with Memory-Augmented Neural Networks" (MANN)."""

import tensorflow as tf

_EPSILON = 1e-8  # keeps cosine similarity finite for an all-zero (wiped) memory row


def safe_norm(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
  """The Euclidean norm over `axis`, with finite derivatives of every order at zero.

  tf.norm is sqrt(sum x^2): its second derivative at a zero vector divides by zero,
  which turns MAML's second-order meta-gradients through a memory whose rows start at
  zero into NaN. Here the square root only sees positive sums (zero vectors take the
  other branch of a where, whose gradient is zero), so values are tf.norm's exactly and
  every derivative is finite; at a zero vector the norm and its derivatives are 0.

  Args:
    x: [..., D, ...].
    axis: the axis to reduce.

  Returns:
    x's shape without `axis`.
  """
  squares = tf.reduce_sum(tf.square(x), axis=axis)
  positive = squares > 0
  return tf.where(
    positive, tf.sqrt(tf.where(positive, squares, tf.ones_like(squares))), tf.zeros_like(squares)
  )


def cosine_similarity(memory: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
  """K(k, M(i)) = k . M(i) / (|k| |M(i)|), equation (2).

  Args:
    memory: [batch_size, memory_size, word_size].
    keys: [batch_size, num_heads, word_size].

  Returns:
    [batch_size, num_heads, memory_size]; 0 where a key or a row is all zero. Its first
    and second derivatives are finite there too (safe_norm).
  """
  dot = tf.einsum("bhw,bnw->bhn", keys, memory)
  key_norms = safe_norm(keys)[:, :, None]
  row_norms = safe_norm(memory)[:, None, :]
  return dot / (key_norms * row_norms + _EPSILON)


def content_weights(memory: tf.Tensor, keys: tf.Tensor, strengths: tf.Tensor = None) -> tf.Tensor:
  """Read weights w_r(i) = softmax_i(beta * K(k, M(i))), equation (3).

  Args:
    memory: [batch_size, memory_size, word_size].
    keys: [batch_size, num_heads, word_size].
    strengths: [batch_size, num_heads] key strengths beta (sharpness); None means 1,
      the paper's equation (3).

  Returns:
    [batch_size, num_heads, memory_size], each head's weights summing to 1.
  """
  similarity = cosine_similarity(memory, keys)
  if strengths is not None:
    similarity = similarity * strengths[:, :, None]
  return tf.nn.softmax(similarity, axis=-1)


def read(memory: tf.Tensor, read_weights: tf.Tensor) -> tf.Tensor:
  """r = sum_i w_r(i) M(i), equation (4).

  Args:
    memory: [batch_size, memory_size, word_size].
    read_weights: [batch_size, num_heads, memory_size].

  Returns:
    [batch_size, num_heads, word_size].
  """
  return tf.einsum("bhn,bnw->bhw", read_weights, memory)
