"""Content addressing and reading: equations (2)-(4) of Santoro et al. 2016,
"Meta-Learning with Memory-Augmented Neural Networks" (MANN)."""

import tensorflow as tf

_EPSILON = 1e-8  # keeps cosine similarity finite for an all-zero (wiped) memory row


def cosine_similarity(memory: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
  """K(k, M(i)) = k . M(i) / (|k| |M(i)|), equation (2).

  Args:
    memory: [batch_size, memory_size, word_size].
    keys: [batch_size, num_heads, word_size].

  Returns:
    [batch_size, num_heads, memory_size]; 0 where a key or a row is all zero.
  """
  dot = tf.einsum("bhw,bnw->bhn", keys, memory)
  key_norms = tf.norm(keys, axis=-1)[:, :, None]
  row_norms = tf.norm(memory, axis=-1)[:, None, :]
  return dot / (key_norms * row_norms + _EPSILON)


def content_weights(memory: tf.Tensor, keys: tf.Tensor, strengths: tf.Tensor = None
                    ) -> tf.Tensor:
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
